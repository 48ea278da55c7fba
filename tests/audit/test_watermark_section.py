"""The audit's watermark section: embed, verify, check false claims, attack, report.

Tiny digits audits: the report is schema-valid, both default schemes are verified on the
marked copy and not claimed on the independent or the unmarked model, the robustness
table prices removal, the HTML shows the two pictures, and a resumed audit recomputes
nothing.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import torch

import advml.audit.sections.watermark as section_module
from advml.audit import AuditConfig, run_audit
from advml.audit.sections import available_sections
from advml.data import Dataset, load_dataset
from advml.models import CallableClassifier, TorchClassifier
from advml.report import report_schema
from advml.watermark import WatermarkScheme

TINY: dict[str, Any] = {
    "scheme_settings": {
        "uchida": {"epochs": 3},
        "adi": {"n_triggers": 30, "epochs": 6, "trigger_batch": 32},
    },
    "attacks": ["prune", "ftal"],
    "attack_settings": {"prune": {"rate": 0.5}, "ftal": {"epochs": 3}},
    "independent_epochs": 10,
    "examples": 4,
}


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


def _config(**overrides: Any) -> AuditConfig:
    settings = {**TINY, **overrides.pop("watermark", {})}
    return AuditConfig.quick(
        sections=("watermark",),
        n_samples=120,
        section_settings={"watermark": settings},
        **overrides,
    )


def _valid(report: dict[str, Any]) -> dict[str, Any]:
    jsonschema.validate(json.loads(json.dumps(report)), report_schema())
    return dict(report["sections"]["watermark"])


def test_section_is_discovered() -> None:
    section = available_sections()["watermark"]
    assert section.threat == "ownership"
    assert set(section.quick_settings) <= set(section.default_settings)
    assert section.default_settings["schemes"] == ["uchida", "adi"]


@pytest.mark.slow
def test_tiny_audit_proves_ownership_and_resumes_without_recomputing(
    digits_mlp: TorchClassifier,
    digits: Dataset,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = _config()
    model = copy.deepcopy(digits_mlp)
    before = [p.detach().clone() for p in model.module.parameters()]
    first = run_audit(config, model=model, dataset=digits, out=tmp_path, show_progress=False)
    # The audited model itself is never changed: the section marks copies.
    assert all(torch.equal(a, p) for a, p in zip(before, model.module.parameters(), strict=True))
    s = _valid(first.report)
    assert s["access"] == "white-box" and s["skipped"] == []
    by_name = {x["name"]: x for x in s["schemes"]}
    assert set(by_name) == {"uchida", "adi"}
    assert by_name["uchida"]["kind"] == "white-box" and by_name["adi"]["kind"] == "trigger-set"
    for x in s["schemes"]:
        v = x["verification"]
        assert v["verified"] and v["chance_probability"] < 1e-6
        assert x["accuracy_cost"] <= 0.03  # a few of the 120 evaluated inputs at most
        for other in (x["independent"], x["unmarked"]):
            assert not other["verified"] and other["chance_probability"] > 1e-3
        assert [r["name"] for r in x["removal"]] == ["prune", "ftal"]
        assert [r["label"] for r in x["removal"]] == ["prune 50%", "FTAL, 3 epochs"]
    uchida, adi = by_name["uchida"], by_name["adi"]
    assert uchida["verification"]["queries"] == 0 and uchida["key_size"] == 64
    assert uchida["verification"]["chance_probability"] == pytest.approx(2.0**-64)
    assert adi["verification"]["queries"] == 30 and adi["null_rate"] == pytest.approx(0.1)
    # The fewest matches of 30 that a model guessing one label in 10 reaches with p < 1e-4.
    assert adi["threshold"] == 11
    # Fine-tuning cannot move the signature bits of the Uchida layer back to chance.
    assert all(r["detected"] for r in uchida["removal"])
    assert s["independent_model"]["accuracy"] > 0.8
    verdict = s["verdict"]
    assert verdict["verified_schemes"] == 2 and verdict["false_claims"] == 0
    assert verdict["level"] in ("pass", "warn")
    assert "Ownership can be proven" in verdict["text"]
    assert first.report["summary"]["ownership"]["verdicts"][0]["section"] == "watermark"
    html = (tmp_path / "report.html").read_text()
    assert "id='fig-watermark-matches'" in html and "id='fig-watermark-triggers'" in html
    assert "Removing the uchida watermark" in html
    artifacts = first.artifacts["watermark"]
    assert artifacts["examples_x"].shape == (4, 1, 8, 8)
    # The marked copy gives most triggers the labels the key assigned.
    assert (artifacts["examples_marked"] == artifacts["examples_label"]).mean() >= 0.5
    log = tmp_path / "audit.log"
    ran = log.read_text().count("watermark: running")
    # 2 embeddings, 2 false-claim checks, 2 x 2 removal attacks (the independent model
    # is a task stored by itself, not a step).
    assert ran == 8

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a resumed audit must not train")

    monkeypatch.setattr(WatermarkScheme, "embed", refuse)
    monkeypatch.setattr(section_module, "train", refuse)
    monkeypatch.setattr("advml.watermark.removal.base.train", refuse)
    second = run_audit(config, model=model, dataset=digits, out=tmp_path, show_progress=False)
    text = log.read_text()
    assert text.count("watermark: running") == ran
    # Every step is read back; the false-claim steps that used the independent model
    # are done, so it is not needed at all.
    assert len(re.findall(r"watermark: \S+ already done", text)) == ran
    assert len(list((tmp_path / "steps").glob("watermark-independent-*-task0.json"))) == 1
    assert second.report["sections"]["watermark"] == first.report["sections"]["watermark"]


@pytest.mark.slow
def test_labels_only_access_verifies_trigger_sets_and_skips_the_white_box_scheme(
    digits: Dataset, tmp_path: Path
) -> None:
    config = _config(access="labels", watermark={"attacks": ["prune"]})
    result = run_audit(config, dataset=digits, out=tmp_path, show_progress=False)
    s = _valid(result.report)
    assert s["access"] == "labels"
    assert [x["scheme"] for x in s["skipped"]] == ["uchida"]
    assert "weights" in s["skipped"][0]["reason"]
    (adi,) = s["schemes"]
    assert adi["name"] == "adi" and adi["verification"]["verified"]
    assert adi["verification"]["queries"] == 30  # through the label-only API
    assert not adi["independent"]["verified"]
    # A reference model: the independent one is trained with the reference recipe.
    assert "reference recipe" in s["independent_model"]["description"]


def test_a_model_advml_cannot_train_is_skipped_with_the_reason(
    digits_mlp: TorchClassifier, digits: Dataset
) -> None:
    mlp = copy.deepcopy(digits_mlp)
    api = CallableClassifier(
        lambda x: mlp.predict_labels(x),
        input_shape=mlp.input_shape,
        n_classes=mlp.n_classes,
        bounds=mlp.bounds,
        returns="labels",
        accepts="torch",
    )
    result = run_audit(_config(), model=api, dataset=digits, show_progress=False)
    assert "watermark" not in result.report["sections"]
    (skipped,) = result.report["skipped_sections"]
    assert skipped["section"] == "watermark" and "PyTorch" in skipped["reason"]
    assert result.report["summary"]["ownership"]["not_assessed"][0]["section"] == "watermark"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"schemes": ["nope"]}, "'schemes' has unknown names ['nope']"),
        ({"schemes": "uchida"}, "'schemes' must be a list"),
        ({"schemes": []}, "at least one scheme"),
        ({"attacker_samples": 0}, "attacker_samples"),
        ({"cheap_cost": 2.0}, "cheap_cost"),
    ],
)
def test_bad_settings_are_named(
    settings: dict[str, Any], message: str, digits_mlp: TorchClassifier, digits: Dataset
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        run_audit(
            _config(watermark=settings),
            model=copy.deepcopy(digits_mlp),
            dataset=digits,
            show_progress=False,
        )


# -- the verdict on hand-made numbers -----------------------------------------------------
def _check(matches: int, n: int, p: float) -> dict[str, Any]:
    return {
        "verified": p < 1e-4,
        "matches": matches,
        "n": n,
        "match_rate": matches / n,
        "chance_probability": p,
        "queries": 0,
    }


def _scheme(removal: list[dict[str, Any]], *, independent_p: float = 0.5) -> dict[str, Any]:
    return {
        "name": "adi",
        "accuracy_cost": 0.004,
        "verification": _check(50, 50, 1e-50),
        "independent": _check(5, 50, independent_p),
        "unmarked": _check(5, 50, 0.5),
        "removal": removal,
    }


def _row(name: str, detected: bool, drop: float, **params: Any) -> dict[str, Any]:
    return {"name": name, "params": params, "detected": detected, "accuracy_drop": drop}


def test_verdict_prices_removal() -> None:
    verdict = section_module._verdict
    robust = verdict([_scheme([_row("ftal", True, 0.0, epochs=2)])], [], 0.02)
    assert robust.level == "pass" and "survived fine-tuning all layers (2 epochs)" in robust.text
    # Removed only at a price of 30 points: still provable in practice.
    costly = verdict([_scheme([_row("prune", False, 0.3, rate=0.9)])], [], 0.02)
    assert costly.level == "pass"
    assert (
        "did not survive pruning 90% of the weights" in costly.text and "30.0 points" in costly.text
    )
    cheap = verdict([_scheme([_row("rtal", False, 0.01, epochs=5)])], [], 0.02)
    assert cheap.level == "warn" and cheap.label == "watermark removable"
    assert "did not survive re-training all layers (5 epochs)" in cheap.text
    false_claim = verdict([_scheme([], independent_p=1e-6)], [], 0.02)
    assert false_claim.level == "fail" and "proves nothing" in false_claim.text
    none = verdict([], [{"scheme": "uchida", "reason": "no weights"}], 0.02)
    assert none.level == "unknown" and "no weights" in none.text


def test_a_removal_result_the_key_cannot_read_is_reported_with_the_reason(
    digits: Dataset,
) -> None:
    from advml.models.architectures import build
    from advml.watermark import Uchida
    from advml.watermark.removal import Distill, Preprocess

    # An Uchida key on an MLP; the attacker distils into a CNN (no 'fc2' layer) or hides
    # the weights behind preprocessing. The audit row says so instead of failing.
    torch.manual_seed(0)
    shape = digits.input_shape
    mlp = TorchClassifier(
        build("mlp", input_shape=shape, n_classes=10), input_shape=shape, n_classes=10
    )
    x, y = digits.x_train[:200], digits.y_train[:200]
    key = Uchida(bits=16, epochs=1).embed(mlp, x, y, key="owner").key
    rows = {}
    for attack in (Distill(epochs=1, architecture="cnn"), Preprocess()):
        rows[attack.name], _ = section_module._removal_step(
            attack,
            lambda: mlp,
            key,
            x,
            y,
            digits.x_test[:50],
            digits.y_test[:50],
            access="white-box",
            alpha=1e-4,
            reference_accuracy=0.5,
        )
    distill, preprocess = rows["distill"], rows["preprocess"]
    assert distill["detected"] is False and distill["match_rate"] is None
    assert "'fc2'" in distill["note"]
    assert preprocess["detected"] is None and "white-box" in preprocess["note"]
    cnn = TorchClassifier(
        build("cnn", input_shape=shape, n_classes=10), input_shape=shape, n_classes=10
    )
    check = section_module._check_result(section_module.verify(cnn, key))
    assert check["verified"] is False and "'fc2'" in check["reason"]
