"""The geometry the tree attacks and the verifier share, and the exact MILP.

A tree ensemble cuts each feature at its split points; inside one cell of every
feature the ensemble is constant. An input's predicates ("feature j is at most
``left_max`` of split q") decide every tree's leaf, so the smallest adversarial
perturbation is a choice of predicates whose leaves give another label, at the least
distance. Kantchelian, Tygar & Joseph ("Evasion and Hardening of Tree Ensemble
Classifiers", ICML 2016) write that choice as a mixed-integer linear program:
binary predicate variables, continuous leaf variables (one leaf per tree, consistent
with the predicates) and a distance variable. :func:`solve_exact` builds and solves it
with HiGHS through :func:`scipy.optimize.milp`.

Distances are measured to the points an attacker can actually set: the split's
``left_max`` or ``right_min`` on the library's float grid (see
:mod:`advml.models.trees.ensemble`), rounded to integers for integer features.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from advml.models.trees.ensemble import Rule, TreeEnsemble, split_points

__all__ = [
    "Geometry",
    "InputBox",
    "MilpOutcome",
    "TreeNorm",
    "solve_exact",
]

TreeNorm = Literal["inf", "1"]


@dataclass(frozen=True)
class InputBox:
    """What the attacker may do to one input's features.

    ``low``/``high`` are the per-feature limits (model bounds, ranges and immutable
    features already applied: an immutable feature has ``low == high == x``);
    ``integer`` marks integer features; ``switch_on`` lists binary features that may
    only jump from ``x`` to ``high``.
    """

    low: np.ndarray
    high: np.ndarray
    integer: np.ndarray
    switch_on: tuple[int, ...] = ()


class Geometry:
    """Split points, predicates and leaves of an ensemble, built once per ensemble.

    Attributes
    ----------
    pred_feature, pred_lo, pred_hi : arrays (P,)
        Feature and ``(left_max, right_min)`` of each distinct predicate, sorted by
        feature, then threshold.
    node_pred : int array (n_nodes,)
        The predicate of each internal node (``-1`` at leaves).
    leaves : int array (L,)
        Global node index of every leaf; ``leaf_tree`` its tree.
    """

    def __init__(self, view: TreeEnsemble, *, float32: bool = True) -> None:
        self.view = view
        f = view.flat
        n_nodes = f["feature"].shape[0]
        inner = np.flatnonzero(f["feature"] >= 0)
        # advml hands models float32 inputs: a float64 rule then acts on the float32 grid.
        rule: Rule = "le32" if (float32 and view.rule == "le") else view.rule
        node_lo, node_hi = split_points(f["threshold"][inner], rule)
        node_feat = f["feature"][inner]
        pairs = np.unique(np.stack([node_feat.astype(np.float64), node_lo], axis=1), axis=0)
        self.pred_feature = pairs[:, 0].astype(np.int64)
        self.pred_lo = pairs[:, 1].copy()
        self.pred_hi = np.zeros_like(self.pred_lo)
        self.node_pred = np.full(n_nodes, -1, dtype=np.int64)
        if inner.size:
            key = {(int(j), float(lo)): q for q, (j, lo) in enumerate(pairs.tolist())}
            for i, node in enumerate(inner):
                q = key[(int(node_feat[i]), float(node_lo[i]))]
                self.node_pred[node] = q
                self.pred_hi[q] = node_hi[i]
        self.leaves = np.flatnonzero(f["feature"] < 0)
        leaf_pos = np.full(n_nodes, -1, dtype=np.int64)
        leaf_pos[self.leaves] = np.arange(self.leaves.shape[0])
        tree_of = np.repeat(np.arange(view.n_trees), [t.n_nodes for t in view.trees])
        self.leaf_tree = tree_of[self.leaves]
        # Leaves under the left and right child of each internal node, as sparse rows.
        rows_l: list[int] = []
        cols_l: list[int] = []
        rows_r: list[int] = []
        cols_r: list[int] = []
        self.inner = inner
        for row, node in enumerate(inner):
            for child, rows, cols in (
                (f["left"][node], rows_l, cols_l),
                (f["right"][node], rows_r, cols_r),
            ):
                stack = [int(child)]
                while stack:
                    c = stack.pop()
                    if f["feature"][c] < 0:
                        rows.append(row)
                        cols.append(int(leaf_pos[c]))
                    else:
                        stack += [int(f["left"][c]), int(f["right"][c])]
        shape = (inner.shape[0], self.leaves.shape[0])
        ones_l = np.ones(len(rows_l))
        ones_r = np.ones(len(rows_r))
        self.sub_left = sparse.csr_matrix((ones_l, (rows_l, cols_l)), shape=shape)
        self.sub_right = sparse.csr_matrix((ones_r, (rows_r, cols_r)), shape=shape)
        # Class score of each leaf, as the argmax sees it (binary boosting: [0, margin]).
        values = f["value"][self.leaves] / view.divisor
        self.leaf_scores = view.scores_from_raw(values) if view.combine == "sigmoid" else values
        self.base_scores = view.scores_from_raw(view.base[None, :])[0]

    @property
    def n_preds(self) -> int:
        return int(self.pred_feature.shape[0])

    # -- one input -------------------------------------------------------------------
    def sides(self, x0: np.ndarray) -> np.ndarray:
        """Per predicate: does ``x0`` go left (the library's own comparison)?"""
        if not self.n_preds:
            return np.zeros(0, dtype=bool)
        # Any node of the predicate decides it: pick the first.
        first = np.full(self.n_preds, -1, dtype=np.int64)
        nodes = self.inner
        first[self.node_pred[nodes][::-1]] = nodes[::-1]
        return self.view.goes_left(x0[self.pred_feature], first)

    def split_values(self, box: InputBox) -> tuple[np.ndarray, np.ndarray]:
        """``(left_max, right_min)`` per predicate, rounded inward for integer features."""
        lo, hi = self.pred_lo.copy(), self.pred_hi.copy()
        whole = box.integer[self.pred_feature]
        lo[whole] = np.floor(lo[whole])
        hi[whole] = np.ceil(hi[whole])
        return lo, hi

    def flip_costs(
        self, x0: np.ndarray, box: InputBox
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per predicate: the current side, whether it can flip, and the cost of flipping.

        The cost is the distance from ``x0`` to the nearest value on the other side.
        """
        left = self.sides(x0)
        lo, hi = self.split_values(box)
        xj = x0[self.pred_feature]
        a = box.low[self.pred_feature]
        b = box.high[self.pred_feature]
        cost = np.where(left, hi - xj, xj - lo)
        can = np.where(left, b >= hi, a <= lo)
        if box.switch_on:
            sw = np.isin(self.pred_feature, box.switch_on)
            # A switch-on feature reaches only its "on" value: flips cost the full jump.
            cost = np.where(sw, b - xj, cost)
            can &= ~sw | left
        return left, can, np.maximum(cost, 0.0)

    def point(self, x0: np.ndarray, box: InputBox, left: np.ndarray) -> np.ndarray:
        """The input nearest ``x0`` whose predicates take the values ``left``."""
        x = x0.astype(np.float64).copy()
        lo, hi = self.split_values(box)
        for j in np.unique(self.pred_feature):
            sel = self.pred_feature == j
            upper = lo[sel][left[sel]].min(initial=np.inf)
            lower = hi[sel][~left[sel]].max(initial=-np.inf)
            if j in box.switch_on:
                if x[j] > upper or x[j] < lower:
                    x[j] = box.high[j]
                continue
            if x[j] > upper:
                x[j] = upper
            elif x[j] < lower:
                x[j] = lower
        return x


def _norm(delta: np.ndarray, norm: TreeNorm) -> float:
    return float(np.abs(delta).max(initial=0.0) if norm == "inf" else np.abs(delta).sum())


@dataclass(frozen=True)
class MilpOutcome:
    """The exact attack's answer for one input.

    ``x_adv`` is None when no adversarial input exists (within ``cap``) or none was
    found in the time; ``radius`` is its distance (``inf`` without one); ``lower``
    a proven lower bound on the smallest adversarial distance; ``optimal`` whether
    ``radius`` is proven minimal (or, without ``x_adv``, proven infeasible).
    """

    x_adv: np.ndarray | None
    radius: float
    lower: float
    optimal: bool
    seconds: float


def _score_row(geo: Geometry, win: int, lose: int) -> tuple[np.ndarray, float]:
    """Leaf coefficients and constant of ``score[win] - score[lose]``."""
    coef = geo.leaf_scores[:, win] - geo.leaf_scores[:, lose]
    return coef, float(geo.base_scores[win] - geo.base_scores[lose])


def solve_exact(
    geo: Geometry,
    x0: np.ndarray,
    label: int,
    box: InputBox,
    *,
    targeted: bool = False,
    norm: TreeNorm = "inf",
    time_limit: float = 10.0,
    cap: float = math.inf,
    margin: float = 1e-5,
    incumbent: tuple[np.ndarray, float] | None = None,
) -> MilpOutcome:
    """Smallest perturbation of ``x0`` that changes the label (Kantchelian et al. 2016).

    Parameters
    ----------
    geo : Geometry
    x0 : float64 array (n_features,)
    label : int
        The label to move away from (untargeted) or towards (targeted).
    box : InputBox
    targeted : bool
    norm : {"inf", "1"}
    time_limit : float
        Seconds for all the MILPs of this input together; past it the best input found
        is returned with ``optimal=False`` and the solver's proven lower bound.
    cap : float
        Only perturbations of at most this size are of interest (an attack's ``eps``):
        the solver stops as soon as it proves there is none.
    incumbent : (x_adv, distance), optional
        An adversarial input already known (checked by the caller); the answer is at
        least as good, and proven optimal when the solver proves nothing is smaller.
    margin : float
        How far past a tie the winning score must be, relative to the largest leaf
        difference (ties go to the lower class, as in the libraries' argmax; a solution
        the view does not confirm is solved again with a 100 times larger margin).
    """
    start = time.perf_counter()
    view = geo.view
    k = view.n_classes
    scores = view.class_scores(x0[None, :])[0]
    current = int(np.argmax(scores))
    if (current == label) == targeted:
        return MilpOutcome(x0.copy(), 0.0, 0.0, True, time.perf_counter() - start)
    left, can, cost = geo.flip_costs(x0, box)
    goals: list[list[tuple[int, int]]]
    if targeted:
        goals = [[(label, j) for j in range(k) if j != label]]
    else:
        # Rivals closest in score first: their answer bounds the others' search.
        rivals = sorted((c for c in range(k) if c != label), key=lambda c: -scores[c])
        goals = [[(c, label)] for c in rivals]
    best, best_x = cap, None
    if incumbent is not None and incumbent[1] <= cap:
        # A known adversarial input (the fast attack's) cuts every program off at its
        # distance from the start; the solver then only has to improve on it or prove it.
        best_x, best = incumbent[0], incumbent[1]
    lowers: list[float] = []
    proven = True
    for goal in goals:
        remaining = time_limit - (time.perf_counter() - start)
        if remaining <= 0:
            proven = False
            lowers.append(0.0)
            continue
        need = margin
        for _attempt in range(3):
            out = _solve_one(geo, x0, box, left, can, cost, goal, norm, remaining, best, need)
            status, fun, lower, solution = out
            if solution is None:
                break
            x = geo.point(x0, box, solution)
            pred = int(view.predict(x[None, :])[0])
            if (pred == label) == targeted:
                d = _norm(x - x0, norm)
                if norm == "inf":
                    x, d = _polish(geo, x0, box, left, can, cost, goal, x, d, label, targeted, need)
                if d <= best * (1 + 1e-12):  # the MILP kept d <= best; rounding aside
                    best, best_x = min(best, d), x
                break
            # A tie or float rounding the solver's tolerance let through: ask for a
            # clearer win (this goal's answer is then a bound for a slightly harder goal).
            need = need * 100
            remaining = time_limit - (time.perf_counter() - start)
            if remaining <= 0:
                status = "limit"
                lower = 0.0
                break
        if status == "optimal":
            lowers.append(fun)
        elif status == "infeasible":
            lowers.append(best)
        else:
            proven = False
            lowers.append(lower)
    lower = min([*lowers, best])
    radius = _norm(best_x - x0, norm) if best_x is not None else math.inf
    if best_x is None and proven:
        lower = cap
    return MilpOutcome(best_x, radius, float(lower), proven, time.perf_counter() - start)


def _polish(
    geo: Geometry,
    x0: np.ndarray,
    box: InputBox,
    left: np.ndarray,
    can: np.ndarray,
    cost: np.ndarray,
    goal: list[tuple[int, int]],
    x: np.ndarray,
    d: float,
    label: int,
    targeted: bool,
    margin: float,
) -> tuple[np.ndarray, float]:
    """Try the split distances just below ``d`` that the solver's tolerance cannot tell
    apart from it (two float32 differences a float64 step apart): each is one more
    feasibility solve with that distance as the cap. Returns the smallest confirmed."""
    for _ in range(3):
        band = cost[can & (cost < d) & (cost >= d * (1 - 1e-6))]
        if band.size == 0:
            break
        _, _, _, solution = _solve_one(
            geo, x0, box, left, can, cost, goal, "inf", 1.0, float(band.max()), margin
        )
        if solution is None:
            break
        cand = geo.point(x0, box, solution)
        pred = int(geo.view.predict(cand[None, :])[0])
        dc = _norm(cand - x0, "inf")
        if (pred == label) != targeted or dc >= d:
            break
        x, d = cand, dc
    return x, d


def _solve_one(
    geo: Geometry,
    x0: np.ndarray,
    box: InputBox,
    left: np.ndarray,
    can: np.ndarray,
    cost: np.ndarray,
    goal: list[tuple[int, int]],
    norm: TreeNorm,
    time_limit: float,
    cutoff: float,
    margin: float,
) -> tuple[str, float, float, np.ndarray | None]:
    """One MILP: predicates, leaves and distance for one set of score inequalities."""
    # Distances are scaled up so that the solver's absolute tolerances (gap ~1e-6,
    # feasibility ~1e-7) are far below one float32 step of a feature (~1e-9 at 0.03):
    # unscaled, two cells a float step apart would tie and either might be returned.
    top = float(cost[can].max(initial=0.0))
    unit = 1e4 / top if top > 0 else 1.0
    cost = cost * unit
    cutoff = cutoff * unit
    p, n_leaves = geo.n_preds, geo.leaves.shape[0]
    feats = np.unique(geo.pred_feature)
    n_dist = 1 if norm == "inf" else feats.shape[0]
    dist_of = (
        np.zeros(p, dtype=np.int64) if norm == "inf" else np.searchsorted(feats, geo.pred_feature)
    )
    n_var = p + n_leaves + n_dist
    blocks: list[sparse.spmatrix] = []
    lb: list[np.ndarray] = []
    ub: list[np.ndarray] = []

    def add(matrix: sparse.spmatrix, low: np.ndarray, high: np.ndarray) -> None:
        blocks.append(sparse.csr_matrix(matrix))
        lb.append(low)
        ub.append(high)

    # 1. Predicates of one feature are nested: x <= lo_q implies x <= lo_{q+1}.
    same = np.flatnonzero(geo.pred_feature[:-1] == geo.pred_feature[1:])
    if same.size:
        m = sparse.coo_matrix(
            (
                np.r_[np.ones(same.size), -np.ones(same.size)],
                (np.r_[np.arange(same.size), np.arange(same.size)], np.r_[same, same + 1]),
            ),
            shape=(same.size, n_var),
        )
        add(m, np.full(same.size, -np.inf), np.zeros(same.size))
    # 2. One leaf per tree.
    n_trees = geo.view.n_trees
    m = sparse.coo_matrix(
        (np.ones(n_leaves), (geo.leaf_tree, p + np.arange(n_leaves))), shape=(n_trees, n_var)
    )
    add(m, np.ones(n_trees), np.ones(n_trees))
    # 3. The leaf lies on the side of each split its predicate says (Kantchelian eq. 4).
    n_in = geo.inner.shape[0]
    pred_cols = sparse.coo_matrix(
        (np.ones(n_in), (np.arange(n_in), geo.node_pred[geo.inner])), shape=(n_in, p)
    )
    zeros_d = sparse.csr_matrix((n_in, n_dist))
    add(sparse.hstack([-pred_cols, geo.sub_left, zeros_d]), np.full(n_in, -np.inf), np.zeros(n_in))
    add(sparse.hstack([pred_cols, geo.sub_right, zeros_d]), np.full(n_in, -np.inf), np.ones(n_in))
    # 4. Distance: flipping predicate q costs cost[q] (left now: flip when p -> 0).
    flip = np.flatnonzero(can & (cost > 0))
    if flip.size:
        sign = np.where(left[flip], 1.0, -1.0)
        m = sparse.coo_matrix(
            (
                np.r_[sign * cost[flip], np.ones(flip.size)],
                (
                    np.r_[np.arange(flip.size), np.arange(flip.size)],
                    np.r_[flip, p + n_leaves + dist_of[flip]],
                ),
            ),
            shape=(flip.size, n_var),
        )
        add(m, np.where(left[flip], cost[flip], 0.0), np.full(flip.size, np.inf))
    # Switch-on features flip all their predicates together (one jump to "on").
    for j in box.switch_on:
        qs = np.flatnonzero((geo.pred_feature == j) & can & left)
        if qs.size > 1:
            r = qs.size - 1
            m = sparse.coo_matrix(
                (
                    np.r_[np.ones(r), -np.ones(r)],
                    (np.r_[np.arange(r), np.arange(r)], np.r_[qs[:-1], qs[1:]]),
                ),
                shape=(r, n_var),
            )
            add(m, np.zeros(r), np.zeros(r))
    # 5. The goal: score[win] - score[lose] past the tie (ties go to the lower class).
    for win, lose in goal:
        coef, const = _score_row(geo, win, lose)
        # Normalised to a largest coefficient of 1, so that ``margin`` is relative to
        # the leaves' scale and well above the solver's feasibility tolerance (1e-7).
        scale = 1.0 / max(float(np.abs(coef).max(initial=0.0)), 1e-300)
        need = (0.0 if (win < lose and margin <= 1e-5) else margin) - const * scale
        row = sparse.csr_matrix(
            (coef * scale, (np.zeros(n_leaves, dtype=np.int64), p + np.arange(n_leaves))),
            shape=(1, n_var),
        )
        add(row, np.array([need]), np.array([np.inf]))
    # L1 with a cutoff: the total stays below the best found so far.
    if norm == "1" and math.isfinite(cutoff):
        row = sparse.csr_matrix(
            (np.ones(n_dist), (np.zeros(n_dist, dtype=np.int64), p + n_leaves + np.arange(n_dist))),
            shape=(1, n_var),
        )
        add(row, np.array([-np.inf]), np.array([cutoff]))
    a = sparse.vstack(blocks).tocsr()
    # Bounds: a predicate that cannot flip is fixed at its current side.
    low = np.zeros(n_var)
    high = np.ones(n_var)
    fixed = ~can
    low[:p][fixed & left] = 1.0
    high[:p][fixed & ~left] = 0.0
    high[p + n_leaves :] = cutoff if norm == "inf" else np.inf
    c = np.zeros(n_var)
    c[p + n_leaves :] = 1.0
    integrality = np.zeros(n_var)
    integrality[:p] = 1
    res = milp(
        c,
        integrality=integrality,
        bounds=Bounds(low, high),
        constraints=LinearConstraint(a, np.concatenate(lb), np.concatenate(ub)),
        options={"time_limit": max(time_limit, 1e-3), "mip_rel_gap": 0.0},
    )
    solution = None if res.x is None else res.x[:p] > 0.5
    if res.status == 0:
        return "optimal", float(res.fun) / unit, float(res.fun) / unit, solution
    if res.status == 2:
        return "infeasible", math.inf, cutoff / unit, None
    bound = getattr(res, "mip_dual_bound", None)
    lower = float(bound) / unit if bound is not None and np.isfinite(bound) else 0.0
    found = float(res.fun) / unit if res.x is not None else math.inf
    return "limit", found, max(lower, 0.0), solution


# -- the fast search -------------------------------------------------------------------
class _Walker:
    """Class scores of many one-feature changes of one input, tree by tree.

    Changing feature ``j`` moves only the trees that split on ``j``; each candidate is
    walked through those trees alone and the score change added to the current
    scores. That is what makes the fast attack fast on 100-tree ensembles.
    """

    def __init__(self, geo: Geometry) -> None:
        view = geo.view
        f = view.flat
        self.geo = geo
        self.view = view
        tree_of = np.repeat(np.arange(view.n_trees), [t.n_nodes for t in view.trees])
        inner = f["feature"] >= 0
        d = view.n_features
        uses = np.zeros((d, view.n_trees), dtype=bool)
        uses[f["feature"][inner], tree_of[inner]] = True
        self.trees_of = [np.flatnonzero(uses[j]) for j in range(d)]
        # The same lists flat (CSR-like), so that a plan is built without a Python loop.
        self._count = uses.sum(axis=1).astype(np.int64)
        self._start = np.r_[0, np.cumsum(self._count)[:-1]].astype(np.int64)
        self._flat_trees = np.concatenate(self.trees_of) if d else np.zeros(0, np.int64)
        # Per node: the features split on above it. A change of feature j moves an
        # input's leaf in a tree only if j is on its current path: other pairs are skipped.
        n_nodes = f["feature"].shape[0]
        on_path = np.zeros((n_nodes, d), dtype=bool)
        for root in f["roots"]:
            stack = [int(root)]
            while stack:
                node = stack.pop()
                j = f["feature"][node]
                if j >= 0:
                    for child in (int(f["left"][node]), int(f["right"][node])):
                        on_path[child] = on_path[node]
                        on_path[child, j] = True
                        stack.append(child)
        self.on_path = on_path
        self.leaf_scores = (
            view.scores_from_raw(f["value"] / view.divisor)
            if view.combine == "sigmoid"
            else f["value"] / view.divisor
        )
        self.base = view.scores_from_raw(view.base[None, :])[0]

    def leaves(self, x: np.ndarray) -> np.ndarray:
        return self.view.apply(x[None, :])[0]

    def moved(self, x: np.ndarray, leaves: np.ndarray, j: int) -> np.ndarray:
        """The leaves after feature ``j`` of ``x`` changed: only its trees are walked."""
        f = self.view.flat
        trees = self.trees_of[j]
        node = f["roots"][trees]
        while True:
            feat = f["feature"][node]
            inner = feat >= 0
            if not inner.any():
                break
            go = self.view.goes_left(x[np.maximum(feat, 0)], node)
            node = np.where(inner, np.where(go, f["left"][node], f["right"][node]), node)
        out = leaves.copy()
        out[trees] = node
        return out

    def scores(self, leaves: np.ndarray) -> np.ndarray:
        return self.base + self.leaf_scores[leaves].sum(axis=0)

    def plan(self, feats: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, ...]:
        """The (candidate, tree) pairs of a set of one-feature moves, built once."""
        counts = self._count[feats]
        cand = np.repeat(np.arange(feats.shape[0]), counts)
        offset = np.arange(cand.shape[0]) - np.repeat(np.cumsum(counts) - counts, counts)
        trees = self._flat_trees[self._start[feats][cand] + offset]
        size = np.array([feats.shape[0]], dtype=np.int64)
        return cand, trees, feats[cand], values[cand], size

    def try_moves(
        self, x: np.ndarray, leaves: np.ndarray, scores: np.ndarray, plan: tuple[np.ndarray, ...]
    ) -> np.ndarray:
        """Scores ``(m, n_classes)`` of ``x`` with each planned move made alone."""
        cand, trees, cj, cv, size = plan
        m = int(size[0])
        f = self.view.flat
        keep = self.on_path[leaves[trees], cj]
        cand, trees, cj, cv = cand[keep], trees[keep], cj[keep], cv[keep]
        node = f["roots"][trees]
        while True:
            feat = f["feature"][node]
            inner = feat >= 0
            if not inner.any():
                break
            vals = np.where(feat == cj, cv, x[np.maximum(feat, 0)])
            go = self.view.goes_left(vals, node)
            node = np.where(inner, np.where(go, f["left"][node], f["right"][node]), node)
        delta = self.leaf_scores[node] - self.leaf_scores[leaves[trees]]
        out = np.empty((int(m), scores.shape[0]))
        for c in range(scores.shape[0]):
            out[:, c] = np.bincount(cand, weights=delta[:, c], minlength=int(m))
        return scores + out


def _objective(scores: np.ndarray, label: int, targeted: bool) -> np.ndarray:
    """Below zero once the goal is reached (ties to the lower class, as argmax)."""
    scores = np.atleast_2d(scores)
    k = scores.shape[1]
    # A tiny tilt towards lower classes reproduces argmax's tie-breaking.
    tilted = scores - 1e-12 * np.arange(k)
    own = tilted[:, label].copy()
    tilted[:, label] = -np.inf
    other = tilted.max(axis=1)
    return other - own if targeted else own - other


def solve_fast(
    geo: Geometry,
    walker: _Walker,
    x0: np.ndarray,
    label: int,
    box: InputBox,
    *,
    targeted: bool = False,
    norm: TreeNorm = "inf",
    cap: float = math.inf,
    refine: int = 8,
) -> tuple[np.ndarray | None, float]:
    """A small adversarial perturbation by greedy search over split thresholds.

    Grow the radius step by step: move to the best single-feature change within the
    radius (to a split's other side); when none helps, widen the radius to the cheapest
    change that helps. Then shrink: binary search over the smaller split distances,
    greedily within each box (the search over split thresholds of Zhang, Chen & Hsieh,
    "An Efficient Adversarial Attack for Tree Ensembles", NeurIPS 2020, in its simplest
    form). Returns ``(x_adv or None, distance)``.
    """
    left, can, cost = geo.flip_costs(x0, box)
    lo, hi = geo.split_values(box)
    moves = np.flatnonzero(can & (cost <= cap))
    feats = geo.pred_feature[moves]
    values = np.where(left[moves], hi[moves], lo[moves])
    if box.switch_on:
        sw = np.isin(feats, box.switch_on)
        values = np.where(sw, box.high[feats], values)
    costs = cost[moves]

    plan_all = walker.plan(feats, values)

    def greedy(radius: float, grow: bool) -> np.ndarray | None:
        x = x0.copy()
        if grow or norm == "1":
            sel = np.arange(feats.shape[0])
            plan = plan_all
        else:
            # Within a fixed L-inf box only the moves inside it are ever allowed.
            sel = np.flatnonzero(costs <= radius)
            plan = walker.plan(feats[sel], values[sel])
        m_feats, m_values, m_costs = feats[sel], values[sel], costs[sel]
        leaves = walker.leaves(x)
        scores = walker.scores(leaves)
        obj = float(_objective(scores, label, targeted)[0])
        r = radius
        for _ in range(4 * max(1, m_feats.shape[0])):
            if obj < 0:
                return x
            # Moves from the current x (a feature already moved may move again).
            allowed = m_costs <= r if norm == "inf" else np.ones(m_costs.shape[0], dtype=bool)
            if not grow and not allowed.any():
                return None
            if m_feats.size == 0:
                return None
            trial = walker.try_moves(x, leaves, scores, plan)
            objs = _objective(trial, label, targeted)
            gain = obj - objs
            if norm == "1":
                now = np.abs(x - x0)
                extra = np.maximum(np.abs(m_values - x0[m_feats]) - now[m_feats], 0.0)
                within = (np.abs(x - x0).sum() + extra) <= r
                ok = (gain > 1e-15) & within
                if ok.any():
                    pick = int(np.argmax(np.where(ok, gain / np.maximum(extra, 1e-12), -np.inf)))
                elif grow and (gain > 1e-15).any():
                    pick = int(
                        np.argmax(np.where(gain > 1e-15, gain / np.maximum(extra, 1e-12), -np.inf))
                    )
                    r = np.abs(x - x0).sum() + extra[pick]
                else:
                    return None
            else:
                ok = (gain > 1e-15) & allowed
                if ok.any():
                    pick = int(np.argmax(np.where(ok, gain, -np.inf)))
                elif grow and (gain > 1e-15).any():
                    # Widen to the cheapest helpful change; among equals, the best.
                    helpful = gain > 1e-15
                    cheapest = m_costs[helpful].min()
                    pick = int(np.argmax(np.where(helpful & (m_costs <= cheapest), gain, -np.inf)))
                    r = float(m_costs[pick])
                else:
                    return None
            x[m_feats[pick]] = m_values[pick]
            leaves = walker.moved(x, leaves, int(m_feats[pick]))
            scores = trial[pick]
            obj = float(objs[pick])
        return x if obj < 0 else None

    def size(x: np.ndarray) -> float:
        return _norm(x - x0, norm)

    first = greedy(0.0, grow=True)
    if first is None:
        return None, math.inf
    best, best_d = first, size(first)
    if norm == "inf":
        radii = np.unique(costs[costs < best_d])
        low, high = 0, radii.shape[0]  # search radii[low:high]
        for _ in range(refine):
            if low >= high:
                break
            mid = (low + high) // 2
            found = greedy(float(radii[mid]), grow=False)
            if found is not None and size(found) < best_d:
                best, best_d = found, size(found)
                high = int(np.searchsorted(radii, best_d))
            else:
                low = mid + 1
    # Undo changes that are not needed, largest first, all candidates scored at once.
    while True:
        moved = np.flatnonzero(best != x0)
        if moved.size == 0:
            break
        leaves = walker.leaves(best)
        trial = walker.try_moves(best, leaves, walker.scores(leaves), walker.plan(moved, x0[moved]))
        still = _objective(trial, label, targeted) < 0
        if not still.any():
            break
        pick = moved[still][np.argmax(np.abs(best - x0)[moved][still])]
        best = best.copy()
        best[pick] = x0[pick]
    d = size(best)
    if d > cap:
        return None, math.inf
    return best, d
