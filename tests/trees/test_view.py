"""The tree view predicts what each library predicts, to float rounding."""

from __future__ import annotations

import numpy as np
import pytest

from advml.errors import UnsupportedModelError
from advml.models import SklearnClassifier
from advml.models.trees import tree_view
from tests.trees.conftest import KINDS


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("kind", KINDS)
def test_view_equals_library_predict_proba(fitted, kind, n_classes):
    est, x, _ = fitted(kind, n_classes)
    view = tree_view(est)
    rng = np.random.default_rng(1)
    probe = np.concatenate([x, rng.uniform(-0.2, 1.2, size=(500, x.shape[1]))])
    expected = est.predict_proba(probe)
    got = view.predict_proba(probe)
    # XGBoost sums leaves in float32; the view in float64.
    tol = 2e-6 if kind == "xgb" else 1e-12
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)
    assert view.n_classes == n_classes
    np.testing.assert_array_equal(view.predict(probe), est.predict(probe))


@pytest.mark.parametrize("kind", KINDS)
def test_split_values_exactly_on_thresholds(fitted, kind):
    """Inputs exactly at each split's left_max / right_min go where the library sends them."""
    est, x, _ = fitted(kind, 2)
    view = tree_view(est)
    f = view.flat
    inner = np.flatnonzero(f["feature"] >= 0)
    rows = np.repeat(x[:1], 2 * len(inner), axis=0)
    rows[np.arange(len(inner)), f["feature"][inner]] = f["left_max"][inner]
    rows[len(inner) + np.arange(len(inner)), f["feature"][inner]] = f["right_min"][inner]
    np.testing.assert_array_equal(view.predict(rows), est.predict(rows))
    leaves = view.apply(rows)
    # The leaf of the tree that owns each node lies in the node's left/right subtree.
    assert np.all(view.goes_left(f["left_max"][inner], inner))
    assert not np.any(view.goes_left(f["right_min"][inner], inner))
    assert leaves.shape == (2 * len(inner), view.n_trees)


def test_boosters_and_adapters(fitted):
    est, x, _ = fitted("xgb", 3)
    booster_view = tree_view(est.get_booster())
    np.testing.assert_allclose(
        booster_view.predict_proba(x), est.predict_proba(x), rtol=2e-6, atol=2e-6
    )
    lgb, x2, _ = fitted("lgbm", 3)
    np.testing.assert_allclose(
        tree_view(lgb.booster_).predict_proba(x2), lgb.predict_proba(x2), rtol=1e-12
    )
    rf, x3, _ = fitted("forest", 2)
    wrapped = SklearnClassifier(rf, bounds=(0.0, 1.0))
    np.testing.assert_allclose(tree_view(wrapped).predict_proba(x3), rf.predict_proba(x3))

    class BoosterAdapter:  # what the model loader makes of an XGBoost file
        booster = est.get_booster()

    assert tree_view(BoosterAdapter()).n_trees == booster_view.n_trees


def test_not_a_tree_model():
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(0).random((20, 3))
    est = LogisticRegression().fit(x, (x[:, 0] > 0.5).astype(int))
    with pytest.raises(UnsupportedModelError, match="tree ensemble"):
        tree_view(est)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_random_forest_modes_of_the_boosting_libraries(n_classes):
    xgboost = pytest.importorskip("xgboost")
    lightgbm = pytest.importorskip("lightgbm")
    from tests.trees.conftest import _data

    x, y = _data(n_classes)
    probe = np.random.default_rng(0).random((300, x.shape[1]))
    xgb_rf = xgboost.XGBRFClassifier(n_estimators=5, max_depth=3, n_jobs=1, random_state=0)
    xgb_rf.fit(x, y)
    lgb_rf = lightgbm.LGBMClassifier(
        boosting_type="rf", n_estimators=5, max_depth=3, num_leaves=8, bagging_freq=1,
        bagging_fraction=0.8, verbose=-1, n_jobs=1, random_state=0,
    ).fit(x, y)  # fmt: skip
    np.testing.assert_allclose(
        tree_view(xgb_rf).predict_proba(probe), xgb_rf.predict_proba(probe), rtol=2e-6, atol=2e-6
    )
    np.testing.assert_allclose(
        tree_view(lgb_rf).predict_proba(probe), lgb_rf.predict_proba(probe), rtol=1e-12
    )
