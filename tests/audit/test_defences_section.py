"""The audit's defences section: standard vs adaptive attack, detection, report, resume."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from _reports import written_report

import advml.audit.sections.defences as defences_section
from advml.audit import AuditConfig, run_audit
from advml.audit.sections import available_sections
from advml.data import load_dataset
from advml.models import TorchClassifier
from advml.report import report_schema

SETTINGS: dict[str, Any] = {
    "n_samples": 60,
    "steps": 5,
    "eot_samples": 3,
    "defences": {
        "median_smoothing": {"strength": "low"},
        "feature_squeezing": {"strength": "medium"},
        "gaussian_noise": {"strength": "medium"},
        "jpeg": {"strength": "medium"},
    },
}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _config(**settings: Any) -> AuditConfig:
    return AuditConfig.quick(
        n_samples=100,
        eps=(0.0, 0.1),
        attack_settings={"pgd": {"steps": 3}},
        examples=0,
        sections=("defences",),
        section_settings={"defences": {**SETTINGS, **settings}},
    )


def test_section_is_discovered_right_after_evasion() -> None:
    names = list(available_sections())
    assert names.index("defences") == names.index("evasion") + 1
    assert defences_section.SECTION.threat == "integrity"


@pytest.mark.slow
def test_report_has_every_figure_validates_and_resumes(
    digits, digits_mlp: TorchClassifier, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_audit(
        _config(),
        model=copy.deepcopy(digits_mlp),
        dataset=digits,
        out=tmp_path,
        show_progress=False,
    )
    report = written_report(tmp_path)
    sec = report["sections"]["defences"]
    assert sec["eps"] == 0.1  # the config's reference_eps
    assert sec["n"] == 60
    und = sec["undefended"]
    assert [r["name"] for r in sec["defences"]] == list(SETTINGS["defences"])
    for r in sec["defences"]:
        assert r["worst_case_robust_accuracy"] <= min(
            r["standard_robust_accuracy"], r["adaptive_robust_accuracy"]
        )
        assert r["robust_gain"] == pytest.approx(
            r["adaptive_robust_accuracy"] - und["robust_accuracy"]
        )
        masking = r["standard_robust_accuracy"] - r["adaptive_robust_accuracy"] >= 0.10
        assert r["gradient_masking"] == masking
        method = {"median_smoothing": "BPDA", "feature_squeezing": "BPDA", "jpeg": "BPDA"}
        assert r["adaptive_method"] == method.get(r["name"], "EOT")
    rows = {r["name"]: r for r in sec["defences"]}
    # JPEG has no autograd at all: the standard attack gets no gradient through it and
    # leaves the model almost untouched; BPDA goes straight through. Gradient masking.
    jpeg = rows["jpeg"]
    assert jpeg["standard_robust_accuracy"] >= jpeg["clean_accuracy"] - 0.05
    assert jpeg["gradient_masking"]
    assert jpeg["assessment"] in ("only looks strong", "overstated")
    assert "Jpeg" in sec["summary"] or "jpeg" in sec["summary"]
    # The undefended attack really fools the model, and detection measured it.
    assert und["robust_accuracy"] < und["clean_accuracy"] - 0.3
    det = sec["detection"]
    assert det["threshold_inputs"] == "held-out clean inputs"
    assert det["n_threshold"] == 40  # the audit's 100 inputs minus the 60 attacked
    assert det["n_adversarial"] >= 20
    assert 0.0 <= det["detection_rate"] <= 1.0
    verdict = sec["verdict"]
    best = max(r["worst_case_robust_accuracy"] for r in sec["defences"])
    assert verdict["defended_robust_accuracy"] == best
    assert verdict["undefended_robust_accuracy"] == und["robust_accuracy"]
    assert report["summary"]["integrity"]["verdicts"][0]["section"] == "defences"

    html = (tmp_path / "report.html").read_text()
    assert "id='fig-defences'" in html
    assert "Trade-off at ε = 0.1" in html and "standard attack" in html
    assert "Detection by feature squeezing" in html
    for name in ("median smoothing", "feature squeezing", "gaussian noise", "jpeg"):
        assert name in html

    # A rerun reads every step back: nothing is attacked or evaluated again.
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a cached step was recomputed")

    monkeypatch.setattr(defences_section, "defended_correct", refuse)
    monkeypatch.setattr(defences_section, "_undefended_step", refuse)
    monkeypatch.setattr(defences_section, "_detection_step", refuse)
    again = run_audit(
        _config(),
        model=copy.deepcopy(digits_mlp),
        dataset=digits,
        out=tmp_path,
        show_progress=False,
    )
    assert again.report["sections"]["defences"] == result.report["sections"]["defences"]
    log = (tmp_path / "audit.log").read_text()
    assert log.count("defences: matrix already done") == 1


def test_changed_defence_settings_recompute_only_that_defence(
    digits, digits_mlp: TorchClassifier, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = {"defences": {"feature_squeezing": {"strength": "medium"}}, "detection": False}
    run_audit(
        _config(**small),
        model=copy.deepcopy(digits_mlp),
        dataset=digits,
        out=tmp_path,
        show_progress=False,
    )
    calls: list[str] = []
    real = defences_section.defended_correct

    def counting(model: Any, prep: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(f"{type(prep).__name__} {kwargs['kind']}")
        return real(model, prep, *args, **kwargs)

    monkeypatch.setattr(defences_section, "defended_correct", counting)
    both = {
        "defences": {
            "feature_squeezing": {"strength": "medium"},
            "feature_squeezing_high": None,
        }
    }
    with pytest.raises(ValueError, match="unknown preprocessor 'feature_squeezing_high'"):
        run_audit(
            _config(**both),
            model=copy.deepcopy(digits_mlp),
            dataset=digits,
            out=tmp_path,
            show_progress=False,
        )
    changed = {"defences": {"feature_squeezing": {"strength": "high"}}, "detection": False}
    result = run_audit(
        _config(**changed),
        model=copy.deepcopy(digits_mlp),
        dataset=digits,
        out=tmp_path,
        show_progress=False,
    )
    # The changed defence's three cells (clean, standard, adaptive), nothing else.
    assert calls == [f"FeatureSqueezing {k}" for k in ("clean", "standard", "adaptive")]
    sec = result.report["sections"]["defences"]
    assert sec["detection"] is None
    assert sec["defences"][0]["params"] == {"strength": "high"}


def test_adversary_without_gradients_skips_the_section(digits, digits_mlp: TorchClassifier) -> None:
    result = run_audit(
        _config().with_(access="scores"),
        model=copy.deepcopy(digits_mlp),
        dataset=digits,
        show_progress=False,
    )
    assert "defences" not in result.report["sections"]
    (skip,) = result.report["skipped_sections"]
    assert skip["section"] == "defences" and "gradients" in skip["reason"]


def test_bad_settings_are_named(digits, digits_mlp: TorchClassifier) -> None:
    with pytest.raises(ValueError, match=r"section_settings\['defences'\]\['steps'\]"):
        run_audit(
            _config(steps=0),
            model=copy.deepcopy(digits_mlp),
            dataset=digits,
            show_progress=False,
        )
    with pytest.raises(ValueError, match="must map preprocessor names"):
        run_audit(
            _config(defences=["jpeg"]),
            model=copy.deepcopy(digits_mlp),
            dataset=digits,
            show_progress=False,
        )


@pytest.mark.parametrize(
    ("standard", "adaptive", "undefended", "assessment"),
    [
        (0.95, 0.30, 0.25, "only looks strong"),
        (0.95, 0.60, 0.25, "overstated"),
        (0.33, 0.30, 0.25, "no real gain"),
        (0.62, 0.60, 0.25, "some robustness"),
    ],
)
def test_assessment_and_verdict_follow_the_numbers(
    standard: float, adaptive: float, undefended: float, assessment: str
) -> None:
    gain = adaptive - undefended
    assert defences_section._assessment(standard - adaptive >= 0.10, gain) == assessment
    row = {
        "name": "jpeg",
        "worst_case_robust_accuracy": min(standard, adaptive),
        "gradient_masking": standard - adaptive >= 0.10,
        "assessment": assessment,
    }
    base = {"clean_accuracy": 1.0, "robust_accuracy": undefended}
    summary = defences_section._summary([row], base, 0.3)
    verdict = defences_section._verdict([row], base, 0.3, summary)
    expected = {"only looks strong": "only looks strong", "overstated": "overstates"}
    if assessment in expected:
        assert expected[assessment] in summary
    if assessment == "no real gain":
        assert "no real protection" in summary
    ratio = min(standard, adaptive)
    assert verdict.level == ("pass" if ratio >= 0.8 else "warn" if ratio >= 0.5 else "fail")
    assert verdict.numbers["defended_robust_accuracy"] == min(standard, adaptive)


def test_autoencoder_is_trained_inside_its_step_once(
    digits, digits_mlp: TorchClassifier, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from advml.defences.preprocess import Autoencoder

    config = _config(
        defences={"autoencoder": {"epochs": 1}}, n_samples=30, steps=2, detection=False
    )
    first = run_audit(
        config, model=copy.deepcopy(digits_mlp), dataset=digits, out=tmp_path, show_progress=False
    )
    (row,) = first.report["sections"]["defences"]["defences"]
    assert row["name"] == "autoencoder" and row["adaptive_method"] == "autograd"
    # Differentiable: the standard attack is already the adaptive one.
    assert row["standard_robust_accuracy"] == row["adaptive_robust_accuracy"]
    assert not row["gradient_masking"]

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the autoencoder was trained again")

    monkeypatch.setattr(Autoencoder, "fit", refuse)
    again = run_audit(
        config, model=copy.deepcopy(digits_mlp), dataset=digits, out=tmp_path, show_progress=False
    )
    assert again.report["sections"]["defences"] == first.report["sections"]["defences"]


def test_robust_model_row_uses_the_same_attack_and_inputs(
    digits, digits_mlp: TorchClassifier, tmp_path: Path
) -> None:
    from advml.models import save_model

    path = tmp_path / "same.pt"
    save_model(copy.deepcopy(digits_mlp), path)
    config = _config(
        defences={"feature_squeezing": {}}, n_samples=30, steps=3, robust_model=str(path)
    )
    result = run_audit(
        config,
        model=copy.deepcopy(digits_mlp),
        dataset=digits,
        out=tmp_path / "out",
        show_progress=False,
    )
    jsonschema.validate(json.loads(json.dumps(result.report)), report_schema())
    sec = result.report["sections"]["defences"]
    # The "robust" model is the audited one: the same attack gives the same numbers.
    robust = sec["robust_model"]
    assert robust["file"] == str(path)
    assert robust["clean_accuracy"] == sec["undefended"]["clean_accuracy"]
    assert robust["robust_accuracy"] == sec["undefended"]["robust_accuracy"]
    assert "robust-trained model" in sec["summary"]
    html = (tmp_path / "out" / "report.html").read_text()
    assert "robust training" in html and "same.pt" in html
    with pytest.raises(ValueError, match=r"\['robust_model'\]: no model file"):
        run_audit(
            _config(robust_model=str(tmp_path / "missing.pt")),
            model=copy.deepcopy(digits_mlp),
            dataset=digits,
            show_progress=False,
        )
