"""BIM's own claims: FGSM iterated from x in steps of step_size, projected each step."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from advml.evasion import BIM, FGSM
from advml.models import TorchClassifier

X = np.array([[0.4, 0.6], [0.7, 0.2], [0.3, 0.35], [0.55, 0.45]], dtype=np.float32)
Y = np.array([0, 1, 0, 1])
TOWARDS_OTHER = np.array([[1, -1], [-1, 1], [1, -1], [-1, 1]], dtype=np.float32)
MARGIN = np.abs(X[:, 0] - X[:, 1])


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_one_step_of_eps_is_fgsm(digits_mlp: TorchClassifier, digits_data: Any, norm: str) -> None:
    x, y = digits_data.x_test[:64], digits_data.y_test[:64]
    eps = 0.1 if norm == "inf" else 0.8
    bim = BIM(eps=eps, steps=1, step_size=eps, norm=norm).generate(digits_mlp, x, y)
    fgsm = FGSM(eps=eps, norm=norm).generate(digits_mlp, x, y)
    np.testing.assert_array_equal(bim.x_adv, fgsm.x_adv)


def test_linear_model_ends_on_the_corner_of_the_ball(tiny_linear: TorchClassifier) -> None:
    # Every step has the same sign on a linear model, so the default step size
    # (2.5 eps / steps) walks to x + eps * sign(w) and stays there.
    eps = 0.04
    result = BIM(eps=eps, steps=10).generate(tiny_linear, X, Y)
    np.testing.assert_allclose(result.x_adv - X, eps * TOWARDS_OTHER, atol=1e-6)
    np.testing.assert_array_equal(result.queries, 10)


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_succeeds_exactly_when_eps_exceeds_the_distance_to_the_boundary(
    tiny_linear: TorchClassifier, norm: str
) -> None:
    needed = MARGIN / (2.0 if norm == "inf" else np.sqrt(2.0))
    for factor, fooled in ((1.05, True), (0.95, False)):
        for i in range(len(X)):
            attack = BIM(eps=float(needed[i]) * factor, steps=20, norm=norm)
            result = attack.generate(tiny_linear, X[i : i + 1], Y[i : i + 1])
            assert bool(result.success[0]) is fooled, (i, factor)


def test_distance_grows_by_at_most_step_size_per_step(
    digits_mlp: TorchClassifier, digits_data: Any
) -> None:
    x, y = digits_data.x_test[:64], digits_data.y_test[:64]
    step, steps = 0.004, 5
    result = BIM(eps=0.3, steps=steps, step_size=step).generate(digits_mlp, x, y)
    assert result.linf.max() <= steps * step + 1e-6
    assert result.linf.max() == pytest.approx(steps * step, abs=1e-6)  # some pixel went straight


def test_more_steps_do_not_hurt_on_digits(digits_mlp: TorchClassifier, digits_data: Any) -> None:
    x, y = digits_data.x_test, digits_data.y_test
    few = BIM(eps=0.1, steps=1, step_size=0.1).generate(digits_mlp, x, y)
    many = BIM(eps=0.1, steps=10).generate(digits_mlp, x, y)
    assert many.success_rate > few.success_rate


def test_early_stop_keeps_successes_and_spends_fewer_queries(
    digits_mlp: TorchClassifier, digits_data: Any
) -> None:
    x, y = digits_data.x_test, digits_data.y_test
    steps = 20
    plain = BIM(eps=0.1, steps=steps).generate(digits_mlp, x, y)
    early = BIM(eps=0.1, steps=steps, early_stop=True).generate(digits_mlp, x, y)
    # A sample stops the moment it is fooled, so it stays fooled: every success of the
    # plain run is a success here too (the trajectories agree until then).
    assert early.success_rate >= plain.success_rate
    assert (early.success | ~plain.success).all()
    assert (early.queries <= steps).all() and (early.queries >= 1).all()
    assert early.queries.mean() < 0.8 * steps
    # Samples the model already gets wrong stop after one look.
    wrong = digits_mlp.predict(x) != y
    assert wrong.any()
    np.testing.assert_array_equal(early.queries[wrong], 1)
    np.testing.assert_array_equal(early.x_adv[wrong], x[wrong])
