"""Stealing a decision tree through its API by path finding (Tramèr et al. 2016).

Tramèr, Zhang, Juels, Reiter & Ristenpart, "Stealing Machine Learning Models via
Prediction APIs", USENIX Security 2016, §4.2: an API that names the *leaf* an input
reaches (BigML returns it; a confidence score distinct per leaf serves the same way)
gives the tree away. A leaf's region is a box, so along any axis-parallel line its
inputs form one interval: walking lines through a known input of every leaf and
bisecting wherever the leaf identity changes finds every split crossing the line and
an input in the leaf behind it. Starting from any input this reaches every leaf (the
line through an input of a node's region along the node's split feature crosses the
node's threshold), and each leaf's box is read off the lines through its input.
The boxes then make a decision tree that answers exactly as the victim on every float
input: thresholds are found to adjacent floating-point values, not to a tolerance.

:func:`extract_tree` returns that tree as a :class:`~advml.models.trees.TreeEnsemble`
(so the tree attacks and the verifier apply to the stolen copy), with the number of
queries it cost.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from advml.models.trees import Tree, TreeEnsemble
from advml.validation import check_number

__all__ = ["TreeExtractionResult", "extract_tree", "sklearn_leaf_oracle"]

_SIGN = 0x7FFFFFFFFFFFFFFF


def _key(v: float) -> int:
    """An integer order-isomorphic to float64 order (adjacent floats: adjacent keys)."""
    i = int(np.array([v], dtype=np.float64).view(np.int64)[0])
    return i if i >= 0 else -(i & _SIGN)


def _unkey(k: int) -> float:
    bits = k if k >= 0 else ((-k) | (1 << 63)) - (1 << 64)
    return float(np.array([bits], dtype=np.int64).view(np.float64)[0])


@dataclass(frozen=True)
class TreeExtractionResult:
    """The stolen tree and what it cost.

    ``tree`` predicts the victim's labels (one-hot leaves); ``boxes_low``/``boxes_high``
    give each leaf's box (inclusive float bounds); ``queries`` counts the inputs sent to
    the identity oracle and ``label_queries`` those sent for the leaves' labels.
    """

    tree: TreeEnsemble
    n_leaves: int
    queries: int
    label_queries: int
    boxes_low: np.ndarray
    boxes_high: np.ndarray
    seconds: float


class _Counter:
    def __init__(self, oracle: Callable[[np.ndarray], np.ndarray]) -> None:
        self.oracle = oracle
        self.count = 0

    def __call__(self, x: np.ndarray) -> list[object]:
        x = np.atleast_2d(x)
        self.count += x.shape[0]
        out = np.asarray(self.oracle(x))
        if out.shape[0] != x.shape[0]:
            raise ValueError(
                f"oracle returned {out.shape[0]} identities for {x.shape[0]} inputs; it must "
                f"return one leaf identity (an int, or a row of scores) per input"
            )
        return [row.tobytes() if out.ndim > 1 else out[i].item() for i, row in enumerate(out)]


def extract_tree(
    oracle: Callable[[np.ndarray], np.ndarray],
    labels: Callable[[np.ndarray], np.ndarray],
    *,
    n_features: int,
    bounds: tuple[float, float] | Sequence[tuple[float, float]],
    n_classes: int,
    start: np.ndarray | None = None,
    max_queries: int = 1_000_000,
) -> TreeExtractionResult:
    """Recover a decision tree from an API that names the leaf of each input.

    Parameters
    ----------
    oracle : callable
        ``oracle(x)`` for ``x`` of shape ``(n, n_features)`` returns one leaf identity
        per row: integers, or rows of scores distinct per leaf.
    labels : callable
        ``labels(x)`` returns the victim's predicted labels (one query per leaf).
    n_features : int
    bounds : (low, high) or a sequence of (low, high) per feature
        Where inputs may lie; the stolen tree is exact inside.
    n_classes : int
    start : array (n_features,), optional
        First query; default the centre of the bounds.
    max_queries : int
        Stop with an error past this many oracle queries.

    Raises
    ------
    ValueError
        On bad settings, or when ``max_queries`` runs out (the API is then not a tree
        over these features, or the identities are not per leaf).
    """
    check_number("n_features", n_features, low=1, integer=True)
    check_number("n_classes", n_classes, low=2, integer=True)
    check_number("max_queries", max_queries, low=1, integer=True)
    b = np.asarray(bounds, dtype=np.float64)
    if b.shape == (2,):
        b = np.tile(b, (n_features, 1))
    if b.shape != (n_features, 2) or not np.all(b[:, 0] <= b[:, 1]):
        raise ValueError(
            f"bounds must be (low, high) or {n_features} (low, high) pairs with low <= high"
        )
    began = time.perf_counter()
    ask = _Counter(oracle)
    x0 = b.mean(axis=1) if start is None else np.asarray(start, dtype=np.float64).copy()
    first = ask(x0)[0]
    samples: dict[object, np.ndarray] = {first: x0}
    low: dict[object, np.ndarray] = {}
    high: dict[object, np.ndarray] = {}
    queue = [first]
    while queue:
        leaf = queue.pop()
        x = samples[leaf]
        lo_box = np.empty(n_features)
        hi_box = np.empty(n_features)
        for j in range(n_features):
            # The line through x along feature j: its leaves in order, each an interval.
            cuts = _sweep(ask, x, j, b[j, 0], b[j, 1], max_queries)
            for point_value, ident in cuts.found:
                if ident not in samples:
                    p = x.copy()
                    p[j] = point_value
                    samples[ident] = p
                    queue.append(ident)
            lo_box[j], hi_box[j] = cuts.interval_of(x[j])
        low[leaf], high[leaf] = lo_box, hi_box
    idents = list(low)
    boxes_low = np.stack([low[i] for i in idents])
    boxes_high = np.stack([high[i] for i in idents])
    label_of = np.asarray(labels(np.stack([samples[i] for i in idents]))).astype(np.int64)
    tree = _tree_from_boxes(boxes_low, boxes_high, label_of, n_classes)
    view = TreeEnsemble(
        trees=(tree,),
        base=np.zeros(n_classes),
        combine="average",
        rule="le",
        n_features=n_features,
        n_classes=n_classes,
        source="decision tree extracted by path finding",
    )
    return TreeExtractionResult(
        tree=view,
        n_leaves=len(idents),
        queries=ask.count,
        label_queries=len(idents),
        boxes_low=boxes_low,
        boxes_high=boxes_high,
        seconds=time.perf_counter() - began,
    )


class _Line:
    """Leaves along one line: sorted ``(first_key, last_key, identity)`` intervals."""

    def __init__(self) -> None:
        self.intervals: list[tuple[int, int, object]] = []
        self.found: list[tuple[float, object]] = []

    def interval_of(self, value: float) -> tuple[float, float]:
        k = _key(value)
        for a, z, _ in self.intervals:
            if a <= k <= z:
                return _unkey(a), _unkey(z)
        raise AssertionError("the sample lies on its own line")


def _sweep(
    ask: _Counter, x: np.ndarray, j: int, low: float, high: float, max_queries: int
) -> _Line:
    """Every leaf change along feature ``j`` through ``x``, to adjacent floats."""
    line = _Line()

    def at(k: int) -> object:
        if ask.count >= max_queries:
            raise ValueError(
                f"max_queries={max_queries} spent before the tree was recovered; the API "
                f"may not be a single tree with per-leaf identities"
            )
        p = x.copy()
        p[j] = _unkey(k)
        return ask(p)[0]

    ka, kz = _key(low), _key(high)
    ends = {ka: at(ka)}
    if kz != ka:
        ends[kz] = at(kz)
    # Segments [a, z] whose ends differ hold a boundary; a leaf is convex, so equal
    # ends mean one leaf throughout.
    stack = [(ka, kz)]
    pieces: list[tuple[int, int, object]] = []
    while stack:
        a, z = stack.pop()
        if ends[a] == ends[z]:
            pieces.append((a, z, ends[a]))
            continue
        if z - a == 1:
            pieces.append((a, a, ends[a]))
            pieces.append((z, z, ends[z]))
            continue
        m = (a + z) // 2
        ends[m] = at(m)
        stack += [(a, m), (m, z)]
    pieces.sort(key=lambda t: t[0])
    merged: list[tuple[int, int, object]] = []
    for a, z, ident in pieces:
        if merged and merged[-1][2] == ident and merged[-1][1] >= a - 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], z), ident)
        else:
            merged.append((a, z, ident))
    line.intervals = merged
    line.found = [(_unkey(a), ident) for a, _, ident in merged]
    return line


def _tree_from_boxes(low: np.ndarray, high: np.ndarray, label: np.ndarray, n_classes: int) -> Tree:
    """A decision tree whose leaves are these boxes (they tile the bounds).

    Recursively split on an upper edge that no box straddles; one always exists, the
    victim's own split at that node.
    """
    feature: list[int] = []
    threshold: list[float] = []
    left: list[int] = []
    right: list[int] = []
    value: list[np.ndarray] = []

    def build(idx: np.ndarray) -> int:
        node = len(feature)
        feature.append(-1)
        threshold.append(0.0)
        left.append(-1)
        right.append(-1)
        value.append(np.zeros(n_classes))
        if idx.shape[0] == 1:
            value[node][label[idx[0]]] = 1.0
            return node
        for j in range(low.shape[1]):
            for t in np.unique(high[idx, j]):
                go_left = high[idx, j] <= t
                go_right = low[idx, j] > t
                if np.all(go_left | go_right) and go_left.any() and go_right.any():
                    feature[node], threshold[node] = j, float(t)
                    left[node] = build(idx[go_left])
                    right[node] = build(idx[go_right])
                    return node
        raise ValueError("the recovered leaf boxes do not form a tree (identities not per leaf?)")

    build(np.arange(low.shape[0]))
    return Tree(
        feature=np.asarray(feature, dtype=np.int64),
        threshold=np.asarray(threshold, dtype=np.float64),
        left=np.asarray(left, dtype=np.int64),
        right=np.asarray(right, dtype=np.int64),
        value=np.stack(value),
    )


def sklearn_leaf_oracle(estimator: object) -> Callable[[np.ndarray], np.ndarray]:
    """The leaf-identity API of a fitted scikit-learn decision tree (``apply``)."""
    apply = getattr(estimator, "apply", None)
    if not callable(apply):
        raise TypeError(f"{type(estimator).__name__} has no apply(); pass a fitted decision tree")
    return lambda x: np.asarray(apply(x))
