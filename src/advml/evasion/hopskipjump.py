"""HopSkipJump (Chen, Jordan & Wainwright, IEEE S&P 2020): a labels-only attack.

The attacker sees only the predicted label. From an adversarial starting point it
walks along the decision boundary towards the original input: a binary search finds
the boundary, a Monte-Carlo estimate of the boundary's normal from the labels of
random probes around it gives a direction, a geometric step along that direction
leaves the boundary on the adversarial side, and a new binary search comes back to
it, each round closer to the original (Algorithm 1 of the paper).

All samples of a chunk move in lockstep: every query is one batched model call over
the samples that still need it, never one sample at a time. Each sample's queries are
counted exactly and stop at ``max_queries``, or earlier when the model's
``query_budget`` runs out (the last batches shrink to what it still pays for); what a
sample has then is adversarial.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import Tensor

from advml import registry
from advml.evasion.base import (
    EvasionAttack,
    affordable,
    budget_ran_out,
    queries_left,
)
from advml.evasion.constraints import FeatureConstraints
from advml.models.base import Classifier
from advml.validation import check_choice, check_number

__all__ = ["HopSkipJump"]

# Probe values per batched model call of the gradient estimate (16 MB of float32).
_PROBE_VALUES = 4_000_000


class _Oracle:
    """The labels-only view of the model, with exact per-sample query counts."""

    def __init__(self, model: Classifier, y: Tensor, targeted: bool, max_queries: int) -> None:
        self.model = model
        self.y = y
        self.targeted = targeted
        self.max_queries = max_queries
        self.queries = torch.zeros(y.shape[0], dtype=torch.long, device=y.device)

    def remaining(self, idx: Tensor) -> Tensor:
        return self.max_queries - self.queries[idx]

    def is_adversarial(self, points: Tensor, owner: Tensor) -> Tensor:
        """Labels-only decision for ``points``, each charged to sample ``owner[i]``."""
        with torch.no_grad():
            labels = self.model.predict_labels(points)
        self.queries.index_add_(0, owner, torch.ones_like(owner))
        target = self.y[owner]
        return labels == target if self.targeted else labels != target


@registry.register("evasion", "hopskipjump")
class HopSkipJump(EvasionAttack):
    """Minimum-norm adversarial examples from the model's labels alone.

    Parameters
    ----------
    norm : {"2", "inf"}
        Norm the attack minimises.
    max_queries : int
        Model queries per sample, everything included (>= 1); 1,000 is a small budget,
        the paper reports curves up to 25,000.
    init_evals : int
        Probes of the first gradient estimate (>= 1); round ``t`` uses
        ``init_evals * sqrt(t)`` (the paper's ``B_0 = 100``).
    max_evals : int
        Most probes of one gradient estimate (>= 1).
    gamma : float
        Sets the binary-search precision ``theta = gamma / d^(3/2)`` (L2) or
        ``gamma / d^2`` (L∞) and with it the probe radius (> 0; paper: 1).
    init_tries : int
        Random uniform inputs tried per sample to find an adversarial start (>= 1)
        where no input of the same chunk already has a suitable label (the nearest
        such input is the start: the model labels it differently, or as the target).
    targeted : bool
        Move towards the labels given as ``y``.
    constraints : FeatureConstraints or mapping, optional
        Features that may not change, may only be switched on, or have narrower ranges.
    seed : int, optional
        Seed of the random starts and probes; the same seed gives the same result.
    batch_size : int, optional
        Samples per chunk (all moved together); default sized to the input.

    Examples
    --------
    >>> from advml.evasion import HopSkipJump
    >>> result = HopSkipJump(max_queries=1000).generate(model, x_test, y_test)  # doctest: +SKIP
    >>> result.l2[result.success], result.queries  # doctest: +SKIP
    """

    needs_gradients = False
    needs_scores = False

    def __init__(
        self,
        *,
        norm: Literal["2", "inf"] = "2",
        max_queries: int = 1000,
        init_evals: int = 100,
        max_evals: int = 10_000,
        gamma: float = 1.0,
        init_tries: int = 50,
        targeted: bool = False,
        constraints: FeatureConstraints | Mapping[str, Any] | None = None,
        seed: int | None = 0,
        batch_size: int | None = None,
    ) -> None:
        check_choice("norm", norm, ("2", "inf"))
        check_number("max_queries", max_queries, low=1, integer=True)
        check_number("init_evals", init_evals, low=1, integer=True)
        check_number("max_evals", max_evals, low=1, integer=True)
        check_number("gamma", gamma, low=0, low_inclusive=False)
        check_number("init_tries", init_tries, low=1, integer=True)
        self._set_common(
            targeted=targeted, batch_size=batch_size, seed=seed, constraints=constraints
        )
        self.norm = norm
        self.max_queries = max_queries
        self.init_evals = init_evals
        self.max_evals = max_evals
        self.gamma = gamma
        self.init_tries = init_tries

    # -- helpers ---------------------------------------------------------------------
    def _dist(self, a: Tensor, b: Tensor) -> Tensor:
        diff = (a - b).flatten(1)
        return diff.abs().amax(1) if self.norm == "inf" else diff.norm(dim=1)

    def _feasible(self, points: Tensor, origin: Tensor, bounds: tuple[float, float]) -> Tensor:
        # The final projection (switch-on features rounded to off or on): every query is
        # judged as the point would be returned, so what the search finds adversarial
        # stays adversarial.
        return self._finalise(points, origin, bounds)

    # -- the attack ------------------------------------------------------------------
    def _run(
        self, model: Classifier, x: Tensor, y: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        n = x.shape[0]
        d = x[0].numel()
        oracle = _Oracle(model, y, self.targeted, self.max_queries)
        everyone = torch.arange(n, device=x.device)
        with torch.no_grad():
            first = model.predict_labels(x)
        oracle.queries += 1
        done = (first == y) if self.targeted else (first != y)
        x_adv = x.clone()
        start, found = self._initialise(model, x, y, first, done, oracle, generator)
        idx = everyone[found & ~done]
        if idx.numel() == 0:
            return x_adv, oracle.queries
        # theta: binary-search precision (paper §4.1 and Theorem 2).
        theta = self.gamma / (d**1.5 if self.norm == "2" else d**2)
        best = self._binary_search(x[idx], start[idx], idx, oracle, theta, model.bounds)
        best_dist = self._dist(best, x[idx])
        current, dist = best.clone(), best_dist.clone()
        span = model.bounds[1] - model.bounds[0]
        t = 0
        while True:
            alive = oracle.remaining(idx) > 0
            if not alive.any():
                break
            if queries_left(model) == 0:
                budget_ran_out()
                break
            t += 1
            sel = alive.nonzero().squeeze(1)
            sub = idx[sel]
            if t == 1:
                delta = torch.full((sel.numel(),), 0.1 * span, device=x.device)
            else:
                scale = math.sqrt(d) * theta if self.norm == "2" else d * theta
                delta = scale * dist[sel]
            evals = min(int(self.init_evals * math.sqrt(t)), self.max_evals)
            grad = self._estimate_gradient(
                current[sel], x[sub], sub, oracle, delta, evals, generator, model.bounds
            )
            if self.norm == "inf":
                direction = grad.sign()
            else:
                direction = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(
                    -1, *([1] * (grad.dim() - 1))
                )
            # Geometric progression of the step size (paper §4.2): halve until the step
            # lands on the adversarial side.
            step = dist[sel] / math.sqrt(t)
            moved = self._geometric_step(
                current[sel], x[sub], direction, step, sub, oracle, model.bounds
            )
            boundary = self._binary_search(x[sub], moved, sub, oracle, theta, model.bounds)
            new_dist = self._dist(boundary, x[sub])
            current[sel], dist[sel] = boundary, new_dist
            better = new_dist < best_dist[sel]
            best[sel[better]] = boundary[better]
            best_dist[sel[better]] = new_dist[better]
        x_adv[idx] = best
        return x_adv, oracle.queries

    def _initialise(
        self,
        model: Classifier,
        x: Tensor,
        y: Tensor,
        first: Tensor,
        done: Tensor,
        oracle: _Oracle,
        generator: torch.Generator,
    ) -> tuple[Tensor, Tensor]:
        """An adversarial starting point per sample, where one is found."""
        start = x.clone()
        found = done.clone()
        if self._constraints is None:
            # The nearest input of this chunk the model already labels as the goal
            # needs: no query, and usually a closer start than noise. (Not with
            # constraints: another input differs in features this one may not change.)
            goal = first[None, :] == y[:, None]  # (sample, candidate)
            if not self.targeted:
                goal = ~goal
            dists = torch.cdist(x.flatten(1), x.flatten(1)).masked_fill(~goal, math.inf)
            nearest = dists.argmin(1)
            ok = torch.isfinite(dists.gather(1, nearest[:, None]).squeeze(1)) & ~found
            start[ok] = x[nearest[ok]]
            found |= ok
        low, high = model.bounds
        for _ in range(self.init_tries):
            todo = ~found & (oracle.remaining(torch.arange(x.shape[0], device=x.device)) > 1)
            idx = affordable(model, todo.nonzero().squeeze(1))
            if idx.numel() == 0:
                break
            noise = torch.rand(
                (idx.numel(), *x.shape[1:]), generator=generator, device=x.device, dtype=x.dtype
            )
            noise = self._feasible(low + (high - low) * noise, x[idx], model.bounds)
            hit = oracle.is_adversarial(noise, idx)
            start[idx[hit]] = noise[hit]
            found[idx[hit]] = True
        return start, found

    def _binary_search(
        self,
        x: Tensor,
        x_adv: Tensor,
        owner: Tensor,
        oracle: _Oracle,
        theta: float,
        bounds: tuple[float, float],
    ) -> Tensor:
        """The boundary point between ``x`` (not adversarial) and ``x_adv`` (adversarial).

        L2: along the segment; L∞: by clipping ``x_adv`` to a shrinking box around ``x``
        (paper §3.2). Returns the adversarial end of the final interval.
        """
        n = x.shape[0]
        shape = (-1, *([1] * (x.dim() - 1)))
        if self.norm == "2":
            high = torch.ones(n, device=x.device)
            threshold = torch.full((n,), theta, device=x.device)
        else:
            high = self._dist(x_adv, x)
            threshold = (high * theta).clamp_min(1e-12)
        low = torch.zeros_like(high)

        def blend(r: Tensor, rows: Tensor) -> Tensor:
            if self.norm == "2":
                a = r.view(shape)
                return (1 - a) * x[rows] + a * x_adv[rows]
            rr = r.view(shape)
            return torch.max(torch.min(x_adv[rows], x[rows] + rr), x[rows] - rr)

        while True:
            rows = (((high - low) > threshold) & (oracle.remaining(owner) > 0)).nonzero()
            rows = affordable(oracle.model, rows.squeeze(1))
            if rows.numel() == 0:
                break
            mid = (high[rows] + low[rows]) / 2
            points = self._feasible(blend(mid, rows), x[rows], bounds)
            adv = oracle.is_adversarial(points, owner[rows])
            high[rows] = torch.where(adv, mid, high[rows])
            low[rows] = torch.where(adv, low[rows], mid)
        everyone = torch.arange(n, device=x.device)
        return self._feasible(blend(high, everyone), x, bounds)

    def _estimate_gradient(
        self,
        point: Tensor,
        x: Tensor,
        owner: Tensor,
        oracle: _Oracle,
        delta: Tensor,
        evals: int,
        generator: torch.Generator,
        bounds: tuple[float, float],
    ) -> Tensor:
        """Monte-Carlo estimate of the boundary's normal at ``point`` (paper eq. 9-10).

        ``evals`` random unit directions per sample (fewer where the sample's budget is
        nearly spent), labels of the probes ``point + delta * u`` as ±1, with the mean
        subtracted as a baseline to cut the variance.
        """
        n, d = point.shape[0], point[0].numel()
        counts = oracle.remaining(owner).clamp(max=evals, min=0)
        left = queries_left(oracle.model)
        if left is not None and int(counts.sum()) > left:
            # The model's budget ends within this estimate: the first samples get their
            # probes, the rest what is left (the estimate works with any count).
            before = counts.cumsum(0) - counts
            counts = torch.minimum(counts, (left - before).clamp_min(0))
            budget_ran_out()
        grad = torch.zeros(n, d, device=point.device, dtype=point.dtype)
        mask = None
        if self._constraints is not None:
            mask = self._constraints.mutable_mask(d, point.device).to(point.dtype)
        per_call = max(1, _PROBE_VALUES // max(1, evals * d))
        for s in range(0, n, per_call):
            rows = torch.arange(s, min(n, s + per_call), device=point.device)
            k = rows.numel()
            shape = (k, evals, d)
            if self.norm == "2":
                u = torch.randn(shape, generator=generator, device=point.device, dtype=point.dtype)
            else:
                u = torch.rand(shape, generator=generator, device=point.device, dtype=point.dtype)
                u = 2 * u - 1
            if mask is not None:
                u = u * mask
            u = u / u.norm(dim=2, keepdim=True).clamp_min(1e-12)
            base = point[rows].reshape(k, 1, d)
            probes = base + delta[rows].view(k, 1, 1) * u
            valid = torch.arange(evals, device=point.device)[None, :] < counts[rows][:, None]
            flat_probes = probes[valid].view(-1, *point.shape[1:])
            owners = rows[:, None].expand(k, evals)[valid]
            flat_probes = self._feasible(flat_probes, x[owners], bounds)
            # The direction actually probed, after clipping to the bounds.
            u_eff = torch.zeros_like(u)
            u_eff[valid] = (flat_probes.reshape(-1, d) - base.expand(k, evals, d)[valid]) / delta[
                owners
            ].view(-1, 1)
            if flat_probes.shape[0] == 0:
                continue
            adv = oracle.is_adversarial(flat_probes, owner[owners])
            sign = torch.zeros(k, evals, device=point.device, dtype=point.dtype)
            sign[valid] = adv.to(point.dtype) * 2 - 1
            used = valid.sum(1).clamp_min(1).to(point.dtype)
            mean = sign.sum(1) / used
            # Baseline (paper eq. 10) unless every probe agreed.
            centred = torch.where((mean.abs() == 1)[:, None], sign, sign - mean[:, None])
            centred = centred * valid.to(point.dtype)
            grad[rows] = (centred[:, :, None] * u_eff).sum(1) / used[:, None]
        return grad.view_as(point)

    def _geometric_step(
        self,
        point: Tensor,
        x: Tensor,
        direction: Tensor,
        step: Tensor,
        owner: Tensor,
        oracle: _Oracle,
        bounds: tuple[float, float],
    ) -> Tensor:
        """``point + step * direction`` with ``step`` halved until that is adversarial;
        ``point`` itself where no step is (or the budget runs out first)."""
        shape = (-1, *([1] * (point.dim() - 1)))
        out = point.clone()
        pending = torch.ones(point.shape[0], dtype=torch.bool, device=point.device)
        step = step.clone()
        for _ in range(30):
            rows = (pending & (oracle.remaining(owner) > 0)).nonzero().squeeze(1)
            rows = affordable(oracle.model, rows)
            if rows.numel() == 0:
                break
            trial = point[rows] + step[rows].view(shape) * direction[rows]
            trial = self._feasible(trial, x[rows], bounds)
            adv = oracle.is_adversarial(trial, owner[rows])
            out[rows[adv]] = trial[adv]
            pending[rows[adv]] = False
            step[rows[~adv]] /= 2
        return out
