"""Brute-force minimal L∞ radius of a small tree ensemble, independent of the MILP.

Every cell of the ensemble's partition that meets the ball is a consistent choice of
one leaf per tree (the leaves' boxes intersect inside the ball); the search enumerates
them all, depth-first over the trees (pruned only where no completion can change the
label), and confirms each adversarial cell on its nearest point with the view's
``predict``. The radius is the smallest split distance at which one exists.
"""

from __future__ import annotations

import math

import numpy as np

from advml.evasion.trees import input_boxes
from advml.evasion.trees_core import Geometry
from advml.models.trees import TreeEnsemble
from advml.verification import LeafBoxes


def brute_force_radius(
    view: TreeEnsemble, x0: np.ndarray, label: int, bounds: tuple[float, float]
) -> float:
    x0 = np.asarray(x0, dtype=np.float32).astype(np.float64)
    if int(view.predict(x0[None, :])[0]) != label:
        return 0.0
    geo = Geometry(view)
    boxes = LeafBoxes(geo)
    box = input_boxes(x0[None, :], bounds, None, ())[0]
    _, can, cost = geo.flip_costs(x0, box)
    radii = np.unique(cost[can])
    for r in radii:  # linear, not binary: no assumption about monotonicity
        if _exists(view, boxes, x0, label, float(r), bounds):
            return float(r)
    return math.inf


def _exists(
    view: TreeEnsemble,
    boxes: LeafBoxes,
    x0: np.ndarray,
    label: int,
    r: float,
    bounds: tuple[float, float],
) -> bool:
    lo = np.maximum(x0 - r, bounds[0])
    hi = np.minimum(x0 + r, bounds[1])
    per_tree = [np.flatnonzero(boxes.tree == t) for t in range(view.n_trees)]
    scores = boxes.scores
    k = view.n_classes
    # Per tree, the most any leaf can add to each class's lead over the label.
    gain = np.array(
        [(scores[leaves] - scores[leaves][:, [label]]).max(axis=0) for leaves in per_tree]
    )
    suffix = np.vstack([np.cumsum(gain[::-1], axis=0)[::-1], np.zeros((1, k))])
    base = boxes.base - boxes.base[label]

    def dfs(t: int, a: np.ndarray, b: np.ndarray, acc: np.ndarray) -> bool:
        if t == view.n_trees:
            point = np.clip(x0, a, b)
            return int(view.predict(point[None, :])[0]) != label
        # Prune only where no rival can catch up even with every later tree's best leaf.
        lead = base + acc - acc[label] + suffix[t]
        lead[label] = -np.inf
        if lead.max() < -1e-9:
            return False
        for leaf in per_tree[t]:
            na = np.maximum(a, boxes.lower[leaf])
            nb = np.minimum(b, boxes.upper[leaf])
            if np.all(na <= nb) and dfs(t + 1, na, nb, acc + scores[leaf]):
                return True
        return False

    return dfs(0, lo, hi, np.zeros(k))
