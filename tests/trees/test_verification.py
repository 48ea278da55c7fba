"""The certified lower bound never exceeds the exact radius, on every library."""

from __future__ import annotations

import numpy as np
import pytest

from advml.evasion import FeatureConstraints, TreeExact
from advml.models import SklearnClassifier
from advml.verification import certify
from tests.trees.conftest import KINDS


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("kind", KINDS)
def test_lower_bound_is_sound(fitted, kind, n_classes):
    est, x, y = fitted(kind, n_classes)
    xs, ys = x[:15].astype(np.float32), y[:15]
    model = SklearnClassifier(est, bounds=(0.0, 1.0))
    exact = TreeExact().generate(model, xs, ys)
    cert = certify(model, xs, ys, eps=0.05)
    assert np.all(cert.lower_bound <= exact.radius)
    # Misclassified inputs have radius 0 and are never certified.
    assert np.all(cert.lower_bound[~cert.correct] == 0)
    # Certified at eps means no adversarial input within eps: the exact radius is larger.
    assert np.all(exact.radius[cert.robust] > 0.05)
    assert cert.verified_accuracy == pytest.approx(cert.robust.mean())


def test_small_groups_are_looser_but_still_sound(fitted):
    est, x, y = fitted("xgb", 2, n_trees=30, depth=3)
    xs, ys = x[:10].astype(np.float32), y[:10]
    model = SklearnClassifier(est, bounds=(0.0, 1.0))
    exact = TreeExact().generate(model, xs, ys)
    tight = certify(model, xs, ys, group_size=6)
    loose = certify(model, xs, ys, group_size=1)
    assert np.all(loose.lower_bound <= tight.lower_bound)
    assert np.all(tight.lower_bound <= exact.radius)


def test_constraints_raise_the_bound(fitted):
    est, x, y = fitted("forest", 2)
    xs, ys = x[:10].astype(np.float32), y[:10]
    model = SklearnClassifier(est, bounds=(0.0, 1.0))
    rules = FeatureConstraints(immutable=[0, 1])
    free = certify(model, xs, ys)
    held = certify(model, xs, ys, constraints=rules)
    exact = TreeExact(constraints=rules).generate(model, xs, ys)
    assert np.all(held.lower_bound >= free.lower_bound)
    assert np.all(held.lower_bound <= exact.radius)


def test_bad_settings():
    with pytest.raises(ValueError, match="group_size"):
        certify(None, np.zeros((1, 2)), group_size=0)
