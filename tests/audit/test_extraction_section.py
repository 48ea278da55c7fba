"""The audit's extraction section: stealing, transfer, equation solving and hardening.

Tiny digits audits (a few seconds each): the report is schema-valid, the numbers are
consistent with each other, a linear model is recovered exactly while labels-only output
refuses equation solving, and a resumed audit recomputes nothing.
"""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from sklearn.linear_model import LogisticRegression

from advml.audit import AuditConfig, run_audit
from advml.audit.sections import available_sections
from advml.audit.sections.extraction import query_cost
from advml.data import Dataset, load_dataset
from advml.models import SklearnClassifier, TorchClassifier
from advml.report import report_schema

TINY: dict[str, Any] = {
    "queries": 120,
    "rounds": 2,
    "epochs": 3,
    "min_steps": 20,
    "n_random": 200,
    "transfer_inputs": 30,
    "transfer_steps": 5,
}


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


def _config(**extraction: Any) -> AuditConfig:
    return AuditConfig.quick(
        sections=("extraction",),
        n_samples=60,
        section_settings={"extraction": {**TINY, **extraction}},
    )


def _valid(report: dict[str, Any]) -> dict[str, Any]:
    jsonschema.validate(json.loads(json.dumps(report)), report_schema())
    return dict(report["sections"]["extraction"])


def test_section_is_discovered() -> None:
    section = available_sections()["extraction"]
    assert section.threat == "confidentiality"
    assert set(section.quick_settings) <= set(section.default_settings)


@pytest.mark.slow
def test_tiny_audit_is_consistent_and_resumes_without_recomputing(
    digits_mlp: TorchClassifier, digits: Dataset, tmp_path: Path
) -> None:
    config = _config()
    first = run_audit(
        config, model=copy.deepcopy(digits_mlp), dataset=digits, out=tmp_path, show_progress=False
    )
    s = _valid(first.report)
    stealing = s["stealing"]
    assert s["outputs"] == stealing["outputs"] == "scores"
    assert stealing["queries"] == 120
    assert [p["queries"] for p in stealing["curve"]] == [60, 120]
    assert stealing["fidelity"] == stealing["curve"][-1]["fidelity"]
    # The evaluation inputs (60) and the random ones (200) are queried apart from the budget.
    assert stealing["eval_queries"] == 60 + 200
    assert stealing["victim_accuracy"] == pytest.approx(first.report["model"]["clean_accuracy"])
    transfer = stealing["transfer"]
    assert transfer["n"] == 30 and transfer["victim_queries"] == 60
    assert transfer["eps"] == config.reference_eps
    # An MLP is not linear: d + 1 equations give a linear stand-in, not the model.
    eq = s["equation_solving"]
    assert eq["status"] == "approximate" and eq["queries"] == eq["minimum_queries"] == 65
    assert eq["fidelity_random"] < 0.999
    by_name = {h["defence"]: h for h in s["hardening"]}
    assert set(by_name) == {"labels_only", "top_k", "rounding"}
    assert by_name["labels_only"]["outputs"] == "labels"
    assert by_name["top_k"]["outputs"] == by_name["rounding"]["outputs"] == "scores"
    for h in by_name.values():
        assert h["queries"] == 120 and [p["queries"] for p in h["curve"]] == [60, 120]
        # Every defence here keeps the label: the API is as accurate as the model.
        assert h["utility"]["accuracy"] == pytest.approx(first.report["model"]["clean_accuracy"])
        assert h["query_cost"] == query_cost(stealing["curve"], h["fidelity"])
    assert by_name["labels_only"]["utility"]["score_change"] > 0
    assert first.report["summary"]["confidentiality"]["verdicts"][0]["section"] == "extraction"
    html = (tmp_path / "report.html").read_text()
    assert "id='fig-extraction-curve'" in html and "Output hardening" in html

    log = tmp_path / "audit.log"
    ran_before = log.read_text().count("extraction: running")
    assert ran_before == 5  # copycat, equation solving, three hardened APIs
    second = run_audit(
        config, model=copy.deepcopy(digits_mlp), dataset=digits, out=tmp_path, show_progress=False
    )
    text = log.read_text()
    assert text.count("extraction: running") == ran_before
    assert len(re.findall(r"extraction: \S+ already done", text)) == ran_before
    assert second.report["sections"]["extraction"] == first.report["sections"]["extraction"]


