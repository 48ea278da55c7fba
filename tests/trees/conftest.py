"""Small fitted tree models of every supported library, binary and multi-class."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest


def _data(n_classes: int, n: int = 240, d: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, d))
    score = x[:, 0] + 0.6 * x[:, 1] - 0.4 * x[:, 2] + 0.3 * rng.standard_normal(n)
    y = np.digitize(score, np.quantile(score, np.linspace(0, 1, n_classes + 1)[1:-1]))
    return x, y.astype(np.int64)


def _fit(
    name: str, n_classes: int, n_trees: int = 8, depth: int = 3
) -> tuple[Any, np.ndarray, np.ndarray]:
    x, y = _data(n_classes)
    if name == "tree":
        from sklearn.tree import DecisionTreeClassifier

        est: Any = DecisionTreeClassifier(max_depth=depth + 1, random_state=0)
    elif name == "forest":
        from sklearn.ensemble import RandomForestClassifier

        est = RandomForestClassifier(n_estimators=n_trees, max_depth=depth, random_state=0)
    elif name == "extra":
        from sklearn.ensemble import ExtraTreesClassifier

        est = ExtraTreesClassifier(n_estimators=n_trees, max_depth=depth, random_state=0)
    elif name == "gb":
        from sklearn.ensemble import GradientBoostingClassifier

        est = GradientBoostingClassifier(n_estimators=n_trees, max_depth=depth, random_state=0)
    elif name == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        est = HistGradientBoostingClassifier(max_iter=n_trees, max_depth=depth, random_state=0)
    elif name == "xgb":
        xgboost = pytest.importorskip("xgboost")  # the `xgboost` extra

        est = xgboost.XGBClassifier(n_estimators=n_trees, max_depth=depth, n_jobs=1, random_state=0)
    elif name == "lgbm":
        lightgbm = pytest.importorskip("lightgbm")  # the `formats` extra

        est = lightgbm.LGBMClassifier(
            n_estimators=n_trees,
            max_depth=depth,
            num_leaves=8,
            n_jobs=1,
            verbose=-1,
            random_state=0,
        )
    else:
        raise ValueError(name)
    est.fit(x, y)
    return est, x, y


KINDS = ["tree", "forest", "extra", "gb", "hgb", "xgb", "lgbm"]


@pytest.fixture(scope="session")
def fitted() -> Callable[..., tuple[Any, np.ndarray, np.ndarray]]:
    cache: dict[tuple[Any, ...], tuple[Any, np.ndarray, np.ndarray]] = {}

    def get(
        name: str, n_classes: int, n_trees: int = 8, depth: int = 3
    ) -> tuple[Any, np.ndarray, np.ndarray]:
        key = (name, n_classes, n_trees, depth)
        if key not in cache:
            cache[key] = _fit(name, n_classes, n_trees, depth)
        return cache[key]

    return get
