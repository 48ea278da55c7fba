"""Greedy pixel search's own claims: each round applies the single change that helps most
(a hand-built model with a known answer), the count of changed features is reported and
capped, every candidate evaluated is a counted query, and scores alone suffice."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from advml.errors import UnsupportedModelError
from advml.evasion import GreedyPixel
from advml.models import CallableClassifier, TorchClassifier

W = [0.2, -1.0, 0.5, 0.1, 0.3]
X = np.full((1, len(W)), 0.5, dtype=np.float32)


def linear(make_linear: Callable[..., TorchClassifier], f: float) -> TorchClassifier:
    """Logits ``[0, w.x + b]`` with ``w.x + b = f`` at x = 0.5 (class 0 when f < 0).

    Setting feature i to 0 or 1 moves ``w.x + b`` by ``0.5 |w_i|`` at best: feature 1 to
    0 gives +0.5, then feature 2 to 1 gives +0.25, then feature 4 to 1 gives +0.15.
    """
    return make_linear([[0.0] * len(W), W], [0.0, f - 0.5 * sum(W)])


def test_one_change_that_suffices_is_found_and_counted(
    make_linear: Callable[..., TorchClassifier],
) -> None:
    model = linear(make_linear, -0.3)
    result = GreedyPixel().generate(model, X, [0])  # default budget: max(1, 10% of 5) = 1
    assert result.success.all() and result.l0[0] == 1
    expected = X.copy()
    expected[0, 1] = 0.0
    np.testing.assert_array_equal(result.x_adv, expected)
    # One query at the start, then 5 features x 2 values.
    np.testing.assert_array_equal(result.queries, [1 + 10])


def test_changes_accumulate_greedily_up_to_the_budget(
    make_linear: Callable[..., TorchClassifier],
) -> None:
    model = linear(make_linear, -0.6)  # needs two changes: 0.5 + 0.25 > 0.6
    two = GreedyPixel(max_changes=3).generate(model, X, [0])
    assert two.success.all() and two.l0[0] == 2
    np.testing.assert_array_equal(np.flatnonzero(np.asarray(two.x_adv)[0] != X[0]), [1, 2])
    np.testing.assert_array_equal(two.queries, [1 + 10 + 8])  # a changed feature is spent
    one = GreedyPixel(max_changes=1).generate(model, X, [0])
    assert not one.success.any() and one.l0[0] == 1
    np.testing.assert_array_equal(one.queries, [1 + 10])


def test_step_mode_moves_by_the_step(make_linear: Callable[..., TorchClassifier]) -> None:
    model = linear(make_linear, -0.3)  # feature 1 must drop by more than 0.3
    result = GreedyPixel(max_changes=1, step=0.2).generate(model, X, [0])
    assert result.success.all() and result.l0[0] == 1
    np.testing.assert_allclose(np.asarray(result.x_adv)[0, 1], 0.1, atol=1e-6)  # 0.5 - 2 x 0.2


@pytest.fixture
def digits(digits_mlp: TorchClassifier, digits_data: Any) -> tuple[np.ndarray, np.ndarray]:
    keep = digits_mlp.predict(digits_data.x_test) == digits_data.y_test
    return digits_data.x_test[keep][:60], digits_data.y_test[keep][:60]


def test_flips_digits_with_few_pixels_through_scores_alone(
    digits_mlp: TorchClassifier, digits: Any
) -> None:
    x, y = digits
    scores_only = CallableClassifier(
        digits_mlp.predict_proba, input_shape=(1, 8, 8), n_classes=10, bounds=(0.0, 1.0)
    )
    before = scores_only.query_count
    result = GreedyPixel(max_changes=10).generate(scores_only, x, y)
    # Measured: every digit flipped, by a median of 2 of the 64 pixels.
    assert result.success_rate >= 0.95
    assert np.median(result.l0[result.success]) <= 3
    assert result.l0.max() <= 10
    changed = (np.asarray(result.x_adv) != x).reshape(len(x), -1).sum(1)
    np.testing.assert_array_equal(result.l0, changed)
    # Every query is counted: the attack's own, plus one final check per input.
    assert scores_only.query_count - before == result.queries.sum() + len(x)
    with pytest.raises(UnsupportedModelError, match="scores"):
        labels_only = CallableClassifier(
            digits_mlp.predict,
            input_shape=(1, 8, 8),
            n_classes=10,
            bounds=(0.0, 1.0),
            returns="labels",
        )
        GreedyPixel().generate(labels_only, x[:2], y[:2])


def test_targeted_reaches_the_target(digits_mlp: TorchClassifier, digits: Any) -> None:
    x, y = digits
    x, y = x[:30], y[:30]
    target = (y + 1 + np.arange(len(y)) % 9) % 10
    result = GreedyPixel(max_changes=20, targeted=True).generate(digits_mlp, x, target)
    np.testing.assert_array_equal(result.success, result.y_adv == target)
    assert result.success_rate >= 0.8  # measured 1.0
