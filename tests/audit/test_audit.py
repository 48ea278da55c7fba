"""The audit: a report that follows its schema, resumes after a kill, plans honestly."""

from __future__ import annotations

import copy
import json
import platform
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
import torch
from _reports import written_report

import advml.audit.sections.evasion as audit_run
from advml.audit import AuditConfig, plan, run_audit
from advml.data import load_dataset
from advml.models import CallableClassifier, TorchClassifier
from advml.report import SCHEMA_VERSION, report_schema
from advml.report.html import render_html


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _config(**overrides: Any) -> AuditConfig:
    settings: dict[str, Any] = dict(
        n_samples=60,
        eps=(0.0, 0.1, 0.3),
        attack_settings={"pgd": {"steps": 5}},
        examples=4,
        sections=("evasion",),
    )
    settings.update(overrides)
    return AuditConfig.quick(**settings)


def _numbers(report: dict[str, Any]) -> dict[str, Any]:
    """The report without the fields that differ between two identical runs."""
    return {
        k: v for k, v in report.items() if k not in ("created", "seconds", "reproducibility")
    } | {
        "sections": {
            "evasion": {
                **report["sections"]["evasion"],
                "attacks": [
                    {**a, "points": [{**p, "seconds": None} for p in a["points"]]}
                    for a in report["sections"]["evasion"]["attacks"]
                ],
            }
        }
    }


def test_report_follows_schema_and_numbers_are_consistent(
    digits, digits_mlp: TorchClassifier, tmp_path: Path
) -> None:
    model = copy.deepcopy(digits_mlp)
    result = run_audit(_config(), model=model, dataset=digits, out=tmp_path, show_progress=False)
    report = written_report(tmp_path)
    assert report == json.loads(json.dumps(result.report))

    evasion = report["sections"]["evasion"]
    x, y = digits.subset(n_test=60, seed=0).x_test, digits.subset(n_test=60, seed=0).y_test
    clean = float((model.predict(x) == y).mean())
    assert evasion["clean_accuracy"] == pytest.approx(clean)
    assert [a["name"] for a in evasion["attacks"]] == ["fgsm", "pgd"]
    for attack in evasion["attacks"]:
        accs = {p["eps"]: p["robust_accuracy"] for p in attack["points"]}
        assert accs[0.0] == pytest.approx(clean)  # ε = 0 changes nothing
        assert attack["points"][0]["success_rate"] == 0.0
        # success counts only inputs that were right: those not fooled stay right
        for p in attack["points"]:
            kept = clean * (1 - p["success_rate"])
            assert kept - 1e-9 <= p["robust_accuracy"] <= kept + (1 - clean) + 1e-9
        assert accs[0.3] < accs[0.1] < clean
        assert attack["points"][1]["median_linf"] <= 0.1 + 1e-5
    pgd = {p["eps"]: p["robust_accuracy"] for p in evasion["attacks"][1]["points"]}
    # The verdict's figure is the per-input worst case over every attack at ε = 0.1
    # (FGSM, PGD and the ensemble's APGD members): at most the weakest single attack's.
    worst = evasion["worst_case"]
    assert worst["eps"] == 0.1 and worst["attacks"][:2] == ["fgsm", "pgd"]
    assert evasion["verdict"]["robust_accuracy"] == worst["robust_accuracy"]
    assert worst["robust_accuracy"] <= min(
        pgd[0.1], evasion["attacks"][0]["points"][1]["robust_accuracy"]
    )
    levels = {"pass": "robust", "warn": "partly robust", "fail": "not robust"}
    assert evasion["verdict"]["label"] in (
        levels[evasion["verdict"]["level"]],
        "evaluation not conclusive",
    )
    assert report["summary"]["integrity"]["level"] == evasion["verdict"]["level"]
    assert report["summary"]["integrity"]["verdicts"][0]["section"] == "evasion"
    assert f"{clean:.1%}" in evasion["verdict"]["text"]

    html = (tmp_path / "report.html").read_text()
    for section in ("summary", "model", "evasion", "settings"):
        assert f"id='{section}'" in html
    assert html.count("data:image/png;base64,") == 2  # robustness curve and examples
    assert "<script" not in html  # self-contained and static
    examples = result.examples
    assert examples["x_adv"].shape == (len(examples["index"]), 1, 8, 8)
    assert np.abs(examples["x_adv"] - examples["x"]).max() <= 0.1 + 1e-5


