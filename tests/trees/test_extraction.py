"""Path-finding extraction recovers a functionally equivalent tree."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.tree import DecisionTreeClassifier

from advml.extraction.tree_path import extract_tree, sklearn_leaf_oracle


@pytest.mark.parametrize("n_classes", [2, 3])
def test_recovers_an_equivalent_tree(fitted, n_classes):
    est, x, _ = fitted("tree", n_classes)
    result = extract_tree(
        sklearn_leaf_oracle(est),
        est.predict,
        n_features=x.shape[1],
        bounds=(0.0, 1.0),
        n_classes=n_classes,
    )
    assert result.n_leaves == est.get_n_leaves()
    probe = np.random.default_rng(5).random((10_000, x.shape[1]))
    assert np.array_equal(result.tree.predict(probe), est.predict(probe))
    # Inputs right at the victim's thresholds agree too (float32 inputs, as sklearn sees them).
    t = est.tree_
    inner = t.children_left >= 0
    edge = np.repeat(x[:1], inner.sum(), axis=0).astype(np.float32)
    edge[np.arange(inner.sum()), t.feature[inner]] = t.threshold[inner].astype(np.float32)
    assert np.array_equal(result.tree.predict(edge.astype(np.float64)), est.predict(edge))
    assert 0 < result.queries < 100_000


def test_budget_and_bad_bounds():
    rng = np.random.default_rng(0)
    x = rng.random((100, 3))
    est = DecisionTreeClassifier(max_depth=3, random_state=0).fit(x, (x[:, 0] > 0.5).astype(int))
    with pytest.raises(ValueError, match="max_queries"):
        extract_tree(
            sklearn_leaf_oracle(est),
            est.predict,
            n_features=3,
            bounds=(0.0, 1.0),
            n_classes=2,
            max_queries=10,
        )
    with pytest.raises(ValueError, match="bounds"):
        extract_tree(
            sklearn_leaf_oracle(est), est.predict, n_features=3, bounds=(1.0, 0.0), n_classes=2
        )
