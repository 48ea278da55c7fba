"""The audit's backdoor section: poison, retrain, measure, defend, report.

A tiny digits audit (the reference MLP, 120 evaluated inputs, 8 training epochs of the
backdoored copy): the report is schema-valid, the backdoor is planted, fine-pruning
measures against it, the HTML shows the four pictures, and a resumed audit recomputes
nothing. The section is skipped when the threat model gives the adversary no poisoning,
and for a model advml cannot retrain.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import advml.audit.sections.backdoor as section_module
from advml.audit import AuditConfig, run_audit
from advml.audit.sections import available_sections
from advml.models import TorchClassifier
from advml.report import report_schema

TINY: dict[str, Any] = {"epochs": 8, "pruning_steps": 8, "fine_pruning_epochs": 5}


def _config(**settings: Any) -> AuditConfig:
    return AuditConfig.quick(
        sections=("backdoor",), n_samples=120, section_settings={"backdoor": {**TINY, **settings}}
    )


def test_section_is_discovered() -> None:
    section = available_sections()["backdoor"]
    assert section.threat == "integrity"
    assert set(section.quick_settings) <= set(section.default_settings)
    assert section.default_settings["fraction"] == 0.1


@pytest.mark.slow
def test_tiny_audit_plants_measures_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = run_audit(_config(), out=tmp_path, show_progress=False)
    jsonschema.validate(json.loads(json.dumps(first.report)), report_schema())
    section = first.report["sections"]["backdoor"]
    assert section["n_poisoned"] == round(0.1 * section["n_train"])
    assert section["n_validation"] + section["n_evaluation"] == 120
    assert section["attack_success"] >= 0.9  # the backdoor takes on digits at 10%
    assert section["clean_accuracy"] >= section["audited_clean_accuracy"] - 0.1
    curve = section["pruning"]["curve"]
    assert curve["fractions"][0] == 0 and curve["fractions"][-1] == 1
    assert curve["attack_success"][0] == pytest.approx(section["attack_success"])
    assert section["fine_pruning"]["attack_success"] < section["attack_success"]
    fine = section["fine_pruning"]
    # The repair is judged against the trigger the audit planted, and said so.
    assert fine["repair_failed"] == (fine["attack_success"] > fine["max_success"])
    assert fine["epochs"] == 5 and fine["lr"] in [row["lr"] for row in fine["lr_search"]]
    assert ("(repair failed)" in (tmp_path / "report.html").read_text()) == any(
        section[k]["repair_failed"] for k in ("pruning", "fine_pruning")
    )
    ac = section["detectors"]["activation_clustering"]
    assert [c["class"] for c in ac["per_class"]] == list(range(10))
    assert {c["class"] for c in ac["per_class"] if c["poisoned"]} == set(ac["flagged_classes"])
    assert section["verdict"]["level"] in ("warn", "fail")
    html = (tmp_path / "report.html").read_text()
    for fig in ("trigger", "profile", "pruning", "detectors"):
        assert f"fig-backdoor-{fig}" in html
    # Resume: every step is read back, nothing is trained or measured again.
    calls: list[str] = []
    monkeypatch.setattr(section_module, "_measure", lambda *a, **k: calls.append("m"))
    monkeypatch.setattr(
        "advml.audit.sections.base.AuditContext.train_like",
        lambda *a, **k: calls.append("t"),
    )
    again = run_audit(_config(), out=tmp_path, show_progress=False)
    assert calls == []
    strip = {"created", "seconds"}
    assert {k: v for k, v in again.report["sections"].items()} == {
        k: v for k, v in first.report["sections"].items()
    }
    assert set(again.report) - strip == set(first.report) - strip


def test_skipped_without_poisoning_capability(tmp_path: Path) -> None:
    result = run_audit(_config(fraction=0.0), out=tmp_path, show_progress=False)
    assert "backdoor" not in result.report["sections"]
    (skip,) = result.report["skipped_sections"]
    assert skip["section"] == "backdoor" and "cannot poison" in skip["reason"]


def test_skipped_for_a_model_it_cannot_retrain(digits_mlp: TorchClassifier, tmp_path: Path) -> None:
    import torch

    from advml.data import load_dataset

    # A user's network is retrained from fresh weights; one with a parameter advml
    # cannot draw afresh (no reset_parameters, not a weight or bias) cannot be.
    module = copy.deepcopy(digits_mlp.module)
    module.register_parameter("temperature", torch.nn.Parameter(torch.ones(1)))
    model = TorchClassifier(module, input_shape=(1, 8, 8), n_classes=10)
    result = run_audit(
        _config(), model=model, dataset=load_dataset("digits"), out=tmp_path, show_progress=False
    )
    (skip,) = result.report["skipped_sections"]
    assert "retrain" in skip["reason"] and "temperature" in skip["reason"]


def test_bad_setting_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fraction"):
        run_audit(_config(fraction=0.9), out=tmp_path, show_progress=False)
    with pytest.raises(ValueError, match="unknown keys"):
        run_audit(_config(nope=1), out=tmp_path, show_progress=False)


def test_renderer_shows_the_reversed_trigger_beside_the_real_one() -> None:
    import numpy as np

    from advml.report.sections.backdoor import render

    mask = np.zeros((8, 8), dtype=np.float32)
    mask[5:8, 5:8] = 1
    curve = {"fractions": [0.0, 0.5, 1.0], "clean_accuracy": [0.9, 0.8, 0.1]}
    section = {
        "target": 0, "n_poisoned": 10, "n_train": 100, "fraction": 0.1, "n_evaluation": 50,
        "reduced": {"note": "trained briefly"},
        "verdict": {"level": "warn", "label": "x", "text": "y"},
        "audited_clean_accuracy": 0.9, "clean_accuracy": 0.9, "attack_success": 1.0,
        "pruning": {"fraction_pruned": 0.5, "clean_accuracy": 0.8, "attack_success": 0.5,
                    "crossing": None, "layer": "fc2",
                    "curve": {**curve, "attack_success": [1.0, 0.5, None]}},
        "fine_pruning": {"clean_accuracy": 0.85, "attack_success": 0.02, "epochs": 1},
        "neuron_analysis": {"layer": "fc2", "n_backdoor_units": 1},
        "detectors": {
            "activation_clustering": {
                "target_class": {"precision": 1.0, "recall": 0.5, "f1": 0.67}
            },
            "strip": {"detection_rate": 0.9, "false_rejection": 0.01},
            "neural_cleanse": {"flagged": True, "target": 0, "max_anomaly_index": 3.1},
        },
        "data_used": {"strip": "clean inputs"},
    }  # fmt: skip
    report = {"dataset": {"class_names": [str(i) for i in range(10)], "bounds": [0.0, 1.0]}}
    artifacts = {"trigger_mask": mask, "nc_mask": mask * 0.8}
    html = render(section, artifacts, report)
    assert "fig-backdoor-neural-cleanse" in html and "backdoor to" not in html
    assert "flagged the model (target 0)" in html
    assert "never brings attack success down to 5%" in html
