"""Attacks on decision trees and tree ensembles: exact (MILP) and fast (greedy).

Both read the model through its tree view (:func:`advml.models.trees.tree_view`:
scikit-learn trees and forests, GradientBoosting, HistGradientBoosting, XGBoost,
LightGBM, or any advml adapter holding one as ``.booster``/``.estimator``) and find
the *smallest* perturbation that changes the label, not merely one inside an eps-ball:

* ``tree_exact`` (:class:`TreeExact`): Kantchelian, Tygar & Joseph, "Evasion and
  Hardening of Tree Ensemble Classifiers", ICML 2016, a mixed-integer program solved by
  HiGHS (:func:`scipy.optimize.milp`); the radius is proven minimal unless the time
  limit stops the solver, and the result says which;
* ``tree_fast`` (:class:`TreeFast`): a greedy search over split thresholds without a
  solver, for large ensembles.

The result is a :class:`TreeAttackResult`: an :class:`AdversarialResult` with each
input's radius, a proven lower bound and whether the radius is optimal.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from advml import registry
from advml.errors import UnsupportedModelError
from advml.evasion.base import AdversarialResult, EvasionAttack, Norm
from advml.evasion.constraints import FeatureConstraints
from advml.evasion.trees_core import Geometry, InputBox, TreeNorm, _Walker, solve_exact, solve_fast
from advml.models.base import Classifier
from advml.models.trees import TreeEnsemble, tree_model_reason, tree_view
from advml.validation import check_bool, check_number

__all__ = ["TreeAttackResult", "TreeExact", "TreeFast", "input_boxes"]


@dataclass(frozen=True)
class TreeAttackResult(AdversarialResult):
    """An :class:`AdversarialResult` with the tree attacks' per-input radii.

    ``radius`` is the distance (in the attack's norm) of the adversarial input found,
    ``inf`` where none was found (within ``eps`` when the attack has one);
    ``lower_bound`` a proven lower bound on the smallest adversarial distance (0 when
    nothing is proven, as for the fast attack); ``optimal`` whether ``radius`` is proven
    to be that smallest distance (or, without an adversarial input, that none exists
    within ``eps``).
    """

    radius: np.ndarray = field(default_factory=lambda: np.zeros(0))
    lower_bound: np.ndarray = field(default_factory=lambda: np.zeros(0))
    optimal: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    norm: str = "inf"

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        found = np.isfinite(self.radius)
        out.update(
            norm=self.norm,
            median_radius=float(np.median(self.radius[found])) if found.any() else math.nan,
            proven_optimal=float(self.optimal.mean()) if self.n else 0.0,
        )
        return out


@dataclass
class _State:
    geometry: Geometry
    walker: _Walker | None
    radius: list[float] = field(default_factory=list)
    lower: list[float] = field(default_factory=list)
    optimal: list[bool] = field(default_factory=list)


# Per generate() call; a context variable so that an attack object never changes by use.
_STATE: ContextVar[_State | None] = ContextVar("advml_tree_attack", default=None)


def input_boxes(
    x: np.ndarray,
    bounds: tuple[float, float],
    constraints: FeatureConstraints | None,
    integer: Sequence[int],
) -> list[InputBox]:
    """Per input, what the attacker may change (bounds, constraints, integer features)."""
    flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if constraints is not None and not constraints.is_empty:
        lo_t, hi_t = constraints.limits(torch.as_tensor(flat), bounds)
        low, high = lo_t.numpy(), hi_t.numpy()
        switch = constraints.switch_on
    else:
        low = np.full_like(flat, bounds[0])
        high = np.full_like(flat, bounds[1])
        switch = ()
    whole = np.zeros(flat.shape[1], dtype=bool)
    whole[list(integer)] = True
    return [InputBox(low[i], high[i], whole, switch) for i in range(flat.shape[0])]


class _TreeAttack(EvasionAttack):
    """What the two tree attacks share: the view, the boxes, the per-input records."""

    randomised = False  # draws nothing: chunks need not follow the random blocks

    needs_gradients: ClassVar[bool] = False
    needs_scores: ClassVar[bool] = False

    norm: TreeNorm
    eps: float | None
    integer: tuple[int, ...]

    def _set_tree_common(self, norm: str, eps: float | None, integer: Sequence[int]) -> None:
        if norm not in ("inf", "1"):
            raise ValueError(f"norm must be 'inf' or '1', got {norm!r}")
        if eps is not None:
            check_number("eps", eps, low=0)
        try:
            ints = tuple(sorted({int(i) for i in integer}))
        except (TypeError, ValueError):
            raise TypeError(
                f"integer must be a sequence of feature indices, got {integer!r}"
            ) from None
        if any(i < 0 for i in ints):
            raise ValueError(f"integer must hold feature indices >= 0, got {list(ints)}")
        self.norm = norm  # type: ignore[assignment]
        self.eps = None if eps is None else float(eps)
        self.integer = ints

    @classmethod
    def unsupported_reason(cls, model: Classifier) -> str | None:
        return tree_model_reason(model)

    def _ball(self) -> tuple[Norm, float] | None:
        # The attack keeps to eps itself (in L1 too, which project() does not know).
        return None

    def generate(
        self,
        model: Classifier,
        x: np.ndarray | Tensor,
        y: np.ndarray | Tensor | None = None,
        *,
        offset: int = 0,
    ) -> TreeAttackResult:
        """Craft minimal adversarial examples; see :meth:`EvasionAttack.generate`.

        Returns a :class:`TreeAttackResult` (per-input radius, lower bound, optimality).
        """
        self._check_model(model)
        view = tree_view(model)
        if self.integer and max(self.integer) >= view.n_features:
            raise ValueError(
                f"integer names feature {max(self.integer)}, but the model has "
                f"{view.n_features} features"
            )
        self._check_view(model, view, x)
        geometry = Geometry(view)
        fast = isinstance(self, TreeFast) or getattr(self, "warm_start", False)
        state = _State(geometry, _Walker(geometry) if fast else None)
        token = _STATE.set(state)
        try:
            result = super().generate(model, x, y, offset=offset)
        finally:
            _STATE.reset(token)
        n = result.n
        unproven = n - int(np.sum(state.optimal[:n]))
        if isinstance(self, TreeExact) and unproven:
            warnings.warn(
                f"tree_exact: {unproven} of {n} radii are not proven minimal within "
                f"time_limit={self.time_limit:g} s; result.optimal marks them and "
                f"result.lower_bound holds what was proven. Raise time_limit to prove more",
                UserWarning,
                stacklevel=2,
            )
        return TreeAttackResult(
            **asdict_shallow(result),
            radius=np.asarray(state.radius[:n], dtype=np.float64),
            lower_bound=np.asarray(state.lower[:n], dtype=np.float64),
            optimal=np.asarray(state.optimal[:n], dtype=bool),
            norm=self.norm,
        )

    def _check_view(self, model: Classifier, view: TreeEnsemble, x: np.ndarray | Tensor) -> None:
        """The view must predict what the model predicts (an adapter might transform x)."""
        xt = model.as_tensor(x[:64] if len(x) else x, name="x")
        if xt.shape[0] == 0:
            return
        flat = xt.reshape(xt.shape[0], -1).cpu().numpy().astype(np.float64)
        if flat.shape[1] != view.n_features:
            raise UnsupportedModelError(
                f"the model's trees expect {view.n_features} features but its inputs have "
                f"{flat.shape[1]}"
            )
        with model.evaluating():
            labels = model.predict_labels(xt).cpu().numpy()
        scores = np.sort(view.class_scores(flat), axis=1)
        # Near-ties may go either way between float32 (XGBoost) and float64 (the view).
        clear = scores[:, -1] - scores[:, -2] > 1e-5 * np.maximum(1.0, np.abs(scores[:, -1]))
        differ = int(((view.predict(flat) != labels) & clear).sum())
        if differ:
            raise UnsupportedModelError(
                f"the tree view of {type(model).__name__} disagrees with its predictions on "
                f"{differ} of {len(labels)} inputs (does the adapter transform the inputs "
                f"before the trees?); the tree attacks cannot be exact on it"
            )

    def _run(
        self, model: Classifier, x: Tensor, y: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        state = _STATE.get()
        assert state is not None  # set by generate
        flat = x.reshape(x.shape[0], -1).cpu().numpy().astype(np.float64)
        labels = y.cpu().numpy()
        boxes = input_boxes(flat, model.bounds, self._constraints, self.integer)
        out = flat.copy()
        for i in range(flat.shape[0]):
            x_adv, radius, lower, optimal = self._one(state, flat[i], int(labels[i]), boxes[i])
            if x_adv is not None:
                out[i] = x_adv
            state.radius.append(radius)
            state.lower.append(lower)
            state.optimal.append(optimal)
        x_adv_t = torch.as_tensor(out, dtype=x.dtype, device=x.device).view_as(x)
        return x_adv_t, torch.zeros(x.shape[0], dtype=torch.long, device=x.device)

    def _one(
        self, state: _State, x0: np.ndarray, label: int, box: InputBox
    ) -> tuple[np.ndarray | None, float, float, bool]:
        raise NotImplementedError


def asdict_shallow(result: AdversarialResult) -> dict[str, Any]:
    """The fields of an AdversarialResult without copying its arrays."""
    return {name: getattr(result, name) for name in AdversarialResult.__dataclass_fields__}


@registry.register("evasion", "tree_exact")
class TreeExact(_TreeAttack):
    """The exact smallest adversarial perturbation of a tree ensemble (MILP).

    Kantchelian, Tygar & Joseph (ICML 2016): binary variables for the split predicates,
    one leaf per tree consistent with them, the label's score below another class's,
    and the L∞ (or L1) distance to the input minimised, by HiGHS through
    :func:`scipy.optimize.milp`. Multi-class untargeted attacks solve one program per
    rival class, closest first, each cut off at the best radius found so far.

    Parameters
    ----------
    norm : {"inf", "1"}
        Distance minimised: L∞ (the largest feature change) or L1 (the sum of changes).
    eps : float, optional
        Only perturbations up to ``eps`` count: inputs whose smallest adversarial
        perturbation is larger are left unchanged (and counted robust, proven when
        ``optimal``). Default: unbounded, every input gets its minimal perturbation.
    time_limit : float
        Seconds per input for the solver (all rival classes together); when it runs
        out the best input found is kept, ``optimal`` is False and ``lower_bound`` holds
        the solver's proven bound.
    warm_start : bool
        Start from the fast attack's answer (:class:`TreeFast`, milliseconds): every
        program is cut off at its distance, so the solver only improves on it or proves
        it minimal, and an input is never left without an answer the fast attack found.
    integer : sequence of int
        Features that only take integer values (counts, categories as codes).
    targeted : bool
        Move to the labels given as ``y``.
    constraints : FeatureConstraints or mapping, optional
        Immutable features, switch-on features, narrower ranges; see
        :class:`~advml.evasion.FeatureConstraints`.
    batch_size : int, optional
        Inputs per chunk.

    Examples
    --------
    >>> from advml.evasion import TreeExact
    >>> result = TreeExact(time_limit=5).generate(model, x_test, y_test)  # doctest: +SKIP
    >>> result.radius, result.optimal  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        norm: str = "inf",
        eps: float | None = None,
        time_limit: float = 10.0,
        warm_start: bool = True,
        integer: Sequence[int] = (),
        targeted: bool = False,
        constraints: FeatureConstraints | Mapping[str, Any] | None = None,
        batch_size: int | None = None,
    ) -> None:
        check_number("time_limit", time_limit, low=0, low_inclusive=False)
        check_bool("warm_start", warm_start)
        self._set_tree_common(norm, eps, integer)
        self._set_common(targeted=targeted, batch_size=batch_size, constraints=constraints)
        self.time_limit = float(time_limit)
        self.warm_start = warm_start

    def _one(
        self, state: _State, x0: np.ndarray, label: int, box: InputBox
    ) -> tuple[np.ndarray | None, float, float, bool]:
        cap = math.inf if self.eps is None else self.eps
        incumbent = None
        if state.walker is not None:
            start = solve_fast(
                state.geometry, state.walker, x0, label, box,
                targeted=self.targeted, norm=self.norm, cap=cap,
            )  # fmt: skip
            if start[0] is not None:
                incumbent = (start[0], start[1])
        out = solve_exact(
            state.geometry,
            x0,
            label,
            box,
            targeted=self.targeted,
            norm=self.norm,
            time_limit=self.time_limit,
            cap=cap,
            incumbent=incumbent,
        )
        return out.x_adv, out.radius, out.lower, out.optimal


