"""The audit of a black-box model (in process or behind an HTTP API): query attacks by
default, honest skip reasons, a proper name, the cost estimate, and no secret in any
file it writes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from _servers import Server
from sklearn.ensemble import RandomForestClassifier

from advml.audit import AuditConfig, run_audit
from advml.audit.cost import check_cost, estimate_queries
from advml.data import load_dataset
from advml.errors import QueryBudgetExceededError
from advml.models import SklearnClassifier
from advml.models.torch import TorchClassifier

SMALL = {
    "n_samples": 12,
    "eps": (0.0, 0.1, 0.3),
    "reference_eps": 0.1,
    "queries_per_input": 30,
    "profile": "quick",
    "examples": 2,
}


def _evasion(report: dict) -> dict:
    return report["sections"]["evasion"]


def test_random_forest_gets_square_and_transfer_by_default() -> None:
    ds = load_dataset("breast-cancer")
    forest = RandomForestClassifier(n_estimators=20, random_state=0)
    forest.fit(ds.x_train.reshape(len(ds.x_train), -1), ds.y_train)
    model = SklearnClassifier(forest, bounds=ds.bounds, input_shape=ds.input_shape)
    assert not model.has_gradients
    config = AuditConfig(dataset="breast-cancer", sections=("evasion", "defences"), **SMALL)
    report = run_audit(config, model=model, show_progress=False).report
    ev = _evasion(report)
    ran = {a["name"] for a in ev["attacks"]}
    assert ran == {"square", "transfer"}
    assert ev["verdict"]["level"] != "unknown"
    assert {a["attack"] for a in ev["added_for_black_box"]} == {"square", "transfer"}
    assert {s["attack"] for s in ev["skipped"]} == {"fgsm", "pgd"}
    # Each point is at the configured ε.
    assert [p["eps"] for p in ev["attacks"][0]["points"]] == [0.0, 0.1, 0.3]
    reason = next(s["reason"] for s in report["skipped_sections"] if s["section"] == "defences")
    assert "white-box access" not in reason and "the model gives none" in reason


def test_labels_access_gets_hopskipjump_at_each_eps(digits_mlp: TorchClassifier) -> None:
    config = AuditConfig(dataset="digits", access="labels", sections=("evasion",), **SMALL)
    report = run_audit(config, model=digits_mlp, show_progress=False).report
    ev = _evasion(report)
    hsj = next(a for a in ev["attacks"] if a["name"] == "hopskipjump")
    points = hsj["points"]
    assert [p["eps"] for p in points] == [0.0, 0.1, 0.3]
    assert points[0]["robust_accuracy"] == pytest.approx(report["model"]["clean_accuracy"])
    # A larger ε keeps every example a smaller one keeps: accuracy never rises with ε.
    accs = [p["robust_accuracy"] for p in points]
    assert accs == sorted(accs, reverse=True)
    assert all(p["median_linf"] is None or p["median_linf"] <= p["eps"] + 1e-6 for p in points)
    assert "<locals>" not in report["model"]["description"]
    described = report["model"]["description"]
    assert described.endswith("behind a prediction API, black-box (labels only)")


def test_hopskipjump_by_name_takes_the_audit_eps(digits_mlp: TorchClassifier) -> None:
    # It has no eps setting: it used to fail with "unknown setting(s) ['eps']".
    config = AuditConfig(dataset="digits", attacks=("hopskipjump",), sections=("evasion",), **SMALL)
    report = run_audit(config, model=digits_mlp, show_progress=False).report
    (hsj,) = _evasion(report)["attacks"]
    assert hsj["name"] == "hopskipjump" and len(hsj["points"]) == 3


def test_cost_estimate_and_max_queries() -> None:
    ds = load_dataset("digits")
    config = AuditConfig(dataset="digits", sections=("evasion",), **SMALL)
    parts = estimate_queries(config, ds)
    # 12 inputs: Square at 3 ε x 30 queries, transfer (12 * 4 + 12) at each ε.
    assert parts["evasion"] == 12 * 30 * 3 + (12 * 4 + 12) * 3
    assert parts["total"] == parts["evasion"] + 12 + 17
    with pytest.raises(QueryBudgetExceededError, match="more than max_queries=100"):
        check_cost(config.with_(max_queries=100), ds)
    with pytest.raises(ValueError, match="either model"):
        AuditConfig(model="m.pt", target_url="http://127.0.0.1:1/predict")


def test_remote_audit_writes_no_secret(
    serve: Callable[..., Server],
    digits_mlp: TorchClassifier,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = "s3cret-Token-0123456789"
    monkeypatch.setenv("ADVML_TEST_TOKEN", token)
    s = serve(digits_mlp, api_key=token)
    target = tmp_path / "target.yaml"
    target.write_text(
        f"url: {s.url}\nheaders:\n  Authorization: 'Bearer ${{ADVML_TEST_TOKEN}}'\n",
        encoding="utf-8",
    )
    out = tmp_path / "audit"
    config = AuditConfig(
        dataset="digits",
        target_config=str(target),
        sections=("evasion",),
        max_queries=20_000,
        **{**SMALL, "eps": (0.0, 0.1)},
    )
    report = run_audit(config, out=out, show_progress=False).report
    assert report["model"]["source"] == "remote"
    assert {a["name"] for a in _evasion(report)["attacks"]} == {"square", "transfer"}
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name.startswith("answers-") for p in files)  # the answer cache is there
    for p in files:
        assert token.encode() not in p.read_bytes(), p
    # A rerun reads every answer back: the server computes nothing more.
    served = s.model.query_count
    again = run_audit(config, out=out, show_progress=False).report
    assert _evasion(again)["attacks"] == _evasion(report)["attacks"]
    assert s.model.query_count - served <= 1  # only the probe of what the API reveals
    # A wrong token: 401, and the message does not echo it.
    monkeypatch.setenv("ADVML_TEST_TOKEN", "wrong-" + token)
    with pytest.raises(Exception, match="HTTP 401") as info:
        run_audit(config, out=tmp_path / "other", show_progress=False)
    assert token not in str(info.value)


def test_remote_labels_api_audit_runs_hopskipjump(
    serve: Callable[..., Server], digits_mlp: TorchClassifier, tmp_path: Path
) -> None:
    s = serve(digits_mlp, outputs="labels")
    config = AuditConfig(
        dataset="digits", target_url=s.url, sections=("evasion", "defences"), **SMALL
    )
    report = run_audit(config, show_progress=False).report
    ev = _evasion(report)
    assert {a["name"] for a in ev["attacks"]} == {"hopskipjump", "transfer"}
    assert "labels only" in report["model"]["description"]
    np.testing.assert_array_less(0, len(ev["attacks"][0]["points"]))
