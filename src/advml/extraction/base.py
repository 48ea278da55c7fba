"""The extraction family: ``extract(victim, x_pool=None, ...) -> ExtractionResult``.

An extraction attack queries a victim model (any advml Classifier; a black-box one through
:class:`~advml.models.CallableClassifier` or a hardened API from
:mod:`advml.defences.output`) and returns a stolen copy, itself a white-box
:class:`~advml.models.TorchClassifier`, with the numbers that say how good the copy is:

- **queries**: inputs the attack sent to the victim (read from the victim's own counter);
- **fidelity**: agreement of the stolen model's labels with the victim's on evaluation data
  and on uniform random inputs in the victim's bounds (Jagielski et al. 2020 call this
  fidelity, as opposed to accuracy on the true labels);
- **accuracy** of the stolen model on the evaluation data's true labels, when given;
- the **curve** of fidelity against queries, one point per round of queries.

Evaluation queries are made once, before the attack, and reported apart from the
attack's (``eval_queries``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from advml.base import Component
from advml.errors import QueryBudgetExceededError, UnsupportedModelError
from advml.models.base import Classifier, check_classifier
from advml.runtime.seeding import make_generator
from advml.validation import (
    check_finite,
    check_in_bounds,
    check_labels,
    check_not_empty,
    check_number,
)

__all__ = [
    "CurvePoint",
    "ExtractionAttack",
    "ExtractionResult",
    "Outputs",
    "fit_to_input_shape",
]

Outputs = Literal["scores", "labels"]
EVAL_SEED = 0
"""Seed of the uniform random evaluation inputs: the same for every attack, so that
fidelities of different attacks on one victim are measured on the same inputs."""


@dataclass(frozen=True)
class CurvePoint:
    """Fidelity of the stolen model after ``queries`` victim queries."""

    queries: int
    fidelity: float
    """Agreement with the victim on the evaluation data (nan without it)."""
    fidelity_random: float
    """Agreement with the victim on uniform random inputs (nan when ``n_random=0``)."""
    accuracy: float
    """Accuracy on the evaluation data's true labels (nan without them)."""


@dataclass(frozen=True)
class ExtractionResult:
    """A stolen model and how faithful it is to the victim.

    ``fidelity``, ``fidelity_random`` and ``accuracy`` describe the final stolen model;
    ``curve`` holds the same numbers after each round of queries.
    """

    stolen: Classifier
    """The stolen model: a white-box TorchClassifier with the victim's input shape."""
    attack: str
    outputs: Outputs
    """What the attack used of the victim's answers: its scores or its labels only."""
    queries: int
    """Inputs the attack sent to the victim."""
    fidelity: float
    fidelity_random: float
    accuracy: float
    victim_accuracy: float
    """The victim's accuracy on the evaluation data (nan without true labels)."""
    curve: tuple[CurvePoint, ...]
    eval_queries: int
    """Victim queries spent on evaluation (the evaluation data and random inputs)."""
    n_eval: int
    n_random: int
    seconds: float
    params: Mapping[str, Any] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)
    """Attack-specific facts (equation solving: rank, residual; copycat: strategy...)."""

    def queries_to_reach(self, fidelity: float) -> int | None:
        """Fewest queries on the curve at which evaluation fidelity reached ``fidelity``."""
        for point in self.curve:
            if point.fidelity >= fidelity:
                return point.queries
        return None

    def summary(self) -> dict[str, Any]:
        """Plain numbers for reports."""
        return {
            "attack": self.attack,
            "outputs": self.outputs,
            "queries": self.queries,
            "fidelity": self.fidelity,
            "fidelity_random": self.fidelity_random,
            "accuracy": self.accuracy,
            "victim_accuracy": self.victim_accuracy,
            "n_eval": self.n_eval,
            "n_random": self.n_random,
            "eval_queries": self.eval_queries,
            "seconds": self.seconds,
            "curve": [
                {
                    "queries": p.queries,
                    "fidelity": p.fidelity,
                    "fidelity_random": p.fidelity_random,
                    "accuracy": p.accuracy,
                }
                for p in self.curve
            ],
        }


@dataclass(frozen=True)
class _Run:
    """What an attack's ``_run`` hook hands back to ``extract``."""

    stolen: Classifier
    outputs: Outputs
    curve: tuple[CurvePoint, ...]
    details: Mapping[str, Any]
    budget_ran_out: bool = False
    """The victim's query budget stopped the attack before it asked all it meant to."""


