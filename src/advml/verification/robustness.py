"""Certified robustness of tree ensembles (Chen et al., NeurIPS 2019).

Chen, Zhang, Si, Li, Boning & Hsieh, "Robustness Verification of Tree-based Models",
NeurIPS 2019: within an L∞ ball, each tree can only reach the leaves whose boxes meet
the ball, and a set of leaves (one per tree) can only be reached together when their
boxes meet each other inside the ball (a clique of intersecting boxes). The worst
score margin over all cliques is the exact answer, and NP-hard; summing, over groups
of trees, the worst margin of each group's cliques is a *lower* bound on it (the
multi-level bound of the paper, one level). When that lower bound stays positive the
prediction is certified: no input in the ball changes it.

:func:`certify` turns this into a certified lower bound on each input's L∞ robust
radius (a binary search over the distances at which leaves become reachable) and the
verified robust accuracy at an ``eps``. Sound: the bound never exceeds the exact radius
of :class:`~advml.evasion.TreeExact` (both measure distance to the same float grid).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from advml.evasion.constraints import FeatureConstraints, as_constraints
from advml.evasion.trees import input_boxes
from advml.evasion.trees_core import Geometry, InputBox
from advml.models.trees import TreeEnsemble, tree_view
from advml.validation import check_number

__all__ = ["Certificate", "LeafBoxes", "certify"]


class LeafBoxes:
    """The box of every leaf: per feature the attainable values that reach it."""

    def __init__(self, geo: Geometry, integer: np.ndarray | None = None) -> None:
        view = geo.view
        f = view.flat
        d = view.n_features
        n_nodes = f["feature"].shape[0]
        lo_pred, hi_pred = geo.pred_lo.copy(), geo.pred_hi.copy()
        if integer is not None and integer.any():
            whole = integer[geo.pred_feature]
            lo_pred[whole] = np.floor(lo_pred[whole])
            hi_pred[whole] = np.ceil(hi_pred[whole])
        lower = np.full((n_nodes, d), -np.inf)
        upper = np.full((n_nodes, d), np.inf)
        for root in f["roots"]:
            stack = [int(root)]
            while stack:
                node = stack.pop()
                j = f["feature"][node]
                if j < 0:
                    continue
                q = geo.node_pred[node]
                left, right = int(f["left"][node]), int(f["right"][node])
                for child in (left, right):
                    lower[child] = lower[node]
                    upper[child] = upper[node]
                upper[left, j] = min(upper[left, j], lo_pred[q])
                lower[right, j] = max(lower[right, j], hi_pred[q])
                stack += [left, right]
        self.leaves = geo.leaves
        self.lower = lower[geo.leaves]
        self.upper = upper[geo.leaves]
        self.tree = geo.leaf_tree
        self.scores = geo.leaf_scores  # (L, n_classes), per leaf
        self.base = geo.base_scores


def _robust_at(
    boxes: LeafBoxes,
    view: TreeEnsemble,
    x0: np.ndarray,
    label: int,
    box: InputBox,
    eps: float,
    group_size: int,
    max_nodes: int,
) -> bool:
    """Is the label certified on the L∞ ball of radius ``eps`` (within ``box``)?"""
    lo = np.maximum(x0 - eps, box.low)
    hi = np.minimum(x0 + eps, box.high)
    if box.switch_on:
        # A switch-on feature takes x0 or its "on" value: the interval between covers both.
        sw = list(box.switch_on)
        hi[sw] = np.where(box.high[sw] - x0[sw] <= eps, box.high[sw], x0[sw])
    b_lo = np.maximum(boxes.lower, lo)
    b_hi = np.minimum(boxes.upper, hi)
    reach = np.all(b_lo <= b_hi, axis=1)
    k = view.n_classes
    for rival in range(k):
        if rival == label:
            continue
        diff = boxes.scores[:, label] - boxes.scores[:, rival]
        total = float(boxes.base[label] - boxes.base[rival])
        # Trees whose leaves all give the same difference add a constant (for multi-class
        # boosting, the trees of the other classes add 0).
        for start in range(0, view.n_trees, group_size):
            trees = range(start, min(start + group_size, view.n_trees))
            total += _group_min(trees, boxes, reach, b_lo, b_hi, diff, max_nodes)
        # Certified only with room for float rounding of the sums (a tie would already
        # go to the lower class; the bound does not count on it).
        if not total > 1e-9:
            return False
    return True


def _group_min(
    trees: range,
    boxes: LeafBoxes,
    reach: np.ndarray,
    b_lo: np.ndarray,
    b_hi: np.ndarray,
    diff: np.ndarray,
    max_nodes: int,
) -> float:
    """Smallest summed score difference over consistent leaf choices of these trees.

    Depth-first over the trees' reachable leaves, keeping the running intersection of
    boxes; when the search grows past ``max_nodes`` it falls back to the sum of each
    tree's own minimum, which is smaller, so still sound.
    """
    options = []
    constant = 0.0
    for t in trees:
        mine = np.flatnonzero(reach & (boxes.tree == t))
        d = diff[mine]
        if d.size and np.ptp(d) == 0:
            # Every reachable leaf gives the same: a constant, and no constraint on the
            # others (choosing one of its boxes would constrain them, unsoundly).
            constant += float(d[0])
            continue
        order = np.argsort(d)
        options.append((mine[order], d[order]))
    independent = constant + float(sum(d.min() for _, d in options))
    if len(options) <= 1:
        return independent
    # Most constrained first: fewer branches near the root.
    options.sort(key=lambda o: o[0].shape[0])
    suffix = [*np.cumsum([o[1].min() for o in options[::-1]])[::-1].tolist(), 0.0]
    best = math.inf
    nodes = 0

    def dfs(i: int, lo: np.ndarray, hi: np.ndarray, acc: float) -> None:
        nonlocal best, nodes
        nodes += 1
        if nodes > max_nodes:
            raise _TooLarge
        if acc + suffix[i] >= best:
            return
        if i == len(options):
            best = acc
            return
        leaves, values = options[i]
        for leaf, value in zip(leaves, values, strict=True):
            if acc + value + suffix[i + 1] >= best:
                break  # values are sorted: no later leaf does better
            n_lo = np.maximum(lo, b_lo[leaf])
            n_hi = np.minimum(hi, b_hi[leaf])
            if np.all(n_lo <= n_hi):
                dfs(i + 1, n_lo, n_hi, acc + float(value))

    d = b_lo.shape[1]
    try:
        dfs(0, np.full(d, -np.inf), np.full(d, np.inf), 0.0)
    except _TooLarge:
        return independent
    return constant + best if math.isfinite(best) else independent


class _TooLarge(Exception):
    pass


@dataclass(frozen=True)
class Certificate:
    """Certified L∞ robustness of each input.

    ``lower_bound[i]``: every perturbation smaller than it keeps the prediction (0 for
    an input already misclassified); ``correct``: the clean prediction equals ``y``;
    ``robust`` (when ``eps`` was given): correct and certified on the ball of radius
    ``eps``; ``verified_accuracy``: the fraction of inputs ``robust`` (nan without eps).
    """

    lower_bound: np.ndarray
    correct: np.ndarray
    robust: np.ndarray | None
    eps: float | None
    seconds: float

    @property
    def verified_accuracy(self) -> float:
        if self.robust is None or not self.robust.size:
            return math.nan
        return float(self.robust.mean())


def certify(
    model: Any,
    x: np.ndarray,
    y: np.ndarray | None = None,
    *,
    eps: float | None = None,
    bounds: tuple[float, float] | None = None,
    constraints: FeatureConstraints | Mapping[str, Any] | None = None,
    integer: Sequence[int] = (),
    group_size: int = 4,
    max_nodes: int = 20_000,
) -> Certificate:
    """Certified lower bounds on the L∞ robust radius of a tree model.

    Parameters
    ----------
    model : tree model
        Anything :func:`advml.models.trees.tree_view` reads (a fitted library model, an
        advml adapter, a ``TreeEnsemble``).
    x : array (n, n_features)
    y : array (n,), optional
        True labels; default the model's own predictions (every input then "correct").
    eps : float, optional
        Radius for ``robust`` and ``verified_accuracy``.
    bounds : (float, float), optional
        Valid input range; default the model's ``bounds`` if it has them, else none.
    constraints : FeatureConstraints or mapping, optional
        What the attacker may not change (the bound then holds for that attacker).
    integer : sequence of int
        Integer features.
    group_size : int
        Trees merged exactly per group (Chen et al.'s clique level); larger is tighter
        and slower.
    max_nodes : int
        Search budget per group; past it the group falls back to per-tree minima.
    """
    check_number("group_size", group_size, low=1, integer=True)
    check_number("max_nodes", max_nodes, low=1, integer=True)
    if eps is not None:
        check_number("eps", eps, low=0)
    rules = as_constraints("constraints", constraints)
    start = time.perf_counter()
    view = tree_view(model)
    # advml models receive float32 inputs: the attacker's grid.
    flat = np.asarray(x, dtype=np.float32).astype(np.float64).reshape(len(x), -1)
    if flat.shape[1] != view.n_features:
        raise ValueError(f"x has {flat.shape[1]} features, the model {view.n_features}")
    if bounds is None:
        bounds = getattr(model, "bounds", (-np.inf, np.inf))
    pred = view.predict(flat)
    labels = pred if y is None else np.asarray(y).astype(np.int64).reshape(-1)
    if labels.shape != (flat.shape[0],):
        raise ValueError(f"y must have shape ({flat.shape[0]},), got {labels.shape}")
    geo = Geometry(view)
    whole = np.zeros(view.n_features, dtype=bool)
    whole[list(integer)] = True
    boxes = LeafBoxes(geo, whole)
    inputs = input_boxes(flat, bounds, rules, integer)
    lower = np.zeros(flat.shape[0])
    robust = None if eps is None else np.zeros(flat.shape[0], dtype=bool)
    for i, box in enumerate(inputs):
        if pred[i] != labels[i]:
            continue
        x0 = flat[i]

        def holds(
            r: float, x0: np.ndarray = x0, label: int = int(labels[i]), box: InputBox = box
        ) -> bool:
            return _robust_at(boxes, view, x0, label, box, r, group_size, max_nodes)

        if robust is not None and eps is not None:
            robust[i] = holds(eps)
        _, can, cost = geo.flip_costs(x0, box)
        radii = np.unique(cost[can])
        # Largest index m with the label certified at radii[m]; the bound is radii[m+1].
        low, high = 0, radii.shape[0]  # certified for radii[:low], unknown in [low, high)
        if radii.size and radii[0] == 0 and not holds(0.0):
            continue
        while low < high:
            mid = (low + high) // 2
            if holds(float(radii[mid])):
                low = mid + 1
            else:
                high = mid
        lower[i] = float(radii[low]) if low < radii.shape[0] else math.inf
    correct = pred == labels
    return Certificate(lower, correct, robust, eps, time.perf_counter() - start)
