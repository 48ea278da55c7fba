"""An audit of a paid API with a query budget: every section keeps what it paid for.

The digits MLP behind a counting ``CallableClassifier(query_budget=...)``. When the budget
runs out in a section, the step records it and the figures the earlier steps paid for
stay in the report (or, when nothing was measured, the section is listed as not assessed
with the queries it spent); the audit finishes its report. The API is asked exactly the
budget, never more.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest

from advml.audit import AuditConfig, run_audit
from advml.data import Dataset, load_dataset
from advml.errors import QueryBudgetExceededError
from advml.extraction import Copycat, EquationSolving, transfer_evasion
from advml.models import CallableClassifier, TorchClassifier
from advml.report import report_schema


class CountingAPI:
    """A paid prediction API: counts every input it is asked about."""

    def __init__(self, model: TorchClassifier) -> None:
        self.model = model
        self.asked = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.asked += len(x)
        return np.asarray(self.model.predict_proba(x))


def _paid(model: TorchClassifier, budget: int) -> tuple[CountingAPI, CallableClassifier]:
    api = CountingAPI(model)
    return api, CallableClassifier(
        api, input_shape=(1, 8, 8), n_classes=10, bounds=(0.0, 1.0), query_budget=budget
    )


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


def _config(**kw: Any) -> AuditConfig:
    settings = {"attacks": ("square",), "eps": (0.1,), "n_samples": 40, "profile": "quick"}
    return AuditConfig(dataset="digits", **{**settings, **kw})  # type: ignore[arg-type]


def test_an_audit_on_a_small_budget_finishes_its_report_and_spends_exactly_the_budget(
    digits_mlp: TorchClassifier, digits: Dataset, tmp_path: Path
) -> None:
    # 12,000 queries: evasion and membership finish, inversion finds too few left, and
    # extraction steals with what remains (measured: 65 queries, 40 of them evaluation).
    api, model = _paid(digits_mlp, 12_000)
    sections = ("evasion", "membership", "inversion", "extraction")
    result = run_audit(
        _config(sections=sections), model=model, dataset=digits, out=tmp_path, show_progress=False
    )
    assert api.asked == model.query_count == 12_000
    report = result.report
    jsonschema.validate(report, report_schema())
    assert json.loads((tmp_path / "report.json").read_text())["sections"].keys() == {
        "evasion",
        "membership",
        "extraction",
    }
    assert (tmp_path / "report.html").stat().st_size > 0
    (inversion,) = [s for s in report["skipped_sections"] if s["section"] == "inversion"]
    assert inversion["reason"].startswith("the model's query budget ran out")
    assert inversion["queries_spent"] == 0  # refused before it spent anything
    extraction = report["sections"]["extraction"]
    stealing = extraction["stealing"]
    # The copy was trained on the answers paid for, and the report says so.
    assert "query budget ran out" in stealing["budget_ran_out"]
    assert 0 < stealing["queries"] == stealing["curve"][-1]["queries"]
    assert stealing["fidelity_random"] is None and stealing["transfer"] is None
    assert extraction["equation_solving"]["status"] == "skipped"
    assert all("query budget ran out" in h["skipped"] for h in extraction["hardening"])
    # A copy from a starved budget does not make the model "hard to steal".
    assert extraction["verdict"]["level"] != "pass"


def test_a_budget_that_runs_out_in_membership_keeps_the_threshold_attacks(
    digits_mlp: TorchClassifier, digits: Dataset
) -> None:
    # 40 clean predictions and the 510 recorded answers of the threshold attacks are paid
    # for; the label-only attack (2,700 queries unlimited) is not.
    api, model = _paid(digits_mlp, 40 + 510 + 1000)
    report = run_audit(
        _config(sections=("membership",)), model=model, dataset=digits, show_progress=False
    ).report
    assert api.asked <= 1550
    membership = report["sections"]["membership"]
    names = [a["name"] for a in membership["attacks"]]
    assert names == ["loss_threshold", "confidence_threshold", "modified_entropy"]
    (label_only,) = membership["skipped"]
    assert label_only["attack"] == "label-only"
    assert "query budget ran out" in label_only["reason"]
    assert membership["verdict"]["level"] in ("pass", "warn", "fail")


def test_copycat_trains_the_copy_on_the_answers_paid_for(
    digits_mlp: TorchClassifier, digits_data: Any
) -> None:
    api, model = _paid(digits_mlp, 300)
    attack = Copycat(strategy="pool", queries=400, rounds=3, epochs=3, min_steps=20, seed=0)
    x_eval = digits_data.x_test[:40]
    with pytest.raises(QueryBudgetExceededError, match="trained on the 260 answers") as info:
        attack.extract(model, digits_data.x_train, x_eval=x_eval, n_random=0)
    assert api.asked == 300  # 40 evaluation answers and 260 answers stolen
    partial = info.value.partial_result
    assert partial.queries == 260
    assert [p.queries for p in partial.curve] == [100, 200, 260]
    # The copy is the one trained on them: its agreement is measured, not assumed.
    agree = np.asarray(partial.stolen.predict(x_eval)) == digits_mlp.predict(x_eval)
    assert partial.fidelity == pytest.approx(float(agree.mean()), abs=1e-6)


def test_extraction_refuses_what_the_budget_cannot_pay_for_before_spending(
    digits_mlp: TorchClassifier, digits_data: Any
) -> None:
    api, model = _paid(digits_mlp, 39)
    x = digits_data.x_test[:40]
    with pytest.raises(QueryBudgetExceededError, match="40 evaluation inputs"):
        Copycat(queries=10, rounds=1).extract(model, digits_data.x_train, x_eval=x, n_random=0)
    with pytest.raises(QueryBudgetExceededError, match="65 queries"):
        EquationSolving().extract(model, n_random=0)
    with pytest.raises(QueryBudgetExceededError, match="20 clean and 20 adversarial"):
        transfer_evasion(digits_mlp, model, x[:20], settings={"eps": 0.1, "steps": 2})
    assert api.asked == 0


def test_a_budget_that_runs_out_in_the_defences_section_keeps_the_defences_measured(
    digits_mlp: TorchClassifier, digits: Dataset
) -> None:
    # A white-box model with a budget: the undefended attack and the first defences are
    # paid for (3,823 queries without a budget), the rest are listed as skipped.
    model = TorchClassifier(
        digits_mlp.module, input_shape=(1, 8, 8), n_classes=10, bounds=(0.0, 1.0), query_budget=1200
    )
    report = run_audit(
        _config(attacks=("pgd",), sections=("defences", "watermark")),
        model=model,
        dataset=digits,
        show_progress=False,
    ).report
    assert model.query_count <= 1200
    section = report["sections"]["defences"]
    assert section["undefended"] and section["defences"]
    out = [s for s in section["skipped"] if "query budget ran out" in s["reason"]]
    assert out and {s["defence"] for s in out}.isdisjoint(r["name"] for r in section["defences"])
    (watermark,) = report["skipped_sections"]
    assert watermark["section"] == "watermark" and watermark["queries_spent"] == 0


def test_a_budget_that_runs_out_in_inversion_keeps_the_reconstructions_paid_for(
    digits_mlp: TorchClassifier, digits: Dataset
) -> None:
    # Unlimited, MI-Face spends 6,000 queries here: 60 zeroth-order steps of 2 x 10
    # directions x 10 classes, and the 10 reconstructions' final check. About 2,000 pay
    # for 9 steps: 1,810 queries, leaving less than a step and its check.
    api, model = _paid(digits_mlp, 40 + 2000)
    settings = {"inversion": {"hardening": {}}}
    config = _config(sections=("inversion",), section_settings=settings)
    report = run_audit(config, model=model, dataset=digits, show_progress=False).report
    section = report["sections"]["inversion"]
    assert "query budget ran out after" in section["budget_ran_out"]
    assert section["queries"] == 9 * 200 + 10
    assert 0 <= 2040 - api.asked < 200 + 10
    assert len(section["per_class"]) == 10 and section["verdict"]["level"] in ("warn", "unknown")


def test_a_step_cut_short_is_not_stored_so_a_rerun_with_a_larger_budget_completes_it(
    digits_mlp: TorchClassifier, digits: Dataset, tmp_path: Path
) -> None:
    config = _config(sections=("evasion",))
    _, small = _paid(digits_mlp, 1000)
    first = run_audit(config, model=small, dataset=digits, out=tmp_path, show_progress=False)
    (point,) = first.report["sections"]["evasion"]["attacks"][0]["points"]
    assert "budget_ran_out" in point
    api, large = _paid(digits_mlp, 100_000)
    again = run_audit(config, model=large, dataset=digits, out=tmp_path, show_progress=False)
    (point,) = again.report["sections"]["evasion"]["attacks"][0]["points"]
    assert "budget_ran_out" not in point and api.asked > 16  # the attack ran again in full
