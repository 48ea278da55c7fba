"""Metrics on hand-made arrays whose answers are known, with numpy and torch inputs."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from advml.metrics import accuracy, attack_success_rate, perturbation_norms, robust_accuracy
from advml.models import TorchClassifier

# tiny_linear predicts class 1 iff x0 > x1.
X = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.55, 0.5]], dtype=np.float32)
PRED = np.array([1, 0, 1, 0, 1])

as_numpy: Callable[[Any], Any] = np.asarray
as_torch: Callable[[Any], Any] = torch.as_tensor
KINDS = pytest.mark.parametrize("kind", [as_numpy, as_torch], ids=["numpy", "torch"])


@KINDS
def test_accuracy(tiny_linear: TorchClassifier, kind: Callable[[Any], Any]) -> None:
    assert tiny_linear.predict(X).tolist() == PRED.tolist()
    assert accuracy(tiny_linear, kind(X), kind(PRED)) == 1.0
    y = np.array([1, 1, 1, 0, 0])  # three of five agree
    assert accuracy(tiny_linear, kind(X), kind(y)) == pytest.approx(0.6)
    assert accuracy(tiny_linear, kind(X), kind(y), batch_size=2) == pytest.approx(0.6)
    assert accuracy(tiny_linear, kind(X), kind(1 - PRED)) == 0.0


@KINDS
def test_robust_accuracy_counts_already_wrong_inputs_as_not_robust(
    tiny_linear: TorchClassifier, kind: Callable[[Any], Any]
) -> None:
    y = np.array([1, 0, 0, 0, 1])  # the model gets sample 2 wrong even before any attack
    x_adv = X.copy()
    x_adv[0] = [0.1, 0.9]  # attack flips sample 0; the others are left as they were
    assert robust_accuracy(tiny_linear, kind(x_adv), kind(y)) == pytest.approx(3 / 5)
    assert robust_accuracy(tiny_linear, kind(X), kind(y)) == accuracy(tiny_linear, X, y)


@pytest.mark.parametrize(
    "y",
    [np.array([0, 1, 2, 0, 1]), np.array([0, 1]), np.zeros((5, 2), int), np.full(5, 0.5)],
)
def test_accuracy_rejects_bad_labels(tiny_linear: TorchClassifier, y: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"\by\b"):
        accuracy(tiny_linear, X, y)


@KINDS
def test_attack_success_rate_untargeted(kind: Callable[[Any], Any]) -> None:
    y_true = kind(np.array([0, 1, 2, 3, 4, 5]))
    y_clean = kind(np.array([0, 1, 2, 3, 0, 0]))  # the last two were already wrong
    y_adv = kind(np.array([1, 1, 0, 3, 4, 1]))  # flips 0 and 2 of the four correct ones
    assert attack_success_rate(y_true, y_clean, y_adv) == pytest.approx(0.5)


@KINDS
def test_attack_success_rate_targeted(kind: Callable[[Any], Any]) -> None:
    y_true = kind(np.array([0, 1, 2, 3, 4]))
    y_clean = kind(np.array([0, 1, 2, 3, 0]))  # sample 4 was already wrong: not counted
    target = kind(np.array([1, 1, 0, 0, 1]))  # sample 1's target is its own class: not counted
    y_adv = kind(np.array([1, 1, 0, 2, 1]))  # of samples 0, 2, 3: 0 and 2 reach the target
    assert attack_success_rate(y_true, y_clean, y_adv, y_target=target) == pytest.approx(2 / 3)


def test_attack_success_rate_is_nan_when_nothing_qualifies() -> None:
    y = np.array([0, 1])
    assert math.isnan(attack_success_rate(y, 1 - y, y))
    assert math.isnan(attack_success_rate(y, y, y, y_target=y))


def test_attack_success_rate_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="y_true, y_clean and y_adv"):
        attack_success_rate(np.zeros(3), np.zeros(3), np.zeros(4))


def test_perturbation_norms_known_values() -> None:
    x = np.zeros((3, 1, 2, 2), dtype=np.float32)
    x_adv = x.copy()
    x_adv[0, 0, 0] = [3.0, 4.0]  # l0 2, l2 5, linf 4
    x_adv[1, 0, 1, 1] = -0.5  # l0 1, l2 0.5, linf 0.5
    x_adv[2, 0, 0, 0] = 1e-8  # below the L0 tolerance: counts as unchanged in L0
    l0, l2, linf = perturbation_norms(x, x_adv)
    assert all(isinstance(a, np.ndarray) for a in (l0, l2, linf))
    np.testing.assert_array_equal(l0, [2, 1, 0])
    np.testing.assert_allclose(l2, [5.0, 0.5, 1e-8], rtol=1e-6)
    np.testing.assert_allclose(linf, [4.0, 0.5, 1e-8], rtol=1e-6)

    t0, t2, tinf = perturbation_norms(torch.as_tensor(x), torch.as_tensor(x_adv))
    assert all(isinstance(a, torch.Tensor) for a in (t0, t2, tinf))
    np.testing.assert_array_equal(t0.numpy(), [2, 1, 0])
    np.testing.assert_allclose(t2.numpy(), [5.0, 0.5, 1e-8], rtol=1e-5)
    np.testing.assert_allclose(tinf.numpy(), [4.0, 0.5, 1e-8], rtol=1e-5)


def test_perturbation_norms_of_no_change_are_zero() -> None:
    x = np.random.default_rng(0).random((4, 3)).astype(np.float32)
    for arrays in ((x, x.copy()), (torch.as_tensor(x), torch.as_tensor(x).clone())):
        for norm in perturbation_norms(*arrays):
            assert (np.asarray(norm) == 0).all()


def test_perturbation_norms_in_float64_for_numpy() -> None:
    # 1 + 1e-7 and 1 differ in float64 but not after a float32 round trip; the numpy path
    # measures in float64.
    x = np.ones((1, 1))
    l0, l2, _ = perturbation_norms(x, x + 2e-7)
    assert l0[0] == 1 and l2[0] == pytest.approx(2e-7)


def test_perturbation_norms_reject_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="shape"):
        perturbation_norms(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="shape"):
        perturbation_norms(torch.zeros(2, 3), torch.zeros(3, 3))
