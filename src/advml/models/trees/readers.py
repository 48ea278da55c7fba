"""Read a fitted tree model of any supported library into a :class:`TreeEnsemble`.

Each library is read through its own model-dump API: scikit-learn's ``tree_`` arrays
(and, for HistGradientBoosting, its fitted predictors), XGBoost's JSON model
(``Booster.save_raw("json")``) and LightGBM's ``Booster.dump_model()``. Nothing here
imports a library the model does not come from.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from advml.errors import UnsupportedModelError
from advml.models.trees.ensemble import Tree, TreeEnsemble

__all__ = ["tree_model_reason", "tree_view"]

_SKLEARN_FORESTS = ("RandomForestClassifier", "ExtraTreesClassifier")
_SKLEARN_TREES = ("DecisionTreeClassifier", "ExtraTreeClassifier")


def _unwrap(model: Any) -> Any:
    """The fitted tree object behind an advml adapter (``.booster`` or ``.estimator``)."""
    if _kind(model) is not None:  # a forest's own ``estimator`` is its unfitted template
        return model
    for attr in ("booster", "estimator"):
        inner = getattr(model, attr, None)
        if inner is not None and inner is not model:
            return inner
    return model


def _kind(obj: Any) -> str | None:
    """Which reader applies to ``obj``, by its class (no library is imported)."""
    if isinstance(obj, TreeEnsemble):
        return "view"
    name = type(obj).__name__
    module = type(obj).__module__
    if module.startswith("xgboost"):
        return "xgboost" if name in ("Booster", "XGBClassifier", "XGBRFClassifier") else None
    if module.startswith("lightgbm"):
        return "lightgbm" if name in ("Booster", "LGBMClassifier") else None
    if module.startswith("sklearn"):
        if name in _SKLEARN_TREES or name in _SKLEARN_FORESTS:
            return "sklearn_forest"
        if name == "GradientBoostingClassifier":
            return "sklearn_gb"
        if name == "HistGradientBoostingClassifier":
            return "sklearn_hgb"
    return None


def tree_model_reason(model: Any) -> str | None:
    """Why ``model`` has no tree view, or None when it has one (cheap: no parsing)."""
    obj = _unwrap(model)
    if _kind(obj) is None:
        return (
            f"the tree attacks need a decision tree or tree ensemble (scikit-learn trees, "
            f"forests, GradientBoosting, HistGradientBoosting, XGBoost or LightGBM); got "
            f"{type(obj).__name__}"
        )
    return None


def tree_view(model: Any) -> TreeEnsemble:
    """The :class:`TreeEnsemble` of a fitted tree model.

    Parameters
    ----------
    model : object
        A fitted scikit-learn ``DecisionTreeClassifier``, ``ExtraTreeClassifier``,
        ``RandomForestClassifier``, ``ExtraTreesClassifier``,
        ``GradientBoostingClassifier`` or ``HistGradientBoostingClassifier``; an
        ``xgboost.Booster``/``XGBClassifier``; a ``lightgbm.Booster``/``LGBMClassifier``;
        or an advml adapter holding one as ``.booster`` or ``.estimator`` (e.g.
        :class:`~advml.models.SklearnClassifier`). A ``TreeEnsemble`` is returned as is.

    Raises
    ------
    UnsupportedModelError
        For any other model, and for tree models the view cannot represent exactly
        (categorical splits, multi-output trees, linear leaves, objectives that are not
        classification).
    """
    reason = tree_model_reason(model)
    if reason is not None:
        raise UnsupportedModelError(reason)
    obj = _unwrap(model)
    kind = _kind(obj)
    if kind == "view":
        view: TreeEnsemble = obj
        return view
    if kind == "xgboost":
        return _xgboost(obj)
    if kind == "lightgbm":
        return _lightgbm(obj)
    if kind == "sklearn_gb":
        return _sklearn_gb(obj)
    if kind == "sklearn_hgb":
        return _sklearn_hgb(obj)
    return _sklearn_forest(obj)


# -- scikit-learn ----------------------------------------------------------------------
def _check_classes(est: Any) -> int:
    classes = getattr(est, "classes_", None)
    if classes is None:
        raise ValueError(f"{type(est).__name__} is not fitted: fit it before attacking it")
    classes = np.asarray(classes)
    if classes.ndim != 1 or not np.array_equal(classes, np.arange(len(classes))):
        raise UnsupportedModelError(
            f"{type(est).__name__}.classes_ must be 0, 1, ..., k-1; encode the labels "
            f"(sklearn.preprocessing.LabelEncoder) and refit"
        )
    return len(classes)


def _sk_tree(tree_: Any, values: np.ndarray) -> Tree:
    leaf = tree_.children_left < 0
    return Tree(
        feature=np.where(leaf, -1, tree_.feature).astype(np.int64),
        threshold=np.where(leaf, 0.0, tree_.threshold).astype(np.float64),
        left=np.where(leaf, -1, tree_.children_left).astype(np.int64),
        right=np.where(leaf, -1, tree_.children_right).astype(np.int64),
        value=np.where(leaf[:, None], values, 0.0),
    )


def _sklearn_forest(est: Any) -> TreeEnsemble:
    k = _check_classes(est)
    members = list(getattr(est, "estimators_", [est]))
    trees = []
    for member in members:
        if member.tree_.n_outputs != 1:
            raise UnsupportedModelError("multi-output trees are not supported")
        v = np.asarray(member.tree_.value[:, 0, :], dtype=np.float64)
        # predict_proba of a tree: the leaf's class counts (or fractions) normalised.
        total = v.sum(axis=1, keepdims=True)
        v = v / np.where(total == 0, 1.0, total)
        trees.append(_sk_tree(member.tree_, v))
    forest = hasattr(est, "estimators_")
    return TreeEnsemble(
        trees=tuple(trees),
        base=np.zeros(k),
        combine="average",
        rule="le32",
        n_features=int(est.n_features_in_),
        n_classes=k,
        source=f"scikit-learn {type(est).__name__}",
        divisor=float(len(trees)) if forest else 1.0,
    )


def _sklearn_gb(est: Any) -> TreeEnsemble:
    k = _check_classes(est)
    d = int(est.n_features_in_)
    probe = np.zeros((2, d))
    probe[1] = 1.0
    # The initial raw prediction (the class prior's log-odds for the default init); a
    # user's own init estimator could depend on x, which the view cannot represent.
    init = np.asarray(est._raw_predict_init(probe), dtype=np.float64)
    if not np.array_equal(init[0], init[1]):
        raise UnsupportedModelError(
            "GradientBoostingClassifier with an input-dependent init estimator has no "
            "exact tree view; refit with init=None or init='zero'"
        )
    lr = float(est.learning_rate)
    stages = est.estimators_
    width = stages.shape[1]
    trees = []
    for stage in stages:
        for c, reg in enumerate(stage):
            v = np.zeros((reg.tree_.node_count, width))
            v[:, c] = lr * np.asarray(reg.tree_.value[:, 0, 0], dtype=np.float64)
            trees.append(_sk_tree(reg.tree_, v))
    return TreeEnsemble(
        trees=tuple(trees),
        base=init[0],
        combine="sigmoid" if k == 2 else "softmax",
        rule="le32",
        n_features=d,
        n_classes=k,
        source="scikit-learn GradientBoostingClassifier",
    )


def _sklearn_hgb(est: Any) -> TreeEnsemble:
    k = _check_classes(est)
    baseline = np.asarray(est._baseline_prediction, dtype=np.float64).reshape(-1)
    width = baseline.shape[0]
    trees = []
    for iteration in est._predictors:
        for c, predictor in enumerate(iteration):
            nodes = predictor.nodes
            if np.any(nodes["is_categorical"]):
                raise UnsupportedModelError(
                    "HistGradientBoostingClassifier with categorical splits is not supported"
                )
            leaf = nodes["is_leaf"].astype(bool)
            v = np.zeros((len(nodes), width))
            v[:, c] = np.where(leaf, nodes["value"], 0.0)
            trees.append(
                Tree(
                    feature=np.where(leaf, -1, nodes["feature_idx"]).astype(np.int64),
                    threshold=np.where(leaf, 0.0, nodes["num_threshold"]).astype(np.float64),
                    left=np.where(leaf, -1, nodes["left"]).astype(np.int64),
                    right=np.where(leaf, -1, nodes["right"]).astype(np.int64),
                    value=v,
                )
            )
    return TreeEnsemble(
        trees=tuple(trees),
        base=baseline,
        combine="sigmoid" if k == 2 else "softmax",
        rule="le",
        n_features=int(est.n_features_in_),
        n_classes=k,
        source="scikit-learn HistGradientBoostingClassifier",
    )


# -- XGBoost ---------------------------------------------------------------------------
def _floats(text: Any) -> np.ndarray:
    """XGBoost writes base_score as '5E-1' or, from 3.0 on, '[5E-1,1E-1]'."""
    if isinstance(text, str):
        text = text.strip().strip("[]")
        return np.array([float(v) for v in text.split(",")], dtype=np.float64)
    return np.atleast_1d(np.asarray(text, dtype=np.float64))


def _xgboost(obj: Any) -> TreeEnsemble:
    booster = obj.get_booster() if hasattr(obj, "get_booster") else obj
    model = json.loads(bytes(booster.save_raw(raw_format="json")))
    learner = model["learner"]
    objective = learner["objective"]["name"]
    params = learner["learner_model_param"]
    n_features = int(params["num_feature"])
    num_class = int(params.get("num_class", "0") or 0)
    if int(params.get("num_target", "1") or 1) != 1:
        raise UnsupportedModelError("multi-target XGBoost models are not supported")
    gb = learner["gradient_booster"]
    if gb.get("name") not in ("gbtree", None):
        raise UnsupportedModelError(
            f"XGBoost booster {gb.get('name')!r} is not a tree ensemble (gbtree); dart and "
            f"gblinear models are not supported"
        )
    forest = gb["model"]
    base = _floats(params["base_score"])
    if objective == "binary:logistic":
        k, combine = 2, "sigmoid"
        p = float(base[0])
        # base_score is a probability: the margin starts at its log-odds.
        base = np.array([math.log(p / (1.0 - p))])
    elif objective in ("multi:softprob", "multi:softmax"):
        k, combine = num_class, "softmax"
        base = np.broadcast_to(base, (k,)).copy()
    else:
        raise UnsupportedModelError(
            f"XGBoost objective {objective!r} is not a classifier the view supports "
            f"(binary:logistic, multi:softprob, multi:softmax)"
        )
    width = 1 if combine == "sigmoid" else k
    raw_trees = forest["trees"]
    info = forest["tree_info"]
    best = booster.attr("best_iteration")
    if best is not None and "iteration_indptr" in forest:
        # predict_proba stops at the best iteration of early stopping; so does the view.
        raw_trees = raw_trees[: forest["iteration_indptr"][int(best) + 1]]
    trees = []
    for i, t in enumerate(raw_trees):
        if any(int(s) != 0 for s in t.get("split_type", [])):
            raise UnsupportedModelError("XGBoost models with categorical splits are not supported")
        if int(t["tree_param"].get("size_leaf_vector", "1") or 1) > 1:
            raise UnsupportedModelError("XGBoost multi-output trees are not supported")
        left = np.asarray(t["left_children"], dtype=np.int64)
        leaf = left < 0
        cond = np.asarray(t["split_conditions"], dtype=np.float32).astype(np.float64)
        v = np.zeros((len(left), width))
        v[:, int(info[i]) if width > 1 else 0] = np.where(leaf, cond, 0.0)
        trees.append(
            Tree(
                feature=np.where(leaf, -1, t["split_indices"]).astype(np.int64),
                threshold=np.where(leaf, 0.0, cond),
                left=np.where(leaf, -1, left),
                right=np.where(leaf, -1, np.asarray(t["right_children"], dtype=np.int64)),
                value=v,
            )
        )
    return TreeEnsemble(
        trees=tuple(trees),
        base=base,
        combine=combine,  # type: ignore[arg-type]
        rule="lt32",
        n_features=n_features,
        n_classes=k,
        source=f"XGBoost ({objective})",
    )


# -- LightGBM --------------------------------------------------------------------------
def _lightgbm(obj: Any) -> TreeEnsemble:
    booster = obj.booster_ if hasattr(obj, "booster_") else obj
    dump = booster.dump_model()
    objective = str(dump.get("objective", ""))
    words = objective.split()
    name = words[0] if words else ""
    per_iteration = int(dump["num_tree_per_iteration"])
    n_features = int(dump["max_feature_idx"]) + 1
    scale = 1.0
    if name in ("binary", "cross_entropy"):
        k, combine = 2, "sigmoid"
        for w in words[1:]:
            if w.startswith("sigmoid:"):
                scale = float(w.split(":", 1)[1])
    elif name in ("multiclass", "softmax"):
        k, combine = int(dump["num_class"]), "softmax"
    else:
        raise UnsupportedModelError(
            f"LightGBM objective {objective!r} is not a classifier the view supports "
            f"(binary, multiclass)"
        )
    width = 1 if combine == "sigmoid" else k
    trees = []
    for i, info in enumerate(dump["tree_info"]):
        if int(info.get("num_cat", 0)):
            raise UnsupportedModelError("LightGBM models with categorical splits are not supported")
        trees.append(
            _lgb_tree(info["tree_structure"], width, i % per_iteration if width > 1 else 0)
        )
    n_iterations = len(trees) // per_iteration
    return TreeEnsemble(
        trees=tuple(trees),
        base=np.zeros(width),
        combine=combine,  # type: ignore[arg-type]
        rule="le",
        n_features=n_features,
        n_classes=k,
        source=f"LightGBM ({name})",
        scale=scale,
        divisor=float(n_iterations) if dump.get("average_output") else 1.0,
    )


def _lgb_tree(root: dict[str, Any], width: int, column: int) -> Tree:
    feature: list[int] = []
    threshold: list[float] = []
    left: list[int] = []
    right: list[int] = []
    value: list[float] = []

    def add(node: dict[str, Any]) -> int:
        i = len(feature)
        feature.append(-1)
        threshold.append(0.0)
        left.append(-1)
        right.append(-1)
        value.append(0.0)
        if "leaf_value" in node:
            value[i] = float(node["leaf_value"])
            return i
        if node.get("decision_type", "<=") != "<=":
            raise UnsupportedModelError("LightGBM models with categorical splits are not supported")
        if node.get("missing_type", "None") == "Zero":
            # Zero-as-missing sends values near 0 the default way: not a threshold rule.
            raise UnsupportedModelError(
                "LightGBM models trained with zero_as_missing=True are not supported"
            )
        feature[i] = int(node["split_feature"])
        threshold[i] = float(node["threshold"])
        left[i] = add(node["left_child"])
        right[i] = add(node["right_child"])
        return i

    add(root)
    v = np.zeros((len(feature), width))
    v[:, column] = value
    return Tree(
        feature=np.asarray(feature, dtype=np.int64),
        threshold=np.asarray(threshold, dtype=np.float64),
        left=np.asarray(left, dtype=np.int64),
        right=np.asarray(right, dtype=np.int64),
        value=v,
    )
