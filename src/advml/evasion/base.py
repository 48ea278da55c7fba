"""The evasion family: ``generate(model, x, y=None) -> AdversarialResult``.

:class:`EvasionAttack` holds the public method; each attack implements the small
``_run`` hook on tensors. ``generate`` validates the input once, runs the hook in
chunks, and *always* projects onto the attack's threat model (ε-ball, then the model's
bounds) afterwards, so no attack can forget to.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor

from advml import registry
from advml.base import Component
from advml.errors import QueryBudgetExceededError, UnsupportedModelError
from advml.evasion.constraints import FeatureConstraints, as_constraints
from advml.metrics.norms import perturbation_norms
from advml.models.base import (
    Classifier,
    check_classifier,
    clamp_to,
    clip_bounds,
    feature_bounds,
    keeping_back,
    kept_back,
    same_kind_as,
)
from advml.models.checks import check_finite_outputs
from advml.runtime.seeding import make_generator
from advml.validation import (
    check_bool,
    check_choice,
    check_in_bounds,
    check_in_feature_bounds,
    check_labels,
    check_number,
)

__all__ = [
    "RANDOM_BLOCK",
    "AdversarialResult",
    "EpsScale",
    "EvasionAttack",
    "Norm",
    "UnitBox",
    "affordable",
    "block_seed",
    "budget_ran_out",
    "project",
    "queries_left",
    "random_block",
    "spending",
]

Norm = Literal["inf", "2"]

EpsScale = Literal["absolute", "relative"]
"""How an attack's ``eps`` is read (docs/datasets.md, "Bounds and eps").

``"absolute"``: in the data's units, the same radius for every feature. ``"relative"``:
as a fraction of each feature's range, ``eps_i = eps * (high_i - low_i)``; the attack
then runs in the unit box ``z = (x - low) / (high - low)`` with the radius ``eps``, so
the ball (L∞ or L2) is scaled per feature and every step, random start and projection
is the one the attack makes on inputs in [0, 1]. On bounds ``(0, 1)`` the two agree
exactly."""


@dataclass
class _Spend:
    """Whether the query budget stopped the work of one scope of :func:`spending`."""

    short: bool = False
    """Set when the attack stopped, or shrank a batch, because the budget ran out."""


# The feature constraints of a relative-eps run, in the unit box of the model's bounds
# (set by generate for the run; the attack's own setting is never changed by being used).
_UNIT_RULES: ContextVar[FeatureConstraints | None] = ContextVar(
    "advml_evasion_unit_rules", default=None
)

# The scope being attacked; a context variable rather than state on the attack, so that
# an attack object is never changed by being used (and threads do not share it).
_SPEND: ContextVar[_Spend | None] = ContextVar("advml_evasion_spend", default=None)


def queries_left(model: Classifier) -> int | None:
    """Queries an attack may still spend on ``model``; ``None`` when it has no budget.

    The model's ``queries_left`` less what is kept back for the final checks of the
    enclosing :func:`spending` scopes.
    """
    left = getattr(model, "queries_left", None)
    if left is None:
        return None
    return max(0, int(left) - kept_back())


@contextlib.contextmanager
def spending(reserve: int) -> Iterator[_Spend]:
    """A scope that keeps ``reserve`` queries of the budget back for a check after it.

    The model refuses to spend them inside (:func:`~advml.models.base.keeping_back`),
    so even an attack that does not size its batches to the budget leaves them. Reserves
    add up when scopes nest (``strongest`` keeps its own check of each member inside
    generate's chunk). The scope's ``short`` says whether the budget stopped the work.
    """
    scope = _Spend()
    token = _SPEND.set(scope)
    try:
        with keeping_back(reserve):
            yield scope
    finally:
        _SPEND.reset(token)


def affordable(model: Classifier, rows: Tensor) -> Tensor:
    """The leading entries of ``rows`` (one query each) the budget still pays for.

    Query attacks pass every batch through this before the model call, so that the
    last queries of a budget are spent on a smaller batch instead of refused with the
    whole batch; a shortened batch marks the attack as stopped by the budget.
    """
    left = queries_left(model)
    if left is None or rows.shape[0] <= left:
        return rows
    budget_ran_out()
    return rows[:left]


def budget_ran_out() -> None:
    """Record that the attack of the current chunk was stopped by the query budget."""
    scope = _SPEND.get()
    if scope is not None:
        scope.short = True


@dataclass(frozen=True)
class AdversarialResult:
    """What an evasion attack produced, per sample and in total.

    ``x_adv`` has the type of the ``x`` given to ``generate`` (numpy in, numpy out;
    tensor in, tensor out); every other array is numpy with one entry per sample.
    """

    x_adv: np.ndarray | Tensor
    """Adversarial inputs, same shape and dtype as ``x`` (float32 for integer ``x``),
    inside the threat model."""
    y: np.ndarray
    """Labels attacked: the true labels (or the model's predictions when ``y`` was not
    given) for untargeted attacks, the target labels for targeted ones."""
    y_adv: np.ndarray
    """The model's predictions on ``x_adv``."""
    success: np.ndarray
    """Boolean: ``y_adv != y`` (untargeted) or ``y_adv == y`` (targeted)."""
    l0: np.ndarray
    """Number of input features changed (by more than 1e-7)."""
    l2: np.ndarray
    linf: np.ndarray
    queries: np.ndarray
    """Model evaluations the attack spent on each sample (the final check excluded)."""
    seconds: float
    attack: str
    targeted: bool
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.success.shape[0])

    @property
    def success_rate(self) -> float:
        """Fraction of samples on which the attack reached its goal."""
        return float(self.success.mean()) if self.n else 0.0

    def summary(self) -> dict[str, Any]:
        """Plain numbers for reports: success rate, median norms of successes, queries."""
        ok = self.success

        def med(a: np.ndarray) -> float:
            return float(np.median(a[ok])) if ok.any() else math.nan

        return {
            "attack": self.attack,
            "targeted": self.targeted,
            "n": self.n,
            "success_rate": self.success_rate,
            "median_l0": med(self.l0),
            "median_l2": med(self.l2),
            "median_linf": med(self.linf),
            "mean_queries": float(self.queries.mean()) if self.n else 0.0,
            "seconds": self.seconds,
        }