@registry.register("evasion", "tree_fast")
class TreeFast(_TreeAttack):
    """A small adversarial perturbation of a tree ensemble, fast and without a solver.

    A greedy search over split thresholds: from the input, repeatedly move one feature
    to the other side of a split, the move that lowers the label's score margin most
    among those within the current radius, widening the radius to the cheapest helpful
    move when none is left; then a binary search over smaller radii, greedily within
    each box, and changes that are not needed undone (the search over split thresholds
    of Zhang, Chen & Hsieh, "An Efficient Adversarial Attack for Tree Ensembles",
    NeurIPS 2020, in a simple form). Finds an adversarial input whenever the greedy path
    reaches one; its radius is an upper bound on the exact one (``lower_bound`` is 0).

    Parameters
    ----------
    norm : {"inf", "1"}
        Distance minimised.
    eps : float, optional
        Only perturbations up to ``eps`` count; larger ones are discarded (the input is
        left unchanged). Default: unbounded.
    refine : int
        Steps of a binary search over smaller radii after the first answer (L∞), each a
        greedy search inside a smaller box. Default 0: on the benchmark's models the
        first answer is already within a few percent of the exact radius.
    integer : sequence of int
        Features that only take integer values.
    targeted : bool
        Move to the labels given as ``y``.
    constraints : FeatureConstraints or mapping, optional
        Immutable features, switch-on features, narrower ranges.
    batch_size : int, optional
        Inputs per chunk.
    """

    def __init__(
        self,
        *,
        norm: str = "inf",
        eps: float | None = None,
        refine: int = 0,
        integer: Sequence[int] = (),
        targeted: bool = False,
        constraints: FeatureConstraints | Mapping[str, Any] | None = None,
        batch_size: int | None = None,
    ) -> None:
        check_number("refine", refine, low=0, integer=True)
        self._set_tree_common(norm, eps, integer)
        self._set_common(targeted=targeted, batch_size=batch_size, constraints=constraints)
        self.refine = int(refine)

    def _one(
        self, state: _State, x0: np.ndarray, label: int, box: InputBox
    ) -> tuple[np.ndarray | None, float, float, bool]:
        assert state.walker is not None
        view = state.geometry.view
        pred = int(view.predict(x0[None, :])[0])
        if (pred == label) == self.targeted:
            return x0.copy(), 0.0, 0.0, True
        x_adv, d = solve_fast(
            state.geometry,
            state.walker,
            x0,
            label,
            box,
            targeted=self.targeted,
            norm=self.norm,
            cap=math.inf if self.eps is None else self.eps,
            refine=self.refine,
        )
        return x_adv, d, 0.0, False
