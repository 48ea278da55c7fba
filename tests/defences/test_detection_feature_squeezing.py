"""Feature-squeezing detection, the detection family's contract and the FPR threshold."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from advml import registry
from advml.defences.detection import (
    DetectionResult,
    Detector,
    FeatureSqueezingDetector,
    threshold_for_fpr,
)
from advml.errors import UnsupportedModelError
from advml.evasion import PGD
from advml.models import CallableClassifier, TorchClassifier

DETECTORS = registry.available("detection")


@pytest.mark.parametrize("name", DETECTORS)
def test_registry_entry(name: str) -> None:
    cls = registry.get("detection", name)
    assert issubclass(cls, Detector) and cls.name == name and cls.family == "detection"
    schema = registry.schema("detection", name)
    assert schema["fpr"]["default"] == 0.05
    for setting, spec in schema.items():
        assert spec["doc"].strip(), f"{name}.{setting} has no description"
        assert not spec["required"]
    assert registry.create("detection", name).get_params() == {
        s: spec["default"] for s, spec in schema.items()
    }
    for bad in (0, 1, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"\bfpr\b"):
            registry.create("detection", name, fpr=bad)
    with pytest.raises(TypeError, match=r"\bfpr\b"):
        registry.create("detection", name, fpr="0.05")


@pytest.mark.parametrize("name", DETECTORS)
def test_detect_before_fit_raises(name: str, digits_mlp: TorchClassifier, digits_data: Any) -> None:
    with pytest.raises(RuntimeError, match="fit"):
        registry.create("detection", name).detect(digits_mlp, digits_data.x_test[:4])  # type: ignore[attr-defined]


def test_threshold_for_fpr_is_exact() -> None:
    scores = np.arange(100, dtype=float)  # 0..99
    t = threshold_for_fpr(scores, 0.05)
    assert t == 94.0 and (scores > t).mean() == 0.05
    assert (scores > threshold_for_fpr(scores, 0.5)).mean() == 0.5
    # Ties cannot push the flagged fraction above the rate.
    assert (np.ones(10) > threshold_for_fpr(np.ones(10), 0.2)).mean() == 0.0


@pytest.fixture(scope="module")
def fitted(digits_mlp: TorchClassifier, digits_data: Any) -> FeatureSqueezingDetector:
    det = FeatureSqueezingDetector(bit_depth=3, median_size=None, fpr=0.05)
    return det.fit(digits_mlp, digits_data.x_test[180:])  # type: ignore[return-value]


def test_clean_data_is_flagged_at_about_the_chosen_rate(
    fitted: FeatureSqueezingDetector, digits_mlp: TorchClassifier, digits_data: Any
) -> None:
    assert (fitted.clean_scores_ > fitted.threshold_).mean() <= 0.05
    held_out = fitted.detect(digits_mlp, digits_data.x_test[:180])
    assert isinstance(held_out, DetectionResult)
    assert held_out.scores.shape == held_out.flags.shape == (180,)
    np.testing.assert_array_equal(held_out.flags, held_out.scores > held_out.threshold)
    assert held_out.fpr == 0.05 and held_out.detector == "feature_squeezing"
    assert held_out.detection_rate < 0.15  # 5% target, small-sample margin
    assert set(held_out.summary()) == {"detector", "n", "detection_rate", "threshold", "fpr"}


def test_minimal_adversarial_examples_are_detected(
    fitted: FeatureSqueezingDetector, digits_mlp: TorchClassifier, digits_data: Any
) -> None:
    # Examples that only just cross the boundary (early stop) sit where squeezing moves them
    # back: Xu et al.'s premise.
    x, y = digits_data.x_test[:180], digits_data.y_test[:180]
    result = PGD(eps=0.2, steps=20, early_stop=True, random_start=False).generate(digits_mlp, x, y)
    adv = result.x_adv[result.success]
    assert len(adv) > 100
    assert fitted.detect(digits_mlp, adv).detection_rate > 0.5


def test_scores_are_the_max_l1_distance(digits_mlp: TorchClassifier, digits_data: Any) -> None:
    x = digits_data.x_test[:10]
    det = FeatureSqueezingDetector(bit_depth=1, median_size=2)
    p = digits_mlp.predict_proba(x)
    from advml.defences.preprocess import FeatureSqueezing, MedianSmoothing

    d1 = np.abs(p - digits_mlp.predict_proba(FeatureSqueezing(bit_depth=1)(x))).sum(1)
    d2 = np.abs(p - digits_mlp.predict_proba(MedianSmoothing(size=2)(x))).sum(1)
    np.testing.assert_allclose(det.score(digits_mlp, x), np.maximum(d1, d2), atol=1e-5)


def test_bad_settings_and_inputs(digits_mlp: TorchClassifier, digits_data: Any) -> None:
    with pytest.raises(ValueError, match="squeezer"):
        FeatureSqueezingDetector(bit_depth=None, median_size=None)
    with pytest.raises(ValueError, match="bit_depth"):
        FeatureSqueezingDetector(bit_depth=0)
    with pytest.raises(ValueError, match="median_size"):
        FeatureSqueezingDetector(median_size=1)
    det = FeatureSqueezingDetector()
    with pytest.raises(ValueError, match="x_clean"):
        det.fit(digits_mlp, digits_data.x_test[:5].reshape(5, -1))
    with pytest.raises(ValueError, match="x_clean"):
        det.fit(digits_mlp, digits_data.x_test[:0])
    api = CallableClassifier(
        lambda v: np.zeros(len(v), dtype=int),
        input_shape=(1, 8, 8),
        n_classes=2,
        bounds=(0, 1),
        returns="labels",
    )
    with pytest.raises(UnsupportedModelError, match="labels only"):
        det.fit(api, digits_data.x_test[:5])


def test_tabular_inputs_use_bit_depth_only(make_linear: Any) -> None:
    model = make_linear([[1.0, -1.0], [-1.0, 1.0]])
    x = torch.rand(50, 2, generator=torch.Generator().manual_seed(0)).numpy()
    det = FeatureSqueezingDetector(bit_depth=2, median_size=2).fit(model, x)
    assert det.detect(model, x).n == 50