def project(x_adv: Tensor, x: Tensor, eps: float, norm: Norm) -> Tensor:
    """Project ``x_adv`` onto the ``norm``-ball of radius ``eps`` around ``x``."""
    if norm == "inf":
        return torch.max(torch.min(x_adv, x + eps), x - eps)
    delta = (x_adv - x).flatten(1)
    scale = (eps / delta.norm(p=2, dim=1).clamp_min(1e-12)).clamp(max=1.0)
    return x + (delta * scale[:, None]).view_as(x)


class EvasionAttack(Component):
    """Base of evasion attacks.

    Subclasses implement :meth:`_run` and set the capabilities they need
    (``needs_gradients``, ``needs_scores``). Norm-bounded attacks have ``eps`` and
    ``norm`` settings; ``generate`` projects their output onto that ball.
    """

    family: ClassVar[str] = "evasion"
    needs_gradients: ClassVar[bool] = True
    needs_scores: ClassVar[bool] = True
    randomised: ClassVar[bool] = True
    """Whether ``_run`` may draw from its generator (False for deterministic attacks,
    whose chunks then need not follow the blocks of randomness)."""

    targeted: bool
    batch_size: int | None

    def _set_common(
        self,
        *,
        targeted: bool,
        batch_size: int | None,
        seed: int | None = None,
        constraints: Any = None,
        eps_scale: EpsScale = "absolute",
    ) -> None:
        """Validate and store the settings attacks share (from ``__init__``): ``targeted``
        and ``batch_size``, and ``seed``, ``constraints`` and ``eps_scale`` where the
        attack's signature takes them."""
        validate_common(targeted=targeted, batch_size=batch_size, seed=seed)
        names = self._param_names()
        if "eps_scale" in names:
            check_choice("eps_scale", eps_scale, ("absolute", "relative"))
            self.eps_scale = eps_scale
        self.targeted = targeted
        self.batch_size = batch_size
        if "seed" in names:
            self.seed = seed
        if "constraints" in names:
            self.constraints = as_constraints("constraints", constraints)

    @classmethod
    def unsupported_reason(cls, model: Classifier) -> str | None:
        """Why this attack cannot run on ``model``, or ``None`` when it can.

        The one capability check of the family: ``generate`` raises it, the audit skips
        with it, the demo greys the attack out with it.

        Examples
        --------
        >>> from advml.evasion import PGD
        >>> from advml.models import CallableClassifier
        >>> labels_only = CallableClassifier(
        ...     lambda x: (x.sum(1) > 1).astype(int),
        ...     input_shape=(2,), n_classes=2, bounds=(0, 1), returns="labels",
        ... )
        >>> PGD.unsupported_reason(labels_only)
        "PGD needs the model's gradients; this model does not give them"
        """
        if cls.needs_gradients and not model.has_gradients:
            return f"{cls.__name__} needs the model's gradients; this model does not give them"
        if cls.needs_scores and not model.has_scores:
            return f"{cls.__name__} needs the model's scores; this model answers labels only"
        return None

    # -- the public verb -------------------------------------------------------------
    def generate(
        self,
        model: Classifier,
        x: np.ndarray | Tensor,
        y: np.ndarray | Tensor | None = None,
        *,
        offset: int = 0,
    ) -> AdversarialResult:
        """Craft adversarial examples for ``x``.

        Parameters
        ----------
        model : Classifier
            The model under attack (any advml adapter).
        x : array of shape (n, *model.input_shape)
            Inputs within ``model.bounds``. Not modified.
        y : array of shape (n,), optional
            True labels (untargeted) or target labels (targeted). When omitted, an
            untargeted attack uses the model's own predictions, so no true label leaks
            into the attack; a targeted attack raises.
        offset : int
            Index of ``x[0]`` in the whole evaluation set (default 0). A randomised
            attack draws its numbers per block of :data:`RANDOM_BLOCK` inputs, seeded by
            ``seed`` and the block's index, so that a shard ``x[a:b]`` attacked with
            ``offset=a`` (``a`` a multiple of ``RANDOM_BLOCK``) gets exactly the numbers
            it gets inside one run over all of ``x``; see
            :func:`advml.evasion.shards.generate_sharded`.

        Returns
        -------
        AdversarialResult

        Raises
        ------
        QueryBudgetExceededError
            When the model's ``query_budget`` runs out before every input was attacked
            as the settings ask. Query attacks spend the budget to the last query; the
            error's ``partial_result`` is the result for the inputs attacked so far (the
            last of them with the best point found when the budget ran out).
        """
        self._check_model(model)
        check_number("offset", offset, low=0, integer=True)
        check_finite_outputs(model)  # the weights only: free, and no query is spent
        xt = model.as_tensor(x, name="x")
        check_in_bounds("x", xt, model.bounds)
        per_feature = feature_bounds(model)
        if per_feature is not None:
            check_in_feature_bounds("x", xt, *clip_bounds(model))
        # The space the attack's own steps run in: the model's inputs (absolute eps), or
        # the unit box over each feature's range (relative eps; see EpsScale).
        space = UnitBox(model) if self._relative(model) else None
        target: Classifier = model if space is None else space
        bounds = clip_bounds(target)
        if self._constraints is not None:
            self._constraints.check_features(math.prod(model.input_shape))
        n = xt.shape[0]
        if y is None:
            if self.targeted:
                raise ValueError("a targeted attack needs y: the target label of each input")
            with model.evaluating():
                yt = model.predict_labels(xt)
        else:
            y_arr = y if isinstance(y, np.ndarray | Tensor) else np.asarray(y)
            check_labels("y", y_arr, model.n_classes, n)
            yt = torch.as_tensor(np.asarray(y_arr) if isinstance(y_arr, np.ndarray) else y_arr)
            yt = yt.to(device=model.device, dtype=torch.long)
        # Randomness per block of RANDOM_BLOCK inputs, from a generator seeded by (seed,
        # block index): an input's numbers do not depend on the chunks nor on the shard
        # (advml.evasion.shards) it was attacked in. A chunk never crosses a block's edge.
        randomised = self._draws_random()
        base_seed = _base_seed(getattr(self, "seed", None))
        chunk = self.batch_size or self._auto_batch_size(model)
        block_size = random_block(model.device)
        if randomised:
            chunk = min(chunk, block_size)
        start = time.perf_counter()
        x_adv = xt.clone()
        queries = torch.zeros(n, dtype=torch.long, device=model.device)
        y_adv = yt.clone()
        done = 0  # inputs whose chunk is finished, final check included
        short = False  # the budget ran out before every input was attacked in full
        cut = False  # ... and it cut the attack of the last chunk short
        with model.evaluating():
            while done < n:
                size = min(chunk, n - done)
                if randomised:
                    size = min(size, block_size - (offset + done) % block_size)
                left = queries_left(model)
                if left is not None:
                    # A chunk needs one query per input before the attack can do anything
                    # and one for generate's final check: shrink it to what the budget
                    # still pays for, so that no query is wasted on a chunk cut in two.
                    size = min(size, left // 2)
                    if size == 0:
                        short = True
                        break
                i = done
                xc, yc = xt[i : i + size], yt[i : i + size]
                block, within = divmod(offset + i, block_size)
                generator = make_generator(block_seed(base_seed, block, within), model.device)
                try:
                    with spending(size) as scope:
                        if space is None:
                            xa, q = self._run(model, xc, yc, generator)
                            xa = self._finalise(xa.detach(), xc, bounds)
                        else:
                            zc = space.to_unit(xc)
                            with space.rules(self._constraints):
                                za, q = self._run(space, zc, yc, generator)
                                za = self._finalise(za.detach(), zc, bounds)
                            # Features the attack left alone keep their exact value (the
                            # round trip through the unit box would round them).
                            xa = torch.where(za == zc, xc, space.to_data(za))
                    with torch.no_grad():
                        ya = model.predict_labels(xa)
                except QueryBudgetExceededError:
                    # An attack that does not shrink its own batches: this chunk's
                    # queries are lost, the finished chunks are kept.
                    short = True
                    break
                x_adv[i : i + size] = xa
                queries[i : i + size] = q
                y_adv[i : i + size] = ya
                done += size
                if scope.short:
                    short = cut = True
                    break
        result = self._result(x, xt, yt, x_adv, y_adv, queries, done, time.perf_counter() - start)
        if short:
            budget = getattr(model, "query_budget", None)
            spent = (
                f"{model.query_count} of query_budget={budget} queries spent"
                if budget is not None
                else f"{model.query_count} queries spent and the wrapped model's budget used up"
            )
            if done == 0:
                what = (
                    f"{spent} before any of the {n} inputs could be attacked (each needs at "
                    f"least 2: one for the attack, one for the final check)"
                )
            else:
                what = (
                    f"{spent}; {done} of {n} inputs attacked, {int(result.success.sum())} "
                    f"adversarial examples found"
                    + (
                        ", the last inputs with fewer queries than the settings allow"
                        if cut
                        else ""
                    )
                    + ". The error's partial_result holds them"
                )
            raise QueryBudgetExceededError(
                f"query budget ran out: {what}; raise query_budget, attack fewer inputs or "
                f"lower the attack's max_queries",
                partial_result=result,
            )
        return result

    def _result(
        self,
        x: np.ndarray | Tensor,
        xt: Tensor,
        yt: Tensor,
        x_adv: Tensor,
        y_adv: Tensor,
        queries: Tensor,
        m: int,
        seconds: float,
    ) -> AdversarialResult:
        """The result for the first ``m`` inputs (all of them unless the budget ran out)."""
        xt, yt, x_adv, y_adv, queries = xt[:m], yt[:m], x_adv[:m], y_adv[:m], queries[:m]
        success = (y_adv == yt) if self.targeted else (y_adv != yt)
        l0, l2, linf = perturbation_norms(xt, x_adv)
        out_x: np.ndarray | Tensor
        if isinstance(x, Tensor):
            out_x = x_adv.to(
                device=x.device, dtype=x.dtype if x.is_floating_point() else torch.float32
            )
        else:
            dtype = np.asarray(x).dtype
            # Integer inputs (e.g. uint8 pixels) would be truncated: return float32 then.
            out_x = (
                x_adv.cpu()
                .numpy()
                .astype(dtype if np.issubdtype(dtype, np.floating) else np.float32, copy=False)
            )
        return AdversarialResult(
            x_adv=out_x,
            y=yt.cpu().numpy(),
            y_adv=y_adv.cpu().numpy(),
            success=success.cpu().numpy(),
            l0=l0.cpu().numpy(),
            l2=l2.cpu().numpy(),
            linf=linf.cpu().numpy(),
            queries=queries.cpu().numpy(),
            seconds=seconds,
            attack=self.name,
            targeted=self.targeted,
            params=self.get_params(),
        )

    # -- hooks -----------------------------------------------------------------------
    def _run(
        self, model: Classifier, x: Tensor, y: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """Adversarial inputs for one chunk and the queries spent on each sample."""
        raise NotImplementedError

    def _relative(self, model: Classifier) -> bool:
        """Whether ``eps`` is read relative to each feature's range and that differs from
        reading it in the data's units (bounds other than one ``(0, 1)`` pair)."""
        if getattr(self, "eps_scale", "absolute") != "relative" or self._ball() is None:
            return False
        return feature_bounds(model) is not None or tuple(model.bounds) != (0.0, 1.0)

    def _ball(self) -> tuple[Norm, float] | None:
        """The norm-ball the output must lie in, or None for unbounded attacks."""
        eps = getattr(self, "eps", None)
        return None if eps is None else (getattr(self, "norm", "inf"), float(eps))

    @property
    def _constraints(self) -> FeatureConstraints | None:
        """The attack's feature constraints (``constraints`` setting), if it has any (in
        the unit box during a relative-eps run)."""
        rules = getattr(self, "constraints", None)
        if rules is None or rules.is_empty:
            return None
        return _UNIT_RULES.get() or rules

    def _project(self, x_adv: Tensor, x: Tensor, bounds: ClipBounds) -> Tensor:
        """The projection iterative attacks apply after each step.

        Onto the ε-ball, then onto what the feature constraints allow (switch-on
        features may be partly on between steps), then into the model's bounds. Works
        on any subset of rows as long as ``x_adv`` and ``x`` are the same rows.
        """
        ball = self._ball()
        if ball is not None:
            x_adv = project(x_adv, x, ball[1], ball[0])
        rules = self._constraints
        if rules is not None:
            x_adv = rules.project(x_adv, x, bounds)
        return _clamp(x_adv, bounds)

    def _step_projection(self, bounds: ClipBounds) -> Callable[[Tensor, Tensor], Tensor] | None:
        """``(x_adv, x) -> x_adv`` for the gradient loop when the attack has feature
        constraints; None otherwise (the loop's own fast projection then applies)."""
        if self._constraints is None:
            return None
        return lambda x_adv, x: self._project(x_adv, x, bounds)

    def _finalise(self, x_adv: Tensor, x: Tensor, bounds: ClipBounds) -> Tensor:
        ball = self._ball()
        if ball is not None:
            x_adv = project(x_adv, x, ball[1], ball[0])
        rules = self._constraints
        if rules is not None:
            # Round switch-on features to off/on; if that left the ball, project again
            # and turn off any switch-on feature the projection shrank (off is always
            # inside the ball, a half-on binary feature is not a valid input).
            x_adv = rules.project(x_adv, x, bounds, final=True)
            if ball is not None:
                x_adv = rules.switch_off_partial(project(x_adv, x, ball[1], ball[0]), x, bounds)
        return _clamp(x_adv, bounds)

    def _draws_random(self) -> bool:
        """Whether :meth:`_run` draws from its generator (then chunks follow the random
        blocks); attacks with a ``random_start`` setting draw only when it is on."""
        return self.randomised and bool(getattr(self, "random_start", True))

    def _auto_batch_size(self, model: Classifier) -> int:
        # Chunks of about 200k input values keep every activation of a small CNN under
        # glibc malloc's 32 MiB mmap threshold; larger buffers are mapped and zero-filled
        # afresh on every step (about 55k page faults per pass for 500 MNIST images,
        # measured with benchmarks/evasion_speed.py). Small tabular models get one batch.
        # On a GPU the model sizes the chunk from the device's free memory instead.
        sized = getattr(model, "attack_chunk_size", None)
        on_device = sized() if callable(sized) else None
        if on_device is not None:
            return int(on_device)
        numel = math.prod(model.input_shape)
        return int(min(1024, max(16, 200_000 // numel)))

    def _check_model(self, model: Classifier) -> None:
        check_classifier("model", model)
        reason = self.unsupported_reason(model)
        if reason is not None:
            others = [
                name
                for name in registry.available("evasion")
                if registry.get("evasion", name).unsupported_reason(model) is None
            ]
            hint = (
                f" Attacks this model ({type(model).__name__}) allows: {', '.join(others)}."
                if others
                else " No registered attack works with this model's outputs."
            )
            raise UnsupportedModelError(f"{reason}.{hint}")


ClipBounds = tuple[float, float] | tuple[Tensor, Tensor]
"""Bounds to clamp with: one pair of floats, or per-feature tensors (see ``clip_bounds``)."""


def _clamp(x: Tensor, bounds: ClipBounds) -> Tensor:
    return clamp_to(x, bounds[0], bounds[1])


def clip_pair(low: float | Tensor, high: float | Tensor) -> ClipBounds:
    """``(low, high)`` as one kind, for :meth:`EvasionAttack._finalise`: two floats or
    two tensors."""
    if isinstance(low, Tensor) or isinstance(high, Tensor):
        device = low.device if isinstance(low, Tensor) else high.device  # type: ignore[union-attr]
        return torch.as_tensor(low, device=device), torch.as_tensor(high, device=device)
    return float(low), float(high)


class UnitBox:
    """``model`` seen through ``x = low + z * (high - low)``: inputs ``z`` in [0, 1] for
    every feature (per-feature bounds included), scores unchanged.

    The space a relative-eps attack runs in (see :data:`EpsScale`): a ball of radius
    ``eps`` around ``z`` is the ball of radius ``eps * (high_i - low_i)`` per feature
    around ``x``. Queries, budgets, gradients and inference mode are the model's own.
    """

    bounds = (0.0, 1.0)
    feature_bounds = None

    def __init__(self, model: Classifier) -> None:
        self.model = model
        self.low, high = (
            torch.as_tensor(b, dtype=torch.float32, device=model.device) for b in clip_bounds(model)
        )
        self.span = high - self.low

    def to_unit(self, x: Tensor) -> Tensor:
        return ((x - self.low) / self.span).clamp_(0.0, 1.0)

    @contextlib.contextmanager
    def rules(self, rules: FeatureConstraints | None) -> Iterator[None]:
        """Within the block, the attack's feature constraints are read in the unit box."""
        if rules is None:
            yield
            return
        low = self.low.expand(1, *self.model.input_shape).cpu().numpy()
        high = (self.low + self.span).expand(1, *self.model.input_shape).cpu().numpy()
        token = _UNIT_RULES.set(rules.in_unit_box(low, high))
        try:
            yield
        finally:
            _UNIT_RULES.reset(token)

    def to_data(self, z: Tensor) -> Tensor:
        # Clamped again: low + z * span can round past high in float32.
        high = self.low + self.span
        return torch.max(torch.min(self.low + z * self.span, high), self.low)

    # -- the Classifier protocol, forwarded ------------------------------------------
    @property
    def n_classes(self) -> int:
        return self.model.n_classes

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.model.input_shape

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def has_gradients(self) -> bool:
        return self.model.has_gradients

    @property
    def has_scores(self) -> bool:
        return self.model.has_scores

    @property
    def query_count(self) -> int:
        return self.model.query_count

    @property
    def query_budget(self) -> int | None:
        return getattr(self.model, "query_budget", None)

    @property
    def queries_left(self) -> int | None:
        return getattr(self.model, "queries_left", None)

    def as_tensor(self, x: np.ndarray | Tensor, *, name: str = "x") -> Tensor:
        x = torch.as_tensor(x, device=self.device)
        return self.to_unit(self.model.as_tensor(self.to_data(x), name=name))

    def logits(self, x: Tensor) -> Tensor:
        return self.model.logits(self.to_data(x))

    def predict_labels(self, x: Tensor) -> Tensor:
        return self.model.predict_labels(self.to_data(x))

    def predict_proba(
        self, x: np.ndarray | Tensor, *, batch_size: int | None = None
    ) -> np.ndarray | Tensor:
        z = torch.as_tensor(x, dtype=torch.float32, device=self.device)
        out = self.model.predict_proba(self.to_data(z), batch_size=batch_size)
        return same_kind_as(torch.as_tensor(out, device=self.device), x)

    def predict(
        self, x: np.ndarray | Tensor, *, batch_size: int | None = None
    ) -> np.ndarray | Tensor:
        z = torch.as_tensor(x, dtype=torch.float32, device=self.device)
        out = self.model.predict(self.to_data(z), batch_size=batch_size)
        return same_kind_as(torch.as_tensor(out, device=self.device), x)

    def evaluating(self) -> contextlib.AbstractContextManager[None]:
        return self.model.evaluating()

    def fingerprint(self) -> str:
        return self.model.fingerprint()

    def describe(self) -> str:
        return f"{self.model.describe()}, seen in the unit box of its bounds"


RANDOM_BLOCK = 256
"""Inputs per block of randomness on the CPU: a randomised attack draws the numbers of
inputs ``[k * RANDOM_BLOCK, (k + 1) * RANDOM_BLOCK)`` from one generator seeded by
``(seed, k)``, so a result does not depend on the chunk size (above the block) nor on
sharding at block edges. A ``batch_size`` below the block splits each block the same way
in every run."""

GPU_RANDOM_BLOCK = 16384
"""The block on an accelerator: as large as the largest chunk the device sizing gives
(``advml.runtime.device``), so that a block never cuts a GPU chunk short (a launch-bound
network pays per chunk, not per input). CPU and CUDA generators give different numbers
anyway, so a block size per kind of device costs no reproducibility a user had."""


def random_block(device: torch.device | str) -> int:
    """Inputs per block of randomness on ``device`` (see :data:`RANDOM_BLOCK`)."""
    kind = torch.device(device).type
    return RANDOM_BLOCK if kind in ("cpu", "meta") else GPU_RANDOM_BLOCK


def _base_seed(seed: int | None) -> int:
    """The attack's seed, or one fresh seed from OS entropy drawn once per ``generate``."""
    if seed is not None:
        return int(seed)
    return int(np.random.SeedSequence().generate_state(2, np.uint32).view(np.uint64)[0] >> 1)


def block_seed(seed: int, block: int, within: int = 0) -> int:
    """Seed of block ``block`` of an attack seeded ``seed`` (``within``: the chunk's first
    input inside the block, when ``batch_size`` splits the block): a 63-bit hash by numpy's
    ``SeedSequence``, so neighbouring blocks get unrelated streams."""
    state = np.random.SeedSequence([seed, block, within]).generate_state(2, np.uint32)
    return int(state.view(np.uint64)[0] >> 1)


def validate_common(*, targeted: bool, batch_size: int | None, seed: int | None = None) -> None:
    """Checks shared by every attack's ``__init__``."""
    check_bool("targeted", targeted)
    if batch_size is not None:
        check_number("batch_size", batch_size, low=1, integer=True)
    if seed is not None:
        check_number("seed", seed, low=0, integer=True)