def test_linear_model_is_recovered_exactly_and_labels_only_refuses(
    digits: Dataset, tmp_path: Path
) -> None:
    x = digits.x_train.reshape(len(digits.x_train), -1)
    est = LogisticRegression(max_iter=2000).fit(x, digits.y_train)
    model = SklearnClassifier(est, bounds=(0.0, 1.0), input_shape=(1, 8, 8))
    config = _config(hardening={"labels_only": {}, "top_k": {"k": 1}})
    s = _valid(run_audit(config, model=model, dataset=digits, show_progress=False).report)
    eq = s["equation_solving"]
    assert eq["status"] == "exact"
    assert eq["queries"] == 65 and eq["fidelity"] == eq["fidelity_random"] == 1.0
    by_name = {h["defence"]: h for h in s["hardening"]}
    refused = by_name["labels_only"]["equation_solving"]
    assert refused["status"] == "impossible" and "labels only" in refused["reason"]
    # Top-1 reveals one probability per answer, and only its own class: no equation.
    assert by_name["top_k"]["equation_solving"]["status"] == "failed"
    verdict = s["verdict"]
    assert verdict["level"] == "fail" and verdict["equation_exact"] is True
    assert "65 questions" in verdict["text"]


def test_label_only_access(digits_mlp: TorchClassifier, digits: Dataset) -> None:
    config = _config(hardening={"labels_only": {}, "rounding": {"decimals": 1}}).with_(
        access="labels"
    )
    report = run_audit(config, model=copy.deepcopy(digits_mlp), dataset=digits).report
    s = _valid(report)
    assert s["outputs"] == s["stealing"]["outputs"] == "labels"
    assert s["equation_solving"]["status"] == "impossible"
    assert "labels only" in s["equation_solving"]["reason"]
    skipped = {h["defence"]: h["skipped"] for h in s["hardening"]}
    assert skipped == {
        "labels_only": "the model already answers labels only",
        "rounding": "probabilities rounded to 1 decimals transforms scores; the model "
        "answers labels only",
    }
    assert "reading its labels" in s["verdict"]["text"]


def test_parts_turned_off_are_reported_as_such(
    digits_mlp: TorchClassifier, digits: Dataset, tmp_path: Path
) -> None:
    config = _config(hardening={}, transfer_inputs=0, equation_solving=False, n_random=0)
    result = run_audit(config, model=copy.deepcopy(digits_mlp), dataset=digits, out=tmp_path)
    s = _valid(result.report)
    assert s["stealing"]["transfer"] is None and s["hardening"] == []
    assert s["stealing"]["fidelity_random"] is None
    assert s["equation_solving"] == {
        "status": "skipped",
        "reason": "turned off (equation_solving: false)",
    }
    assert s["verdict"]["transfer_success"] is None
    html = (tmp_path / "report.html").read_text()
    assert "turned off (equation_solving: false)" in html and "Output hardening" not in html


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"hardening": {"no_such_defence": {}}}, "hardening"),
        ({"queries": 5000}, "queries"),
        ({"n_random": -1}, "n_random"),
        ({"transfer_eps": "big"}, "transfer_eps"),
        ({"no_such_key": 1}, "no_such_key"),
    ],
)
def test_bad_settings_name_the_key(
    settings: dict[str, Any], match: str, digits_mlp: TorchClassifier, digits: Dataset
) -> None:
    with pytest.raises(ValueError, match=match):
        run_audit(_config(**settings), model=copy.deepcopy(digits_mlp), dataset=digits)


def test_query_cost_interpolates_on_log_queries() -> None:
    curve = [
        {"queries": 100, "fidelity": 0.5},
        {"queries": 200, "fidelity": 0.7},
        {"queries": 400, "fidelity": 0.9},
    ]
    cost = query_cost(curve, 0.8)
    assert cost["bound"] == "about" and cost["equivalent_queries"] == round(math.sqrt(200 * 400))
    assert cost["factor"] == pytest.approx(400 / math.sqrt(200 * 400))
    reached = query_cost(curve, 0.7)
    assert reached["equivalent_queries"] == 200 and reached["factor"] == pytest.approx(2.0)
    assert query_cost(curve, 0.95) == {"equivalent_queries": 400, "factor": 1.0, "bound": "none"}
    assert query_cost(curve, 0.4) == {
        "equivalent_queries": None,
        "factor": 4.0,
        "bound": "at least",
    }
    # After a dip the curve counts as having kept its best level so far.
    dip = [
        {"queries": 100, "fidelity": 0.8},
        {"queries": 200, "fidelity": 0.6},
        {"queries": 400, "fidelity": 0.9},
    ]
    assert query_cost(dip, 0.85)["equivalent_queries"] == round(math.sqrt(200 * 400))
    assert query_cost(dip, 0.7)["bound"] == "at least"
