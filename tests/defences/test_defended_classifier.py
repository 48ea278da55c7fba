"""DefendedClassifier's gradient views (pipeline, BPDA, EOT) and evaluate_defence."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from advml.defences.preprocess import (
    DEFAULT_EOT_SAMPLES,
    DefendedClassifier,
    FeatureSqueezing,
    GaussianBlur,
    GaussianNoise,
    JPEGCompression,
    MedianSmoothing,
    evaluate_defence,
)
from advml.evasion import PGD
from advml.models import CallableClassifier, Classifier, TorchClassifier


def input_gradient(model: Classifier, x: np.ndarray, y: np.ndarray) -> torch.Tensor:
    xt = torch.as_tensor(x).requires_grad_(True)
    with model.evaluating():
        loss = F.cross_entropy(model.logits(xt), torch.as_tensor(y))
    (grad,) = torch.autograd.grad(loss, xt)
    return grad


@pytest.fixture
def batch(digits_data: Any) -> tuple[np.ndarray, np.ndarray]:
    return digits_data.x_test[:32].copy(), digits_data.y_test[:32].copy()


def test_it_is_a_classifier_with_the_models_shape(digits_mlp: TorchClassifier) -> None:
    defended = DefendedClassifier(digits_mlp, [GaussianBlur(), FeatureSqueezing()])
    assert isinstance(defended, Classifier)
    assert defended.input_shape == digits_mlp.input_shape
    assert defended.n_classes == 10 and defended.bounds == digits_mlp.bounds
    assert defended.has_gradients and defended.has_scores
    assert not defended.differentiable and not defended.randomised
    assert "FeatureSqueezing" in repr(defended)


@pytest.mark.parametrize("prep", [FeatureSqueezing(strength="high"), JPEGCompression()])
def test_standard_view_sees_masked_gradients_bpda_sees_the_models(
    prep: Any, digits_mlp: TorchClassifier, batch: Any
) -> None:
    x, y = batch
    standard = DefendedClassifier(digits_mlp, prep)
    assert torch.count_nonzero(input_gradient(standard, x, y)) == 0
    # BPDA: the model's gradient at the preprocessed input, passed straight through.
    adaptive = standard.adaptive()
    assert adaptive.backward == "bpda" and adaptive.eot_samples == 1
    expected = input_gradient(digits_mlp, prep(x), y)
    torch.testing.assert_close(input_gradient(adaptive, x, y), expected)


def test_median_gradient_is_masked_to_one_pixel_per_window(
    digits_mlp: TorchClassifier, batch: Any
) -> None:
    x, y = batch
    prep = MedianSmoothing(size=3)
    g_std = input_gradient(DefendedClassifier(digits_mlp, prep), x, y)
    g_bpda = input_gradient(DefendedClassifier(digits_mlp, prep, backward="bpda"), x, y)
    assert (g_std != 0).float().mean() < (g_bpda != 0).float().mean()


def test_differentiable_preprocessors_keep_their_exact_gradient(
    digits_mlp: TorchClassifier, batch: Any
) -> None:
    x, y = batch
    blur = GaussianBlur(sigma=1.0)
    g_std = input_gradient(DefendedClassifier(digits_mlp, blur), x, y)
    g_bpda = input_gradient(DefendedClassifier(digits_mlp, blur, backward="bpda"), x, y)
    torch.testing.assert_close(g_std, g_bpda)
    # ... which is not the identity's: blurring smooths the gradient too.
    g_identity = input_gradient(digits_mlp, blur(x), y)
    assert not torch.allclose(g_std, g_identity)


def test_eot_averages_log_probabilities_over_draws(digits_mlp: TorchClassifier, batch: Any) -> None:
    x, _ = batch
    xt = torch.as_tensor(x)
    noise = GaussianNoise(sigma=0.3)
    single = DefendedClassifier(digits_mlp, noise, seed=5)
    with torch.no_grad():
        draws = [torch.log_softmax(single.logits(xt), dim=1) for _ in range(4)]
        averaged = DefendedClassifier(digits_mlp, noise, eot_samples=4, seed=5).logits(xt)
    torch.testing.assert_close(averaged, torch.stack(draws).mean(0))
    assert not torch.allclose(draws[0], draws[1])  # each query draws afresh
    assert single.adaptive().eot_samples == DEFAULT_EOT_SAMPLES


def test_queries_are_counted_on_both_models(digits_mlp: TorchClassifier, batch: Any) -> None:
    x, _ = batch
    inner_before = digits_mlp.query_count
    defended = DefendedClassifier(digits_mlp, GaussianNoise(), eot_samples=3)
    defended.predict(x)
    assert defended.query_count == len(x)
    assert digits_mlp.query_count - inner_before == 3 * len(x)
    budgeted = DefendedClassifier(digits_mlp, GaussianNoise(), query_budget=10)
    with pytest.raises(Exception, match="query_budget"):
        budgeted.predict(x)


def test_label_only_model_behind_a_defence(batch: Any) -> None:
    x, _ = batch
    api = CallableClassifier(
        lambda v: (v.reshape(len(v), -1).mean(1) > 0.3).astype(int),
        input_shape=(1, 8, 8),
        n_classes=2,
        bounds=(0, 1),
        returns="labels",
    )
    defended = DefendedClassifier(api, MedianSmoothing())
    assert not defended.has_scores and not defended.has_gradients
    assert defended.predict(x).shape == (len(x),)
    with pytest.raises(Exception, match="labels only"):
        defended.logits(torch.as_tensor(x))


def test_bad_construction_raises_naming_the_parameter(digits_mlp: TorchClassifier) -> None:
    with pytest.raises(ValueError, match="preprocessors"):
        DefendedClassifier(digits_mlp, [])
    with pytest.raises(TypeError, match="preprocessors"):
        DefendedClassifier(digits_mlp, [GaussianBlur(), "jpeg"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="model"):
        DefendedClassifier("model", GaussianBlur())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="backward"):
        DefendedClassifier(digits_mlp, GaussianBlur(), backward="magic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="eot_samples"):
        DefendedClassifier(digits_mlp, GaussianBlur(), eot_samples=0)
    tabular = TorchClassifier(torch.nn.Linear(5, 2), input_shape=(5,), n_classes=2)
    with pytest.raises(ValueError, match="images"):
        DefendedClassifier(tabular, GaussianBlur())


def test_attacks_run_against_it_unchanged(digits_mlp: TorchClassifier, batch: Any) -> None:
    x, y = batch
    defended = DefendedClassifier(digits_mlp, JPEGCompression(strength="high"))
    result = PGD(eps=0.2, steps=10).generate(defended.adaptive(), x, y)
    assert np.abs(result.x_adv - x).max() <= 0.2 + 1e-6
    assert result.success.mean() > 0.5


# -- evaluate_defence ---------------------------------------------------------------------


def test_masking_defences_are_called_out(digits_mlp: TorchClassifier, digits_data: Any) -> None:
    x, y = digits_data.x_test[:100], digits_data.y_test[:100]
    ev = evaluate_defence(digits_mlp, JPEGCompression(strength="high"), x, y, eps=0.2, steps=10)
    assert ev.adaptive_method == "BPDA"
    # The standard attack is starved of gradient; BPDA is not.
    assert ev.standard_robust_accuracy > 0.8 > 0.3 > ev.adaptive_robust_accuracy
    assert ev.gradient_masking
    assert ev.verdict.startswith("Only looks strong") and "gradient masking" in ev.verdict
    assert ev.n == 100 and 0.9 < ev.clean_accuracy <= 1.0
    summary = ev.summary()
    assert summary["gradient_masking"] is True and summary["verdict"] == ev.verdict


def test_a_differentiable_defence_gives_no_false_alarm(
    digits_mlp: TorchClassifier, digits_data: Any
) -> None:
    x, y = digits_data.x_test[:100], digits_data.y_test[:100]
    ev = evaluate_defence(digits_mlp, GaussianBlur(strength="low"), x, y, eps=0.2, steps=10)
    assert ev.adaptive_method == "autograd"
    assert ev.standard_robust_accuracy == ev.adaptive_robust_accuracy
    assert not ev.gradient_masking
    assert ev.adaptive_robust_accuracy - ev.undefended_robust_accuracy < 0.1
    assert ev.verdict.startswith("No real protection")


def test_randomised_defences_get_eot(digits_mlp: TorchClassifier, digits_data: Any) -> None:
    x, y = digits_data.x_test[:60], digits_data.y_test[:60]
    ev = evaluate_defence(
        digits_mlp, GaussianNoise(strength="high"), x, y, eps=0.2, steps=10, eot_samples=4
    )
    assert ev.adaptive_method == "EOT" and ev.eot_samples == 4
    # Noise is no defence at all: both attacks leave about what the bare model keeps.
    assert ev.adaptive_robust_accuracy - ev.undefended_robust_accuracy < 0.15
    assert ev.worst_case_robust_accuracy <= min(
        ev.standard_robust_accuracy, ev.adaptive_robust_accuracy
    )


def test_evaluate_defence_rejects_what_it_cannot_adapt(
    digits_mlp: TorchClassifier, batch: Any
) -> None:
    x, y = batch
    with pytest.raises(ValueError, match="gradient"):
        evaluate_defence(digits_mlp, GaussianBlur(), x, y, attack="square")
    with pytest.raises(ValueError, match="targeted"):
        evaluate_defence(digits_mlp, GaussianBlur(), x, y, attack=PGD(targeted=True))
    with pytest.raises(ValueError, match="eps"):
        evaluate_defence(digits_mlp, GaussianBlur(), x, y, eps=-1)
    with pytest.raises(ValueError, match=r"\by\b"):
        evaluate_defence(digits_mlp, GaussianBlur(), x, y[:-1])


def test_precomputed_undefended_accuracy_gives_the_same_evaluation(
    digits_mlp: TorchClassifier, digits_data: Any
) -> None:
    x, y = digits_data.x_test[:60], digits_data.y_test[:60]
    kwargs: dict[str, Any] = {"eps": 0.2, "steps": 5}
    full = evaluate_defence(digits_mlp, JPEGCompression(strength="high"), x, y, **kwargs)
    given = (full.undefended_clean_accuracy, full.undefended_robust_accuracy)
    again = evaluate_defence(
        digits_mlp, JPEGCompression(strength="high"), x, y, undefended_accuracy=given, **kwargs
    )
    assert {k: v for k, v in again.summary().items() if k != "seconds"} == {
        k: v for k, v in full.summary().items() if k != "seconds"
    }
    with pytest.raises(ValueError, match=r"undefended_accuracy \(robust\)"):
        evaluate_defence(digits_mlp, GaussianBlur(), x, y, undefended_accuracy=(0.9, 1.5))


def test_a_defence_worse_than_none_is_called_so() -> None:
    from advml.defences.preprocess.evaluation import _verdict

    text = _verdict(
        standard=0.05,
        adaptive=0.0,
        undefended=0.3,
        clean=0.6,
        undefended_clean=0.95,
        method="autograd",
        eps=0.1,
    )
    assert text.startswith("Worse than no defence") and "35.0 points of clean accuracy" in text