class Evaluation:
    """The victim's labels on the evaluation inputs, queried once; scores a stolen model.

    Used by the attacks' ``_run`` hooks to measure each round; the attack itself never
    sees these labels.
    """

    def __init__(
        self,
        victim: Classifier,
        x_eval: Tensor | None,
        y_eval: Tensor | None,
        n_random: int,
    ) -> None:
        before = victim.query_count
        self.x_eval = x_eval
        self.y_eval = y_eval
        self.victim_eval = None if x_eval is None else _labels(victim, x_eval)
        gen = make_generator(EVAL_SEED, "cpu")
        self.x_random: Tensor | None = None
        self.victim_random: Tensor | None = None
        if n_random > 0:
            low, high = victim.bounds
            u = torch.rand((n_random, *victim.input_shape), generator=gen)
            self.x_random = (low + (high - low) * u).to(victim.device)
            self.victim_random = _labels(victim, self.x_random)
        self.victim_accuracy = (
            math.nan
            if self.victim_eval is None or y_eval is None
            else float((self.victim_eval == y_eval).float().mean())
        )
        self.queries = victim.query_count - before

    def measure(self, stolen: Classifier, queries: int) -> CurvePoint:
        fid = fid_rand = acc = math.nan
        if self.x_eval is not None and self.victim_eval is not None:
            pred = _labels(stolen, self.x_eval)
            fid = float((pred == self.victim_eval).float().mean())
            if self.y_eval is not None:
                acc = float((pred == self.y_eval).float().mean())
        if self.x_random is not None and self.victim_random is not None:
            pred = _labels(stolen, self.x_random)
            fid_rand = float((pred == self.victim_random).float().mean())
        return CurvePoint(queries, fid, fid_rand, acc)


def _labels(model: Classifier, x: Tensor, batch: int = 1024) -> Tensor:
    with torch.no_grad(), model.evaluating():
        return torch.cat([model.predict_labels(x[i : i + batch]) for i in range(0, len(x), batch)])


def query(victim: Classifier, x: Tensor, outputs: Outputs, batch: int = 256) -> Tensor:
    """The victim's answers for ``x``: probabilities ``(n, k)`` or labels ``(n,)``."""
    parts = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = x[i : i + batch]
            if outputs == "scores":
                parts.append(torch.softmax(victim.logits(xb).float(), dim=1))
            else:
                parts.append(victim.predict_labels(xb))
    return torch.cat(parts)


def fit_to_input_shape(
    x: np.ndarray | Tensor,
    input_shape: tuple[int, ...],
    bounds: tuple[float, float],
    *,
    source_bounds: tuple[float, float] | None = None,
) -> Tensor:
    """Bring another dataset's images to a victim's input shape and bounds.

    For a Knockoff-style query pool (Orekondy et al. 2019) from a different dataset:
    images ``(n, c, h, w)`` are resized (bilinear, antialiased) to the victim's
    ``(h', w')``, colour is averaged to grey or grey repeated to colour, and values are
    mapped linearly from ``source_bounds`` (default: the data's own min and max) to
    ``bounds``. Inputs already of ``input_shape`` are only rescaled.

    Returns
    -------
    torch.Tensor
        float32, shape ``(n, *input_shape)``, within ``bounds``.
    """
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x.detach())
    t = t.to(torch.float32)
    if t.ndim < 2:
        raise ValueError(f"x_pool must be a batch of inputs, got shape {tuple(t.shape)}")
    check_finite("x_pool", t)
    low, high = source_bounds if source_bounds is not None else (float(t.min()), float(t.max()))
    if high <= low:
        high = low + 1.0
    if tuple(t.shape[1:]) != tuple(input_shape):
        if len(input_shape) != 3 or t.ndim != 4:
            raise ValueError(
                f"x_pool has inputs of shape {tuple(t.shape[1:])}, the victim takes "
                f"{tuple(input_shape)}; only images (n, c, h, w) can be resized"
            )
        c = input_shape[0]
        if t.shape[1] != c:
            t = t.mean(dim=1, keepdim=True)
            if c > 1:
                t = t.repeat(1, c, 1, 1)
        t = F.interpolate(
            t, size=tuple(input_shape[1:]), mode="bilinear", align_corners=False, antialias=True
        )
    lo, hi = bounds
    t = lo + (t - low) / (high - low) * (hi - lo)
    return t.clamp(lo, hi)


