"""APGD's own claims: the paper's checkpoints, the DLR loss's value and invariances, exact
success on a linear model, and at least PGD's strength at an equal number of steps."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from advml.evasion import APGD, PGD
from advml.evasion.apgd import checkpoints, dlr_loss
from advml.models import TorchClassifier


def test_checkpoints_are_the_papers() -> None:
    # Croce & Hein 2020, §3.2: p = 0, 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99.
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(1000) == [220, 410, 570, 700, 800, 870, 930, 990]
    assert checkpoints(1) == []


def test_dlr_value_and_invariance_to_shifting_and_scaling_logits() -> None:
    z = torch.tensor([[3.0, 1.0, 0.5, -1.0]])
    y = torch.tensor([0])
    # -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3) = -(3 - 1) / (3 - 0.5)  (eq. 5)
    assert dlr_loss(z, y, False).item() == pytest.approx(-0.8)
    assert dlr_loss(5 * z + 2, y, False).item() == pytest.approx(-0.8)
    # Targeted (target 2): -(3 - 0.5) / (3 - (0.5 - 1) / 2)  (eq. 6, best other class)
    assert dlr_loss(z, torch.tensor([2]), True).item() == pytest.approx(-2.5 / 3.25)


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_succeeds_exactly_when_eps_exceeds_the_distance(
    tiny_linear: TorchClassifier, norm: str
) -> None:
    x = np.array([[0.4, 0.6], [0.7, 0.2], [0.3, 0.35], [0.55, 0.45]], dtype=np.float32)
    y = np.array([0, 1, 0, 1])
    needed = np.abs(x[:, 0] - x[:, 1]) / (2.0 if norm == "inf" else math.sqrt(2.0))
    for loss in ("ce", "dlr"):
        for i in range(len(x)):
            xi, yi = x[i : i + 1], y[i : i + 1]
            above = APGD(eps=float(needed[i]) * 1.05, steps=20, norm=norm, loss=loss)  # type: ignore[arg-type]
            below = APGD(eps=float(needed[i]) * 0.95, steps=20, norm=norm, loss=loss)  # type: ignore[arg-type]
            assert above.generate(tiny_linear, xi, yi).success.all(), (loss, i)
            assert not below.generate(tiny_linear, xi, yi).success.any(), (loss, i)


@pytest.mark.parametrize("eps", [0.1, 0.15])
def test_at_least_as_strong_as_pgd_at_equal_steps(
    digits_mlp: TorchClassifier, digits_data: Any, eps: float
) -> None:
    x, y = digits_data.x_test, digits_data.y_test
    for steps in (10, 20):
        apgd = APGD(eps=eps, steps=steps).generate(digits_mlp, x, y)
        pgd = PGD(eps=eps, steps=steps).generate(digits_mlp, x, y)
        # Measured on the 360 test digits: APGD's robust accuracy 0.3-1.1 points below
        # PGD's at every (eps, steps) here; one sample (0.3 points) of slack.
        assert (apgd.y_adv == y).mean() <= (pgd.y_adv == y).mean() + 1 / len(y)
        assert apgd.linf.max() <= eps + 1e-6


def test_restarts_only_help_and_stop_on_fooled_samples(
    digits_mlp: TorchClassifier, digits_data: Any
) -> None:
    x, y = digits_data.x_test[:120], digits_data.y_test[:120]
    one = APGD(eps=0.1, steps=10).generate(digits_mlp, x, y)
    three = APGD(eps=0.1, steps=10, restarts=3).generate(digits_mlp, x, y)
    # The first run is shared; later runs only touch samples not yet fooled.
    assert (three.success >= one.success).all()
    np.testing.assert_array_equal(three.queries[one.success], one.queries[one.success])
    assert (three.queries[~one.success] > one.queries[~one.success]).all()


def test_l2_stays_in_its_ball(digits_mlp: TorchClassifier, digits_data: Any) -> None:
    x, y = digits_data.x_test[:100], digits_data.y_test[:100]
    result = APGD(eps=0.8, norm="2", steps=20).generate(digits_mlp, x, y)
    assert result.l2.max() <= 0.8 + 1e-5
    assert result.success_rate >= 0.5  # C&W's median L2 on these digits is about 0.6
