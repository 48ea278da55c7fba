"""tree_exact and tree_fast: minimal, valid, honest about optimality, on every library."""

from __future__ import annotations

import math

import numpy as np
import pytest

from advml import registry
from advml.errors import UnsupportedModelError
from advml.evasion import FeatureConstraints, TreeExact, TreeFast
from advml.models import CallableClassifier, SklearnClassifier
from advml.models.trees import tree_view
from tests.trees.brute import brute_force_radius
from tests.trees.conftest import KINDS


def _model(est):
    return SklearnClassifier(est, bounds=(0.0, 1.0))


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("kind", KINDS)
def test_exact_radius_equals_brute_force(fitted, kind, n_classes):
    est, x, _ = fitted(kind, n_classes, n_trees=4, depth=2)
    xs = x[:8].astype(np.float32)
    result = TreeExact().generate(_model(est), xs)
    view = tree_view(est)
    brute = np.array(
        [brute_force_radius(view, xs[i], int(result.y[i]), (0.0, 1.0)) for i in range(len(xs))]
    )
    assert result.optimal.all()
    np.testing.assert_array_equal(result.radius, brute)
    found = np.isfinite(result.radius)
    assert result.success[found].all()
    # The reported radius is the distance of the returned input (float32 arithmetic).
    np.testing.assert_allclose(result.linf[found], result.radius[found], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kind", ["xgb", "forest", "lgbm"])
def test_fast_attack_succeeds_and_is_an_upper_bound(fitted, kind):
    est, x, _ = fitted(kind, 3)
    xs = x[:15].astype(np.float32)
    model = _model(est)
    exact = TreeExact().generate(model, xs)
    fast = TreeFast().generate(model, xs)
    assert fast.success.all()
    assert np.all(fast.radius >= exact.radius - 1e-12)
    assert np.median(fast.radius / np.maximum(exact.radius, 1e-12)) <= 1.15


def test_l1_norm_exact(fitted):
    est, x, _ = fitted("gb", 2, n_trees=4, depth=2)
    xs = x[:6].astype(np.float32)
    model = _model(est)
    l1 = TreeExact(norm="1").generate(model, xs)
    linf = TreeExact().generate(model, xs)
    assert l1.success.all() and l1.optimal.all()
    l1_dist = np.abs(np.asarray(l1.x_adv, np.float64) - xs).sum(axis=1)
    np.testing.assert_allclose(l1_dist, l1.radius, rtol=1e-6, atol=1e-7)
    # The smallest L1 change is at least the smallest L-inf change.
    assert np.all(l1.radius >= linf.radius - 1e-7)


def test_targeted(fitted):
    est, x, _ = fitted("xgb", 3)
    xs = x[:10].astype(np.float32)
    target = (est.predict(xs) + 1) % 3
    result = TreeExact(targeted=True).generate(_model(est), xs, target)
    assert result.success.all()
    np.testing.assert_array_equal(est.predict(np.asarray(result.x_adv)), target)
    untargeted = TreeExact().generate(_model(est), xs)
    assert np.all(result.radius >= untargeted.radius - 1e-12)


def test_constraints_and_integer_features(fitted):
    est, x, _ = fitted("forest", 2)
    xs = x[:10].astype(np.float32)
    rules = FeatureConstraints(immutable=[0], switch_on=[5], ranges={1: (0.2, 0.8)})
    for attack in (
        TreeExact(constraints=rules, integer=[3]),
        TreeFast(constraints=rules, integer=[3]),
    ):
        result = attack.generate(_model(est), xs)
        adv = np.asarray(result.x_adv)
        assert rules.satisfied(xs, adv, (0.0, 1.0)).all()
        moved = adv[:, 3] != xs[:, 3]
        assert np.all(adv[moved, 3] == np.round(adv[moved, 3]))
    free = TreeExact().generate(_model(est), xs)
    held = TreeExact(constraints=rules).generate(_model(est), xs)
    assert np.all(held.radius >= free.radius - 1e-12)


def test_eps_cap_and_time_limit(fitted):
    est, x, _ = fitted("xgb", 2, n_trees=30, depth=4)
    xs = x[:6].astype(np.float32)
    model = _model(est)
    full = TreeExact().generate(model, xs)
    eps = float(np.median(full.radius))
    capped = TreeExact(eps=eps).generate(model, xs)
    np.testing.assert_array_equal(capped.success, full.radius <= eps)
    assert np.all(capped.linf <= eps + 1e-7)
    assert capped.optimal.all()
    with pytest.warns(UserWarning, match="not proven minimal"):
        rushed = TreeExact(time_limit=1e-4).generate(model, xs)
    # Not proven: the flags say so and the bounds stay below the true radius.
    assert not rushed.optimal.all()
    assert np.all(rushed.lower_bound <= full.radius + 1e-12)
    assert np.all(
        rushed.radius[np.isfinite(rushed.radius)] >= full.radius[np.isfinite(rushed.radius)] - 1e-12
    )


def test_registered_and_schema():
    assert {"tree_exact", "tree_fast"} <= set(registry.available("evasion"))
    assert registry.schema("evasion", "tree_exact")["time_limit"]["default"] == 10.0
    attack = registry.create("evasion", "tree_exact", norm="1", time_limit=2)
    assert attack.norm == "1"
    with pytest.raises(ValueError, match="norm"):
        TreeExact(norm="2")
    with pytest.raises(ValueError, match="time_limit"):
        TreeExact(time_limit=0)


def test_non_tree_model_is_refused():
    model = CallableClassifier(
        lambda z: np.stack([z.sum(1), -z.sum(1)], 1),
        input_shape=(3,),
        n_classes=2,
        bounds=(0.0, 1.0),
        returns="logits",
    )
    assert TreeExact.unsupported_reason(model) is not None
    with pytest.raises(UnsupportedModelError, match="tree"):
        TreeExact().generate(model, np.zeros((2, 3), np.float32))


def test_already_misclassified_inputs_have_radius_zero(fitted):
    est, x, y = fitted("tree", 2)
    pred = est.predict(x)
    wrong = np.flatnonzero(pred != y)[:3]
    if wrong.size == 0:
        pytest.skip("no misclassified training input")
    result = TreeExact().generate(_model(est), x[wrong].astype(np.float32), y[wrong])
    assert np.all(result.radius == 0.0) and result.success.all()
    assert not math.isnan(result.summary()["median_radius"])


def test_warm_start_changes_speed_not_answers(fitted):
    est, x, _ = fitted("lgbm", 3, n_trees=20, depth=3)
    xs = x[:8].astype(np.float32)
    model = _model(est)
    cold = TreeExact(warm_start=False).generate(model, xs)
    warm = TreeExact().generate(model, xs)
    assert cold.optimal.all() and warm.optimal.all()
    np.testing.assert_array_equal(warm.radius, cold.radius)
