"""What MI-Face and the inversion evaluation claim, on models with a known answer.

A linear model whose class ``c`` lights up block ``c`` of the input has one best
reconstruction per class: that block at the upper bound, the rest at the lower bound
(confidence ``e^4 / (e^4 + 3)``). The evaluation is checked on hand-made
reconstructions (SSIM and MSE of known value, a judge with known answers), then the
whole pipeline on the digits MLP with the independent judge.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import pytest
import torch
from torch import nn

from advml.errors import QueryBudgetExceededError, UnsupportedModelError
from advml.models import CallableClassifier, TorchClassifier
from advml.privacy.inversion import (
    InversionResult,
    MIFace,
    evaluate_inversion,
    independent_judge,
    ssim,
)
from advml.privacy.inversion.mi_face import total_variation

# Class c's weight template: ones on features 4c..4c+3, zeros elsewhere.
TEMPLATES = np.kron(np.eye(4, dtype=np.float32), np.ones((1, 4), dtype=np.float32))
BEST_CONFIDENCE = math.exp(4) / (math.exp(4) + 3)  # the template itself: logits (4, 0, 0, 0)


@pytest.fixture
def blocks() -> TorchClassifier:
    layer = nn.Linear(16, 4)
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(TEMPLATES))
        layer.bias.zero_()
    return TorchClassifier(layer, input_shape=(16,), n_classes=4, bounds=(0.0, 1.0))


def as_api(model: TorchClassifier, **kwargs: Any) -> CallableClassifier:
    """The same model behind a probabilities-only API (no gradients)."""

    def api(batch: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_proba(batch), dtype=np.float64)

    return CallableClassifier(
        api, input_shape=model.input_shape, n_classes=model.n_classes, bounds=model.bounds, **kwargs
    )


# -- MI-Face reconstructs the class template -----------------------------------------------------


def test_white_box_reconstruction_is_the_class_template(blocks: TorchClassifier) -> None:
    result = MIFace(steps=50).invert(blocks, [0, 1, 2, 3])
    assert result.gradient == "white-box"
    # Measured: exactly the templates, confidence e^4 / (e^4 + 3) = 0.948 for every class.
    np.testing.assert_allclose(result.images, TEMPLATES, atol=1e-3)
    np.testing.assert_allclose(result.confidence, BEST_CONFIDENCE, rtol=1e-4)
    np.testing.assert_array_equal(result.classes, [0, 1, 2, 3])
    # The reported cost is 1 - p_c plus the L2 pull (weight 0.005 on the mean square).
    np.testing.assert_allclose(result.cost, 1 - BEST_CONFIDENCE + 0.005 * 4 / 16, rtol=1e-4)


def test_zeroth_order_reconstruction_from_scores_only(blocks: TorchClassifier) -> None:
    api = as_api(blocks)
    result = MIFace(steps=50, n_directions=10).invert(api, [0, 1, 2, 3])
    assert result.gradient == "zeroth-order"
    # Measured: largest pixel error 0.0014, confidence within 3e-5 of the optimum.
    np.testing.assert_allclose(result.images, TEMPLATES, atol=0.05)
    np.testing.assert_allclose(result.confidence, BEST_CONFIDENCE, atol=1e-3)


def test_queries_are_counted_per_step_direction_and_class(blocks: TorchClassifier) -> None:
    steps, directions, classes = 6, 3, 2
    api = as_api(blocks)
    result = MIFace(steps=steps, n_directions=directions).invert(api, [1, 3])
    # Antithetic pairs for each direction, class and step, plus the final confidence.
    expected = steps * 2 * directions * classes + classes
    assert result.queries == api.query_count == expected
    white = MIFace(steps=steps).invert(blocks, [1, 3])
    assert white.queries == steps * classes + classes  # one gradient per class and step


def test_zeroth_order_stops_at_the_query_budget(blocks: TorchClassifier) -> None:
    # 5 steps of 2 * 3 queries for one class cost 31 with the final query; allow 20.
    api = as_api(blocks, query_budget=20)
    with pytest.raises(QueryBudgetExceededError, match="query_budget=20"):
        MIFace(steps=5, n_directions=3).invert(api, 0)
    assert api.query_count <= 20
    enough = as_api(blocks, query_budget=31)
    assert MIFace(steps=5, n_directions=3).invert(enough, 0).queries == 31


def test_reconstruction_stays_within_other_bounds(blocks: TorchClassifier) -> None:
    shifted = TorchClassifier(blocks.module, input_shape=(16,), n_classes=4, bounds=(-1.0, 2.0))
    block = TEMPLATES[[0, 2]] > 0
    # From the middle of the bounds: the class's block at 2, the rest at -1 (measured:
    # exactly). From the lower bound the L2 pull stops the block at 1.42 (measured), where
    # the saturated confidence (0.9998) no longer outweighs it.
    middle = MIFace(steps=50, init="middle").invert(shifted, [0, 2])
    np.testing.assert_allclose(middle.images, np.where(block, 2.0, -1.0), atol=1e-3)
    noisy = MIFace(steps=50, init="uniform", seed=3).invert(shifted, [0, 2])
    assert noisy.images.min() >= -1.0 and noisy.images.max() <= 2.0
    # Measured: block pixels >= 1.70, the others <= -0.54.
    for image, inside in zip(noisy.images, block, strict=True):
        assert image[inside].min() > image[~inside].max() + 1.0


def test_image_reconstruction_correlates_with_the_template() -> None:
    # Two classes on 4x4 images: bright left half or bright right half.
    templates = np.zeros((2, 1, 4, 4), dtype=np.float32)
    templates[0, :, :, :2] = 1
    templates[1, :, :, 2:] = 1
    layer = nn.Linear(16, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(templates.reshape(2, 16) - 0.5))
        layer.bias.zero_()
    net = nn.Sequential(nn.Flatten(), layer)
    model = TorchClassifier(net, input_shape=(1, 4, 4), n_classes=2, bounds=(0.0, 1.0))
    result = MIFace(steps=50, denoise_every=10).invert(model, [0, 1])
    # Measured: confidence 0.9989, largest pixel error 0.15 (the priors keep the bright
    # half below 1), correlation with the template 0.99999.
    assert (result.confidence > 0.99).all()
    for image, template in zip(result.images, templates, strict=True):
        assert np.corrcoef(image.ravel(), template.ravel())[0, 1] > 0.9


def test_labels_only_model_is_refused_naming_the_scores(blocks: TorchClassifier) -> None:
    labels = CallableClassifier(
        lambda b: np.asarray(blocks.predict(b)),
        input_shape=(16,),
        n_classes=4,
        bounds=(0.0, 1.0),
        returns="labels",
    )
    with pytest.raises(UnsupportedModelError, match=r"needs the model's scores.*labels only"):
        MIFace(steps=5).invert(labels, 0)
    assert labels.query_count == 0


def test_white_box_without_gradients_is_refused(blocks: TorchClassifier) -> None:
    with pytest.raises(UnsupportedModelError, match="gradient='zeroth-order'"):
        MIFace(steps=5, gradient="white-box").invert(as_api(blocks), 0)


@pytest.mark.parametrize(("target", "error"), [(4, ValueError), ([], ValueError), (1.5, TypeError)])
def test_bad_target_class_raises(blocks: TorchClassifier, target: Any, error: type) -> None:
    with pytest.raises(error, match="target_class"):
        MIFace(steps=1).invert(blocks, target)


def test_same_seed_same_reconstruction(blocks: TorchClassifier) -> None:
    first = MIFace(steps=10, init="uniform", seed=4).invert(as_api(blocks), [0, 1])
    second = MIFace(steps=10, init="uniform", seed=4).invert(as_api(blocks), [0, 1])
    other = MIFace(steps=10, init="uniform", seed=5).invert(as_api(blocks), [0, 1])
    np.testing.assert_array_equal(first.images, second.images)
    assert not np.array_equal(first.images, other.images)


def test_priors() -> None:
    x = torch.zeros(1, 1, 3, 3)
    x[0, 0, :, 2] = 1.0  # a bright right column
    # 0 vertical jumps, 3 of 6 horizontal neighbour pairs jump by 1.
    assert total_variation(x).item() == pytest.approx(0.5)
    # The median filter of the denoising step is advml.imaging's (tests/test_imaging.py).


# -- the evaluation ------------------------------------------------------------------------------


def test_ssim_known_values() -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(size=(3, 1, 8, 8))
    np.testing.assert_allclose(ssim(a, a), 1.0)
    # Constant images: no variance or covariance, SSIM = (2ab + c1) / (a^2 + b^2 + c1).
    flat_a, flat_b = np.full((1, 1, 8, 8), 0.2), np.full((1, 1, 8, 8), 0.6)
    c1 = 0.01**2
    assert ssim(flat_a, flat_b)[0] == pytest.approx((0.24 + c1) / (0.40 + c1))
    assert ssim(flat_a, flat_b, data_range=2.0)[0] == pytest.approx(
        (0.24 + 4 * c1) / (0.40 + 4 * c1)
    )
    # An inverted image is anti-correlated with the original.
    assert (ssim(a, 1 - a) < 0).all()
    np.testing.assert_allclose(ssim(a, 1 - a), ssim(1 - a, a))
    with pytest.raises(ValueError, match="one shape"):
        ssim(a, a[:, :, :4])


def stripes() -> tuple[np.ndarray, np.ndarray]:
    """Real samples: class 0 bright top rows, class 1 bright bottom rows, two each."""
    x = np.zeros((4, 1, 8, 8), dtype=np.float32)
    x[0, :, :4], x[1, :, :3] = 1.0, 1.0
    x[2, :, 4:], x[3, :, 5:] = 1.0, 1.0
    return x, np.array([0, 0, 1, 1])


def top_or_bottom(returns: Literal["probs", "labels"]) -> CallableClassifier:
    """A judge: class 0 when the top half is brighter, with probability 0.8."""

    def api(batch: np.ndarray) -> np.ndarray:
        top = batch[:, 0, :4].mean(axis=(1, 2)) > batch[:, 0, 4:].mean(axis=(1, 2))
        if returns == "labels":
            return np.where(top, 0, 1)
        return np.where(top[:, None], [[0.8, 0.2]], [[0.2, 0.8]])

    return CallableClassifier(
        api, input_shape=(1, 8, 8), n_classes=2, bounds=(0.0, 1.0), returns=returns
    )


def hand_result(images: np.ndarray, classes: list[int]) -> InversionResult:
    k = len(classes)
    return InversionResult(
        images=images.astype(np.float32),
        classes=np.array(classes),
        confidence=np.full(k, np.nan),
        cost=np.zeros(k),
        queries=0,
        gradient="white-box",
        seconds=0.0,
        attack="hand",
    )


def test_evaluation_of_hand_made_reconstructions() -> None:
    x, y = stripes()
    means = np.stack([x[:2].mean(0), x[2:].mean(0)])
    # Reconstructions: class 0's mean, class 1's mean + 0.1, and class 1's mean claimed as
    # class 0 (the judge says 1).
    images = np.stack([means[0], np.clip(means[1] + 0.1, 0, 1), means[1]])
    ev = evaluate_inversion(hand_result(images, [0, 1, 0]), top_or_bottom("probs"), x, y)
    assert ev.recognition_rate == pytest.approx(2 / 3)
    np.testing.assert_array_equal(ev.predicted, [0, 1, 1])
    np.testing.assert_allclose(ev.evaluator_confidence, [0.8, 0.8, 0.2], rtol=1e-6)
    np.testing.assert_allclose(ev.class_means, means[[0, 1, 0]])
    assert ev.ssim_to_mean[0] == pytest.approx(1.0)
    assert ev.mse_to_mean[0] == pytest.approx(0.0)
    # The class-1 mean has 32 pixels at 0, 8 at 0.5, 24 at 1: + 0.1 moves all but the 24
    # clipped ones, by 0.1 each.
    assert ev.mse_to_mean[1] == pytest.approx(0.01 * 40 / 64, rel=1e-5)
    assert ev.ssim_to_mean[2] < ev.ssim_to_mean[1] < 1.0
    # SSIM to the samples one by one: the mean of the two SSIMs.
    expected = ssim(np.repeat(images[:1], 2, 0), x[:2]).mean()
    assert ev.ssim_to_samples[0] == pytest.approx(expected)
    assert ev.ssim_to_samples[2] < ev.ssim_to_samples[0]
    assert set(ev.summary()) == {
        "recognition_rate",
        "mean_ssim_to_class_mean",
        "mean_mse_to_class_mean",
        "mean_ssim_to_class_samples",
    }


def test_evaluation_with_a_label_only_judge_has_no_confidence() -> None:
    x, y = stripes()
    ev = evaluate_inversion(hand_result(x[[0, 2]], [0, 1]), top_or_bottom("labels"), x, y)
    assert ev.recognition_rate == 1.0
    assert np.isnan(ev.evaluator_confidence).all()


def test_evaluation_needs_real_samples_of_each_class() -> None:
    x, y = stripes()
    judge = top_or_bottom("probs")
    with pytest.raises(ValueError, match=r"no sample of class\(es\) \[1\]"):
        evaluate_inversion(hand_result(x[[2]], [1]), judge, x[:2], y[:2])
    with pytest.raises(ValueError, match="x_real must hold inputs of shape"):
        evaluate_inversion(hand_result(x[[0]], [0]), judge, x.reshape(4, 64), y)


# -- the whole pipeline on the digits MLP -------------------------------------------------------


def test_mi_face_on_the_digits_mlp_is_recognised_by_an_independent_judge(
    digits_mlp: TorchClassifier, digits_data: Any
) -> None:
    data = digits_data
    judge = independent_judge(data.x_test, data.y_test, bounds=(0.0, 1.0), input_shape=(1, 8, 8))
    # The judge, trained on the test split only, recognises the target's training digits.
    assert (judge.predict(data.x_train) == data.y_train).mean() > 0.9  # measured 0.942
    result = MIFace(steps=200).invert(digits_mlp, range(10))
    ev = evaluate_inversion(result, judge, data.x_test, data.y_test)
    # Measured: target confidence 0.999, recognition 10 of 10, SSIM to the class mean 0.64.
    assert (result.confidence > 0.9).all()
    assert ev.recognition_rate >= 0.8
    # The same images judged against the wrong classes (shifted by one) are not recognised
    # and are less like those classes' means.
    wrong = InversionResult(
        images=result.images,
        classes=(result.classes + 1) % 10,
        confidence=result.confidence,
        cost=result.cost,
        queries=0,
        gradient=result.gradient,
        seconds=0.0,
        attack="shifted",
    )
    ev_wrong = evaluate_inversion(wrong, judge, data.x_test, data.y_test)
    assert ev_wrong.recognition_rate <= 0.2
    # Measured: recognition 0 of 10, mean SSIM 0.07 against 0.64.
    assert ev.ssim_to_mean.mean() > ev_wrong.ssim_to_mean.mean() + 0.3


def test_judge_needs_two_classes() -> None:
    x = np.zeros((4, 1, 2, 2))
    with pytest.raises(ValueError, match="at least two classes"):
        independent_judge(x, np.zeros(4, dtype=int), bounds=(0.0, 1.0), input_shape=(1, 2, 2))
    with pytest.raises(ValueError, match=r"inputs of shape \(4,\)"):
        independent_judge(x, np.array([0, 1, 0, 1]), bounds=(0.0, 1.0), input_shape=(4,))


def test_a_budget_pays_for_whole_steps_and_the_reconstruction_so_far_is_kept(
    blocks: TorchClassifier,
) -> None:
    # Steps of 2 * 3 queries for one class and a final query: 20 pay for 3 steps (19).
    api = as_api(blocks, query_budget=20)
    with pytest.raises(QueryBudgetExceededError, match="after 3 of MIFace's 5 steps") as info:
        MIFace(steps=5, n_directions=3).invert(api, 0)
    partial = info.value.partial_result
    assert api.query_count == partial.queries == 19
    three = MIFace(steps=3, n_directions=3).invert(as_api(blocks, query_budget=19), 0)
    np.testing.assert_array_equal(partial.images, three.images)
    # Not even one step: refused before anything is asked.
    small = as_api(blocks, query_budget=6)
    with pytest.raises(QueryBudgetExceededError, match="nothing was asked"):
        MIFace(steps=5, n_directions=3).invert(small, 0)
    assert small.query_count == 0