class ExtractionAttack(Component):
    """Base of extraction attacks.

    Subclasses implement :meth:`_run` and say what they need: ``needs_scores`` (the
    victim's scores, not only labels) and :meth:`_needs_pool` (attacker data).
    """

    family: ClassVar[str] = "extraction"
    needs_scores: ClassVar[bool] = False

    def extract(
        self,
        victim: Classifier,
        x_pool: np.ndarray | Tensor | None = None,
        *,
        x_eval: np.ndarray | Tensor | None = None,
        y_eval: np.ndarray | Tensor | None = None,
        n_random: int = 10_000,
    ) -> ExtractionResult:
        """Steal ``victim``.

        Parameters
        ----------
        victim : Classifier
            The model to steal; only queried (its gradients and parameters are never used).
        x_pool : array of shape (n, *victim.input_shape), optional
            Unlabelled data the attacker holds, within the victim's bounds (strategies that
            draw queries from data need it). It must not be the evaluation data. Images of
            another size are fitted with :func:`fit_to_input_shape` first.
        x_eval : array of shape (m, *victim.input_shape), optional
            Evaluation inputs (e.g. the test set) for fidelity and accuracy; never shown to
            the attack.
        y_eval : array of shape (m,), optional
            True labels of ``x_eval``, for accuracy.
        n_random : int
            Uniform random inputs in the victim's bounds on which fidelity is also
            measured (0 to skip); default 10,000.

        Returns
        -------
        ExtractionResult

        Raises
        ------
        QueryBudgetExceededError
            When the victim's ``query_budget`` cannot pay for the evaluation (nothing is
            spent), or runs out during the attack: attacks that size their rounds to the
            budget (Copycat) spend it to the last query, and the error's
            ``partial_result`` is the result of the copy trained on the answers paid for.
        """
        check_classifier("victim", victim)
        self._check_victim(victim)
        check_number("n_random", n_random, low=0, integer=True)
        pool = None
        if x_pool is not None:
            if tuple(np.shape(x_pool)[1:]) == tuple(victim.input_shape):
                # Same shape: the attacker's data must already be valid input, not rescaled.
                pool = victim.as_tensor(x_pool, name="x_pool")
                check_not_empty("x_pool", pool)
                check_in_bounds("x_pool", pool, victim.bounds)
            else:
                pool = fit_to_input_shape(x_pool, victim.input_shape, victim.bounds)
            pool = pool.to(victim.device)
        if pool is None and self._needs_pool():
            raise ValueError(
                f"{type(self).__name__} with these settings draws its queries from the "
                f"attacker's data: give x_pool (unlabelled inputs, not the evaluation data)"
            )
        xe = ye = None
        if x_eval is not None:
            xe = victim.as_tensor(x_eval, name="x_eval")
            check_in_bounds("x_eval", xe, victim.bounds)
            if y_eval is not None:
                y_arr = y_eval if isinstance(y_eval, np.ndarray | Tensor) else np.asarray(y_eval)
                check_labels("y_eval", y_arr, victim.n_classes, xe.shape[0])
                ye = torch.as_tensor(np.asarray(y_arr) if isinstance(y_arr, np.ndarray) else y_arr)
                ye = ye.to(device=victim.device, dtype=torch.long)
        elif y_eval is not None:
            raise ValueError("y_eval was given without x_eval; give both or neither")
        start = time.perf_counter()
        n_eval = (0 if xe is None else int(xe.shape[0])) + int(n_random)
        left = getattr(victim, "queries_left", None)
        if left is not None and n_eval > left:
            # Refused before a query is spent: without the victim's answers on the
            # evaluation inputs the copy's fidelity cannot be measured.
            raise QueryBudgetExceededError(
                f"measuring the copy needs the victim's labels on {n_eval} evaluation inputs "
                f"(x_eval and n_random) but its query budget has {left} left; give fewer "
                f"x_eval, a smaller n_random or a larger query_budget"
            )
        evaluation = Evaluation(victim, xe, ye, int(n_random))
        generator = make_generator(getattr(self, "seed", None), "cpu")
        before = victim.query_count
        with victim.evaluating():
            run = self._run(victim, pool, evaluation, generator)
        queries = victim.query_count - before
        final = run.curve[-1] if run.curve else evaluation.measure(run.stolen, queries)
        result = ExtractionResult(
            stolen=run.stolen,
            attack=self.name,
            outputs=run.outputs,
            queries=queries,
            fidelity=final.fidelity,
            fidelity_random=final.fidelity_random,
            accuracy=final.accuracy,
            victim_accuracy=evaluation.victim_accuracy,
            curve=run.curve,
            eval_queries=evaluation.queries,
            n_eval=0 if xe is None else int(xe.shape[0]),
            n_random=int(n_random),
            seconds=time.perf_counter() - start,
            params=self.get_params(),
            details=dict(run.details),
        )
        if run.budget_ran_out:
            bought = (
                f"the copy was trained on the {queries} answers paid for (fidelity "
                f"{result.fidelity:.3f}); the error's partial_result holds it"
                if run.curve
                else "nothing was asked"
            )
            raise QueryBudgetExceededError(
                f"the victim's query budget ran out after {queries} of the attack's queries "
                f"({victim.query_count} spent in all): {bought}; raise query_budget or lower "
                f"queries",
                partial_result=result if run.curve else None,
            )
        return result

    # -- hooks -----------------------------------------------------------------------
    def _run(
        self,
        victim: Classifier,
        pool: Tensor | None,
        evaluation: Evaluation,
        generator: torch.Generator,
    ) -> _Run:
        raise NotImplementedError

    def _needs_pool(self) -> bool:
        return False

    def _check_victim(self, victim: Classifier) -> None:
        if self.needs_scores and not victim.has_scores:
            raise UnsupportedModelError(
                f"{type(self).__name__} needs the victim's scores; "
                f"{type(victim).__name__} answers labels only"
            )
