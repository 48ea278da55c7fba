"""The audit's membership and inversion sections on tiny digits audits.

The report is schema-valid and its numbers agree with each other; the members are the
reference model's real training records; labels-only access leaves the label-only
attack and skips inversion with the reason; a resumed audit recomputes nothing.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from advml.audit import AuditConfig, run_audit
from advml.audit.sections import available_sections
from advml.audit.sections.membership import reference_members
from advml.data import Dataset, load_dataset
from advml.models import TorchClassifier, train
from advml.models.architectures import build
from advml.report import report_schema

TINY: dict[str, dict[str, Any]] = {
    "membership": {"n_members": 60, "label_only_records": 20, "label_only_perturbations": 3},
    "inversion": {"max_classes": 4, "steps": 40, "zo_steps": 5, "zo_directions": 3},
}


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


def _config(**changes: Any) -> AuditConfig:
    settings = copy.deepcopy(TINY)
    for section, extra in changes.pop("section_settings", {}).items():
        settings[section].update(extra)
    return AuditConfig.quick(
        sections=("membership", "inversion"), n_samples=40, section_settings=settings, **changes
    )


def _valid(report: dict[str, Any]) -> dict[str, Any]:
    jsonschema.validate(json.loads(json.dumps(report)), report_schema())
    return dict(report["sections"])


def test_sections_are_discovered_as_confidentiality() -> None:
    sections = available_sections()
    for name in ("membership", "inversion"):
        assert sections[name].threat == "confidentiality"
        assert set(sections[name].quick_settings) <= set(sections[name].default_settings)


def test_reference_members_repeat_the_training_loops_validation_split(digits: Dataset) -> None:
    """The records reference_members calls non-members are exactly the early-stopping
    records train() held out: its first validation loss is the loss on them."""
    x, y = digits.x_train[:300], digits.y_train[:300]
    torch.manual_seed(0)
    module = build("mlp", input_shape=(1, 8, 8), n_classes=10)
    model = TorchClassifier(module, input_shape=(1, 8, 8), n_classes=10)
    history = train(model, x, y, epochs=1, seed=7, show_progress=False)
    members = reference_members(300, seed=7)
    assert (~members).sum() == 30
    with torch.no_grad():
        held = torch.as_tensor(x[~members])
        loss = float(F.cross_entropy(model.forward(held), torch.as_tensor(y[~members])))
    assert loss == pytest.approx(history.val_loss[0], rel=1e-5)
    wrong = reference_members(300, seed=8)
    with torch.no_grad():
        other = float(
            F.cross_entropy(model.forward(torch.as_tensor(x[~wrong])), torch.as_tensor(y[~wrong]))
        )
    assert other != pytest.approx(history.val_loss[0], rel=1e-5)


@pytest.mark.slow
def test_tiny_audit_is_schema_valid_consistent_and_resumes(tmp_path: Path) -> None:
    first = run_audit(_config(), out=tmp_path, show_progress=False)
    sections = _valid(first.report)
    m = sections["membership"]
    assert m["n_members"] == m["n_non_members"] == 60
    assert "training records the reference model was trained on" in m["members_source"]
    names = [a["name"] for a in m["attacks"]]
    assert names == ["loss_threshold", "confidence_threshold", "modified_entropy", "label_only"]
    for a in m["attacks"]:
        assert 0 <= a["tpr_at_0_1_fpr"] <= a["tpr_at_1_fpr"] <= 1
        assert a["advantage"] == pytest.approx(2 * a["balanced_accuracy"] - 1)
        assert a["curve"]["fpr"][0] == 0 and a["curve"]["tpr"][-1] == 1
    loss = m["attacks"][0]
    # One query per candidate and per population record (the rest of the test split).
    assert loss["queries"] == 120 + m["n_population"] == 120 + 300
    label_only = m["attacks"][-1]
    assert label_only["n_members"] == 20 and label_only["queries"] == 4 * (40 + 20)
    hardening = {h["defence"]: h for h in m["hardening"]}
    assert set(hardening) == {"labels_only", "top_k", "rounding"}
    assert hardening["labels_only"]["attacks"] == []
    assert "label-only attack remains" in hardening["labels_only"]["note"]
    # Top-1 output still reveals the top probability itself: the confidence attack's
    # float64 score, renormalised 1 - (C - 1) * 1e-12 / p_top, orders the records as the
    # full output does, so hiding the other classes leaves it its whole AUC (float32 scores
    # rounded every one of them to 1 and hid this).
    top1 = {a["name"]: a for a in hardening["top_k"]["attacks"]}
    plain = {a["name"]: a for a in m["attacks"]}
    assert top1["confidence_threshold"]["auc"] == pytest.approx(
        plain["confidence_threshold"]["auc"], abs=1e-12
    )
    v = m["verdict"]
    assert v["membership_auc"] == max(a["auc"] for a in m["attacks"])
    assert v["level"] in ("pass", "warn", "fail")

    inv = sections["inversion"]
    assert inv["gradient"] == "white-box" and len(inv["per_class"]) == 4
    assert inv["recognition_rate"] == np.mean(
        [c["class"] == c["judged_as"] for c in inv["per_class"]]
    )
    assert inv["queries"] == 4 * 41
    blocked = {h["defence"]: h for h in inv["hardening"]}
    assert blocked["labels_only"]["blocked"] is True
    plain = blocked["none"]  # the same zeroth-order budget without a defence
    assert plain["gradient"] == "zeroth-order" and plain["queries"] == 4 * (5 * 6 + 1)
    rounding = blocked["rounding"]
    assert rounding["gradient"] == "zeroth-order" and rounding["queries"] == 4 * (5 * 6 + 1)
    html = (tmp_path / "report.html").read_text()
    for fig in ("fig-membership-roc", "fig-inversion"):
        assert f"id='{fig}'" in html
    assert "confidentiality" in first.report["summary"]
    log_before = (tmp_path / "audit.log").read_text()

    second = run_audit(_config(), out=tmp_path, show_progress=False)
    log = (tmp_path / "audit.log").read_text()[len(log_before) :]
    assert not re.search(r"(membership|inversion): running", log), log
    assert re.search(r"membership: threshold already done", log)
    assert second.report["sections"] == first.report["sections"]


def test_labels_only_access_keeps_label_only_and_skips_inversion(tmp_path: Path) -> None:
    result = run_audit(_config(access="labels"), show_progress=False)
    sections = _valid(result.report)
    assert "inversion" not in sections
    skipped = {s["section"]: s["reason"] for s in result.report["skipped_sections"]}
    assert "labels only" in skipped["inversion"]
    m = sections["membership"]
    assert [a["name"] for a in m["attacks"]] == ["label_only"]
    assert {s["attack"] for s in m["skipped"]} == {
        "loss_threshold",
        "confidence_threshold",
        "modified_entropy",
    }
    assert m["hardening"] == []


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("membership", "n_members", 1),
        ("membership", "attacks", ["lira"]),
        ("membership", "hardening", {"blur": {}}),
        ("membership", "dp_noise", [0.0]),
        ("inversion", "steps", 0),
        ("inversion", "hardening", ["rounding"]),
    ],
)
def test_bad_settings_are_named(section: str, key: str, value: Any) -> None:
    config = _config(section_settings={section: {key: value}})
    with pytest.raises(ValueError, match=key):
        run_audit(config, show_progress=False)


@pytest.mark.slow
def test_dp_noise_adds_the_privacy_utility_rows(tmp_path: Path) -> None:
    config = AuditConfig.quick(
        sections=("membership",),
        n_samples=40,
        section_settings={
            "membership": {
                **TINY["membership"],
                "label_only_records": 0,
                "hardening": {},
                "dp_noise": [2.0],
                "dp_epochs": 1,
            }
        },
    )
    result = run_audit(config, out=tmp_path, show_progress=False)
    m = _valid(result.report)["membership"]
    plain, dp = m["trade_off"]["rows"]
    assert plain["epsilon"] is None
    assert plain["accuracy"] == result.report["model"]["clean_accuracy"]
    assert plain["auc"] == m["attacks"][0]["auc"]
    # One epoch of DP-SGD at sigma 2 on ~1,300 records: a small, finite epsilon.
    assert 0 < dp["epsilon"] < 2 and dp["noise_multiplier"] == 2.0
    assert 0 <= dp["accuracy"] <= 1 and 0 <= dp["auc"] <= 1
    assert "Privacy and utility" in (tmp_path / "report.html").read_text()


@pytest.mark.slow
def test_lira_runs_with_shadows_trained_like_the_model() -> None:
    config = AuditConfig.quick(
        sections=("membership",),
        n_samples=40,
        section_settings={
            "membership": {
                **TINY["membership"],
                "n_members": 30,
                "label_only_records": 0,
                "hardening": {},
                "lira_shadows": 2,
            }
        },
    )
    m = _valid(run_audit(config, show_progress=False).report)["membership"]
    lira = m["attacks"][-1]
    assert lira["name"] == "lira" and lira["shadows"] == 2
    assert lira["n_members"] == lira["n_non_members"] == 30
    assert lira["queries"] == 60  # one target query per candidate; shadows cost none
    assert 0 <= lira["auc"] <= 1


def test_lira_is_skipped_with_the_reason_for_a_model_advml_cannot_retrain(
    digits_mlp: TorchClassifier, digits: Dataset
) -> None:
    config = AuditConfig.quick(
        sections=("membership",),
        n_samples=40,
        section_settings={
            "membership": {**TINY["membership"], "label_only_records": 0, "lira_shadows": 2}
        },
    )
    result = run_audit(config, model=copy.deepcopy(digits_mlp), dataset=digits, show_progress=False)
    m = _valid(result.report)["membership"]
    assert "taken to be the data the model was trained on" in m["members_source"]
    (skip,) = m["skipped"]
    assert skip["attack"] == "lira" and "reference models" in skip["reason"]
