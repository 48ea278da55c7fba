"""FGSM's own claims: one step of exactly eps along the gradient's sign (or L2 direction)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from advml.evasion import FGSM
from advml.models import TorchClassifier

# Points of tiny_linear (logits [0, x0 - x1]) away from the bounds, their classes, and the
# direction that moves each towards the other class: +w = (1, -1) for class 0, -w for 1.
X = np.array([[0.4, 0.6], [0.7, 0.2], [0.3, 0.35], [0.55, 0.45]], dtype=np.float32)
Y = np.array([0, 1, 0, 1])
TOWARDS_OTHER = np.array([[1, -1], [-1, 1], [1, -1], [-1, 1]], dtype=np.float32)
MARGIN = np.abs(X[:, 0] - X[:, 1])  # 0.2, 0.5, 0.05, 0.1


def test_linf_step_moves_every_feature_by_exactly_eps(tiny_linear: TorchClassifier) -> None:
    eps = 0.03
    result = FGSM(eps=eps).generate(tiny_linear, X, Y)
    np.testing.assert_allclose(result.x_adv - X, eps * TOWARDS_OTHER, atol=1e-6)
    np.testing.assert_allclose(result.linf, eps, atol=1e-6)
    np.testing.assert_array_equal(result.l0, 2)
    np.testing.assert_array_equal(result.queries, 1)


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_succeeds_exactly_when_eps_exceeds_the_distance_to_the_boundary(
    tiny_linear: TorchClassifier, norm: str
) -> None:
    # Minimal perturbation to reach x0 = x1: margin / ||w||_1 in L∞, margin / ||w||_2 in L2.
    needed = MARGIN / (2.0 if norm == "inf" else math.sqrt(2.0))
    for i in range(len(X)):
        above = FGSM(eps=float(needed[i]) * 1.05, norm=norm).generate(
            tiny_linear, X[i : i + 1], Y[i : i + 1]
        )
        below = FGSM(eps=float(needed[i]) * 0.95, norm=norm).generate(
            tiny_linear, X[i : i + 1], Y[i : i + 1]
        )
        assert above.success.all(), f"sample {i} not fooled at 1.05 x the needed eps"
        assert not below.success.any(), f"sample {i} fooled at 0.95 x the needed eps"


def test_l2_step_is_eps_along_the_normalised_gradient(tiny_linear: TorchClassifier) -> None:
    eps = 0.05
    result = FGSM(eps=eps, norm="2").generate(tiny_linear, X, Y)
    np.testing.assert_allclose(result.x_adv - X, eps * TOWARDS_OTHER / math.sqrt(2), atol=1e-6)
    np.testing.assert_allclose(result.l2, eps, atol=1e-6)


def test_margin_loss_takes_the_same_step_on_a_linear_model(tiny_linear: TorchClassifier) -> None:
    ce = FGSM(eps=0.04).generate(tiny_linear, X, Y)
    margin = FGSM(eps=0.04, loss="margin").generate(tiny_linear, X, Y)
    np.testing.assert_array_equal(ce.x_adv, margin.x_adv)


def test_targeted_steps_towards_the_target(make_linear: Any) -> None:
    # Three classes on one feature-pair: logits [x0, x1, 0]. From (0.5, 0.5), the target 0
    # needs x0 up and x1 down; the target 1 the opposite.
    model = make_linear([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    x = np.full((2, 2), 0.5, dtype=np.float32)
    result = FGSM(eps=0.1, targeted=True).generate(model, x, np.array([0, 1]))
    np.testing.assert_allclose(result.x_adv, [[0.6, 0.4], [0.4, 0.6]], atol=1e-6)
    assert result.success.all()


def test_step_is_clipped_at_the_bounds(tiny_linear: TorchClassifier) -> None:
    x = np.array([[0.97, 0.99], [0.02, 0.01]], dtype=np.float32)  # classes 0 and 1
    result = FGSM(eps=0.1).generate(tiny_linear, x, np.array([0, 1]))
    np.testing.assert_allclose(result.x_adv, [[1.0, 0.89], [0.0, 0.11]], atol=1e-6)


def test_digits_every_change_is_eps_or_stopped_by_a_bound(
    digits_mlp: TorchClassifier, digits_data: Any
) -> None:
    eps = 0.1
    x, y = digits_data.x_test, digits_data.y_test
    x_adv = FGSM(eps=eps).generate(digits_mlp, x, y).x_adv
    d = np.abs(x_adv - x)
    at_bound = (x_adv == 0.0) | (x_adv == 1.0)
    moved_eps = np.isclose(d, eps, atol=1e-6)
    unmoved = d == 0  # zero gradient (a pixel no unit looks at) or already at the bound
    assert (moved_eps | (at_bound & (d < eps + 1e-6)) | unmoved).all()
    assert moved_eps.mean() > 0.5  # most pixels take the full step


def test_digits_gradient_sign_is_the_step(digits_mlp: TorchClassifier, digits_data: Any) -> None:
    # The step's sign is the sign of the cross-entropy gradient, computed by hand here.
    x, y = digits_data.x_test[:32], digits_data.y_test[:32]
    xt = torch.tensor(x, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(digits_mlp.forward(xt), torch.as_tensor(y))
    (grad,) = torch.autograd.grad(loss, xt)
    expected = np.clip(x + 0.05 * np.sign(grad.numpy()), 0, 1)
    result = FGSM(eps=0.05).generate(digits_mlp, x, y)
    np.testing.assert_allclose(result.x_adv, expected, atol=1e-6)


def test_digits_success_grows_with_eps(digits_mlp: TorchClassifier, digits_data: Any) -> None:
    x, y = digits_data.x_test, digits_data.y_test
    rates = [FGSM(eps=e).generate(digits_mlp, x, y).success_rate for e in (0.02, 0.1, 0.3)]
    assert rates[0] < rates[1] < rates[2]
    assert rates[2] >= 0.9  # one step of 0.3 fools this undefended MLP almost always
