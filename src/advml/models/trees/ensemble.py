"""One representation of decision trees and tree ensembles.

Every tree model advml attacks (scikit-learn trees, forests and boosting, XGBoost and
LightGBM boosters) is read into a :class:`TreeEnsemble`: per tree the split feature,
threshold and children of each node and the value vector of each leaf, plus how the
leaves combine into class scores. The exact attack, the fast attack, the verifier and
the report all work on this one view.

Splits. Each library compares differently, and an exact attack must get it right to the
last bit, so the view keeps the library's own rule (:attr:`TreeEnsemble.rule`):

* ``"lt32"`` (XGBoost): left iff ``float32(x) < float32(t)``;
* ``"le32"`` (scikit-learn trees and forests, which cast inputs to float32): left iff
  ``float32(x) <= t`` with a float64 ``t``;
* ``"le"`` (LightGBM, HistGradientBoosting): left iff ``x <= t`` in float64.

For the attacks each split is also given as a pair ``(left_max, right_min)``: the
largest float64 value that goes left and the smallest that goes right, both exactly
representable on the library's grid, so that an attacker who sets a feature to one of
them knows where it goes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

__all__ = ["Combine", "Rule", "Tree", "TreeEnsemble", "split_points"]

Rule = Literal["lt32", "le32", "le"]
Combine = Literal["sigmoid", "softmax", "average"]


@dataclass(frozen=True)
class Tree:
    """One binary tree; node 0 is the root.

    Attributes
    ----------
    feature : int array (n_nodes,)
        Split feature of each internal node, ``-1`` at leaves.
    threshold : float64 array (n_nodes,)
        Split threshold as the library stores it (meaningless at leaves).
    left, right : int array (n_nodes,)
        Children of each internal node, ``-1`` at leaves.
    value : float64 array (n_nodes, n_outputs)
        What each leaf adds to the ensemble's raw scores (zero rows at internal nodes).
    """

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray

    @property
    def n_nodes(self) -> int:
        return int(self.feature.shape[0])

    @property
    def is_leaf(self) -> np.ndarray:
        return self.feature < 0

    @property
    def leaves(self) -> np.ndarray:
        return np.flatnonzero(self.feature < 0)

    def depth(self) -> int:
        """Longest root-to-leaf path, in splits."""
        deepest, stack = 0, [(0, 0)]
        while stack:
            node, d = stack.pop()
            if self.feature[node] < 0:
                deepest = max(deepest, d)
            else:
                stack += [(int(self.left[node]), d + 1), (int(self.right[node]), d + 1)]
        return deepest


def split_points(threshold: np.ndarray, rule: Rule) -> tuple[np.ndarray, np.ndarray]:
    """``(left_max, right_min)`` of each threshold under ``rule`` (see the module doc)."""
    t = np.asarray(threshold, dtype=np.float64)
    if rule == "lt32":
        t32 = t.astype(np.float32)
        right = t32.astype(np.float64)
        left = np.nextafter(t32, np.float32(-np.inf)).astype(np.float64)
    elif rule == "le32":
        # float32(x) <= t: the largest float32 not above t goes left, the next one right.
        f = t.astype(np.float32)
        f = np.where(f.astype(np.float64) > t, np.nextafter(f, np.float32(-np.inf)), f)
        left = f.astype(np.float64)
        right = np.nextafter(f, np.float32(np.inf)).astype(np.float64)
    else:
        left = t
        right = np.nextafter(t, np.inf)
    return left, right


@dataclass(frozen=True)
class TreeEnsemble:
    """Trees, and how their leaves make class scores.

    ``raw(x) = base + (sum over trees of value[leaf reached by x]) / divisor`` (one
    column per output, the trees added one by one in order, as the libraries do).
    ``combine`` says what the raw scores are:

    * ``"sigmoid"``: one column, the binary margin; P(class 1) = sigmoid(scale * raw),
      class 1 iff raw > 0;
    * ``"softmax"``: one column per class (margins), probabilities by softmax;
    * ``"average"``: one column per class, already the averaged probabilities (the leaf
      values of a forest are each tree's class probabilities, ``divisor`` the number of
      trees).

    Labels are ``argmax`` of the class scores with ties to the lowest class, as every
    library here does.

    Attributes
    ----------
    trees : tuple of Tree
    base : float64 array (n_outputs,)
    combine : {"sigmoid", "softmax", "average"}
    rule : {"lt32", "le32", "le"}
        How a split compares (module doc).
    n_features : int
    n_classes : int
    source : str
        The library and class the view was read from, for reports.
    scale : float
        Sigmoid slope of binary boosting (LightGBM's ``sigmoid``; 1 elsewhere).
    divisor : float
        The sum of leaf values is divided by it: the number of trees of a forest, 1 for
        boosting. Kept apart from the leaf values so that sums round as the library's do.
    """

    trees: tuple[Tree, ...]
    base: np.ndarray
    combine: Combine
    rule: Rule
    n_features: int
    n_classes: int
    source: str = ""
    scale: float = 1.0
    divisor: float = 1.0
    _flat: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.trees:
            raise ValueError("a tree ensemble needs at least one tree")
        width = 1 if self.combine == "sigmoid" else self.n_classes
        for i, tree in enumerate(self.trees):
            if tree.value.shape != (tree.n_nodes, width):
                raise ValueError(
                    f"tree {i} has leaf values of shape {tree.value.shape}, expected "
                    f"({tree.n_nodes}, {width})"
                )
            used = tree.feature[tree.feature >= 0]
            if used.size and int(used.max()) >= self.n_features:
                raise ValueError(
                    f"tree {i} splits on feature {int(used.max())} but the model has "
                    f"{self.n_features} features"
                )
        # All trees in one node table: prediction walks every tree at once.
        offsets = np.cumsum([0] + [t.n_nodes for t in self.trees])
        feature = np.concatenate([t.feature for t in self.trees]).astype(np.int64)
        leaf = feature < 0
        shift = np.repeat(offsets[:-1], [t.n_nodes for t in self.trees])
        left = np.where(leaf, -1, np.concatenate([t.left for t in self.trees]) + shift)
        right = np.where(leaf, -1, np.concatenate([t.right for t in self.trees]) + shift)
        threshold = np.concatenate([t.threshold for t in self.trees]).astype(np.float64)
        lo, hi = split_points(np.where(leaf, 0.0, threshold), self.rule)
        self._flat.update(
            roots=offsets[:-1].astype(np.int64),
            feature=feature,
            threshold=threshold,
            threshold32=threshold.astype(np.float32),
            left=left.astype(np.int64),
            right=right.astype(np.int64),
            value=np.concatenate([t.value for t in self.trees]).astype(np.float64),
            left_max=lo,
            right_min=hi,
        )

    # -- shape -------------------------------------------------------------------------
    @property
    def n_trees(self) -> int:
        return len(self.trees)

    @property
    def n_outputs(self) -> int:
        return 1 if self.combine == "sigmoid" else self.n_classes

    def max_depth(self) -> int:
        return max(t.depth() for t in self.trees)

    def feature_splits(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Per feature used in a split: sorted distinct ``(left_max, right_min)`` pairs."""
        f = self._flat
        inner = f["feature"] >= 0
        out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for j in np.unique(f["feature"][inner]):
            sel = inner & (f["feature"] == j)
            lo, idx = np.unique(f["left_max"][sel], return_index=True)
            out[int(j)] = (lo, f["right_min"][sel][idx])
        return out

    def describe(self) -> str:
        kind = {"sigmoid": "binary boosting", "softmax": "boosting", "average": "forest"}
        return (
            f"{self.source or 'tree ensemble'}: {self.n_trees} tree(s) of depth <= "
            f"{self.max_depth()}, {self.n_classes} classes, {self.n_features} features "
            f"({kind[self.combine]})"
        )

    # -- evaluation --------------------------------------------------------------------
    def goes_left(self, values: np.ndarray, nodes: np.ndarray) -> np.ndarray:
        """The library's own comparison of feature ``values`` at ``nodes``."""
        f = self._flat
        if self.rule == "lt32":
            return values.astype(np.float32) < f["threshold32"][nodes]
        if self.rule == "le32":
            return values.astype(np.float32).astype(np.float64) <= f["threshold"][nodes]
        return values <= f["threshold"][nodes]

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Global index (into the concatenated node table) of the leaf of each tree.

        Returns an int array of shape ``(n, n_trees)``.
        """
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        if x.shape[1] != self.n_features:
            raise ValueError(f"x has {x.shape[1]} features, the trees expect {self.n_features}")
        f = self._flat
        node = np.broadcast_to(f["roots"], (x.shape[0], self.n_trees)).copy()
        rows = np.arange(x.shape[0])[:, None]
        while True:
            feat = f["feature"][node]
            inner = feat >= 0
            if not inner.any():
                return node
            values = x[rows, np.maximum(feat, 0)]
            left = self.goes_left(values, node)
            nxt = np.where(left, f["left"][node], f["right"][node])
            node = np.where(inner, nxt, node)

    def raw(self, x: np.ndarray) -> np.ndarray:
        """Raw scores ``(n, n_outputs)``: margins, or averaged probabilities for forests."""
        leaves = self.apply(x)
        values = self._flat["value"]
        total = values[leaves[:, 0]].copy()
        for t in range(1, self.n_trees):
            total += values[leaves[:, t]]
        if self.divisor != 1.0:
            total /= self.divisor
        return self.base + total

    def class_scores(self, x: np.ndarray) -> np.ndarray:
        """Scores ``(n, n_classes)`` whose argmax is the label (binary: ``[0, margin]``)."""
        return self.scores_from_raw(self.raw(x))

    def scores_from_raw(self, raw: np.ndarray) -> np.ndarray:
        if self.combine == "sigmoid":
            return np.concatenate([np.zeros_like(raw), raw], axis=1)
        return raw

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, n_classes)`` as the library computes them."""
        raw = self.raw(x)
        if self.combine == "sigmoid":
            p = 1.0 / (1.0 + np.exp(-self.scale * raw[:, 0]))
            return np.stack([1.0 - p, p], axis=1)
        if self.combine == "softmax":
            z = np.exp(raw - raw.max(axis=1, keepdims=True))
            return z / z.sum(axis=1, keepdims=True)
        return raw

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Labels ``(n,)``: argmax of the class scores, ties to the lowest class."""
        return np.argmax(self.class_scores(x), axis=1)

    # -- per-tree access for the attacks -------------------------------------------------
    @property
    def flat(self) -> dict[str, np.ndarray]:
        """The concatenated node table (read-only arrays; see :meth:`apply`)."""
        return self._flat