def test_interrupted_audit_resumes_and_ends_with_the_same_report(
    digits, digits_mlp: TorchClassifier, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config()
    reference = run_audit(
        config,
        model=copy.deepcopy(digits_mlp),
        dataset=digits,
        out=tmp_path / "a",
        show_progress=False,
    )
    calls: list[str] = []
    real_step = audit_run._attack_step

    def dying_step(attack, *args):  # type: ignore[no-untyped-def]
        if len(calls) == 3:
            raise KeyboardInterrupt  # killed during the fourth step
        calls.append(attack.name)
        return real_step(attack, *args)

    monkeypatch.setattr(audit_run, "_attack_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        run_audit(
            config,
            model=copy.deepcopy(digits_mlp),
            dataset=digits,
            out=tmp_path / "b",
            show_progress=False,
        )
    assert not (tmp_path / "b" / "report.json").exists()
    finished = sorted(p.name for p in (tmp_path / "b" / "steps").glob("*.json"))
    assert len(finished) == 1 + 3  # the clean step and three attack steps
    assert not list((tmp_path / "b" / "steps").glob("*.partial"))

    calls.clear()
    monkeypatch.setattr(audit_run, "_attack_step", lambda *a: calls.append("x") or real_step(*a))
    resumed = run_audit(
        config,
        model=copy.deepcopy(digits_mlp),
        dataset=digits,
        out=tmp_path / "b",
        show_progress=False,
    )
    assert len(calls) == 6 - 3  # only the unfinished steps ran again
    assert _numbers(resumed.report) == _numbers(reference.report)


def test_changed_settings_do_not_reuse_cached_steps(
    digits, digits_mlp: TorchClassifier, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_audit(
        _config(),
        model=copy.deepcopy(digits_mlp),
        dataset=digits,
        out=tmp_path,
        show_progress=False,
    )
    calls: list[str] = []
    real_step = audit_run._attack_step
    monkeypatch.setattr(audit_run, "_attack_step", lambda *a: calls.append("x") or real_step(*a))
    run_audit(
        _config(attack_settings={"pgd": {"steps": 6}}),
        model=copy.deepcopy(digits_mlp),
        dataset=digits,
        out=tmp_path,
        show_progress=False,
    )
    assert len(calls) == 3  # PGD's three ε values ran again; FGSM's came from the cache


def test_label_only_model_skips_gradient_attacks_and_says_why(digits) -> None:
    def labels(x: np.ndarray) -> np.ndarray:
        return (x.reshape(len(x), -1).mean(1) * 10).astype(np.int64).clip(0, 9)

    model = CallableClassifier(
        labels, input_shape=(1, 8, 8), n_classes=10, bounds=(0, 1), returns="labels"
    )
    config = _config(queries_per_input=20)
    steps, skipped = plan(config, model)
    # The gradient attacks are skipped with the reason; the query attacks a labels-only
    # model allows run instead, at each ε (a black-box model is never left unassessed).
    assert {name for name, _, _ in steps} == {"hopskipjump", "transfer"}
    assert {s["attack"] for s in skipped} == {"fgsm", "pgd"}
    assert all("gradients" in s["reason"] for s in skipped)
    result = run_audit(config, model=model, dataset=digits, show_progress=False)
    verdict = result.report["sections"]["evasion"]["verdict"]
    assert verdict["level"] != "unknown" and verdict["robust_accuracy"] is not None
    jsonschema.validate(json.loads(json.dumps(result.report)), report_schema())


def test_model_and_dataset_must_match(digits_mlp: TorchClassifier) -> None:
    with pytest.raises(ValueError, match="--dataset"):
        run_audit(
            _config(), model=digits_mlp, dataset=load_dataset("breast-cancer"), show_progress=False
        )


@pytest.mark.parametrize(
    ("setting", "value", "name"),
    [
        ("n_samples", 0, "n_samples"),
        ("eps", (-0.1,), "eps"),
        ("attacks", (), "attacks"),
        ("architecture", "resnet", "architecture"),
    ],
)
def test_bad_config_names_the_setting(setting: str, value: Any, name: str) -> None:
    with pytest.raises((ValueError, TypeError), match=name):
        AuditConfig(**{setting: value})


def test_unknown_attack_is_reported_with_the_available_ones(digits_mlp: TorchClassifier) -> None:
    with pytest.raises(ValueError, match=r"available: .*pgd"):
        plan(_config(attacks=("nope",)), digits_mlp)


def test_constrained_adversary_reaches_every_attack_that_keeps_the_rules(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    from advml.models import SklearnClassifier

    ds = load_dataset("breast-cancer")
    estimator = LogisticRegression(max_iter=2000).fit(ds.x_train, ds.y_train)
    model = SklearnClassifier(estimator, bounds=ds.bounds)
    rules = {"immutable": list(range(20)), "ranges": {20: [0.0, 0.75]}}  # test max 0.72
    settings = dict(
        n_samples=80,
        eps=(0.0, 0.1, 0.3),
        attack_settings={"pgd": {"steps": 10}},
        attacks=("fgsm", "pgd", "eot"),
        examples=0,
        sections=("evasion",),
    )
    free = run_audit(AuditConfig(**settings), model=model, dataset=ds, show_progress=False)
    bound = run_audit(
        AuditConfig(**settings, constraints=rules),
        model=model,
        dataset=ds,
        out=tmp_path,
        show_progress=False,
    )
    section = bound.report["sections"]["evasion"]
    jsonschema.validate(json.loads(json.dumps(bound.report)), report_schema())
    assert section["constraints"] == rules
    # EOT transforms images and takes no constraints: skipped, and the report says why.
    assert [s["attack"] for s in section["skipped"]] == ["eot"]
    assert "constraints" in section["skipped"][0]["reason"]
    assert {a["name"] for a in section["attacks"]} == {"fgsm", "pgd"}
    for attack in section["attacks"]:
        assert attack["params"]["constraints"]["immutable"] == rules["immutable"]
        for point in attack["points"]:
            assert point["constraints_satisfied"] == 1.0  # checked on every output

    def robust(report: dict[str, Any], name: str) -> float:
        points = next(a for a in report["sections"]["evasion"]["attacks"] if a["name"] == name)
        return float(points["points"][-1]["robust_accuracy"])  # eps 0.3

    # Two thirds of the features frozen: the attacker does less harm, but still some.
    clean = section["clean_accuracy"]
    assert robust(bound.report, "pgd") > robust(free.report, "pgd")
    assert robust(bound.report, "pgd") < clean
    assert "Constrained adversary" in (tmp_path / "report.html").read_text()
    with pytest.raises(ValueError, match="constraints"):
        AuditConfig(constraints={"frozen": [0]})


def test_report_records_what_its_numbers_depend_on(digits, digits_mlp: TorchClassifier) -> None:
    """Threads, library versions and CPU kernels change float sums and so trained
    weights; the report names them (issue 11 §2.7)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        report = run_audit(
            _config(n_samples=20, eps=(0.0,), attacks=("fgsm",)),
            model=copy.deepcopy(digits_mlp),
            dataset=digits,
            show_progress=False,
        ).report
    finally:
        torch.set_num_threads(before)
    jsonschema.validate(report, report_schema())
    env = report["environment"]
    assert env["torch_threads"] == 2
    assert env["torch_interop_threads"] == torch.get_num_interop_threads()
    assert env["torch"] == torch.__version__
    assert env["numpy"] == np.__version__
    assert env["python"] == platform.python_version()
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert env["device"] == "cpu"
    assert report["schema_version"] == SCHEMA_VERSION
    assert report["model"]["fingerprint"] == digits_mlp.fingerprint()
    assert report["model"]["description"] == digits_mlp.describe()
    html = render_html(report)
    assert f"torch {torch.__version__} on cpu, 2 threads" in html
