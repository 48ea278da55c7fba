"""Carlini–Wagner attacks (Carlini & Wagner, "Towards Evaluating the Robustness of Neural
Networks", IEEE S&P 2017): the L2 attack and an L∞ variant.

Both minimise the logit-margin objective of the paper's eq. 6 (``f_6``),
``f(x') = max(Z(x')_y - max_{i != y} Z(x')_i, -kappa)`` (untargeted; the two terms swap
roles when targeted), which is <= -kappa exactly when the model is fooled with a margin
of at least kappa.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from advml import registry
from advml.evasion._gradient import cw_margin, random_point
from advml.evasion.base import EpsScale, EvasionAttack, clip_pair
from advml.evasion.constraints import FeatureConstraints
from advml.models.base import Classifier, clip_bounds
from advml.validation import check_bool, check_number

__all__ = ["CarliniWagnerL2", "CarliniWagnerLinf", "cw_margin"]

# Carlini & Wagner's factor that keeps atanh finite at the bounds.
_TANH_SHRINK = 0.999999
# A binary-search upper bound of this size means "no success seen yet".
_NO_UPPER = 1e10


@registry.register("evasion", "cw_l2")
class CarliniWagnerL2(EvasionAttack):
    """Carlini–Wagner L2: the smallest L2 perturbation that fools the model, per sample.

    Minimises ``||x' - x||_2^2 + c * f(x')`` (Carlini & Wagner 2017, eq. 6 with ``f_6``)
    over ``x' = low + (high - low) * (tanh(w) + 1) / 2`` (§V.A's change of variables, so
    ``x'`` always lies within the model's bounds), with Adam on ``w``. The constant ``c``
    is found per sample by binary search: multiplied by 10 while the attack fails,
    bisected once an upper bound is known. Unlike the paper, each search step continues
    from the previous step's last iterate instead of restarting from ``x``, which lets
    a few dozen iterations per step do the work of thousands. Each sample stops its inner
    optimisation on its own when its objective stops improving ("abort early"), and the
    batch moves on once every sample has stopped. The result keeps, per sample, the smallest
    successful perturbation of any search step, or the unchanged input where none
    succeeded. All samples of a chunk run together with their own ``c``.

    Unbounded: there is no eps; the result's ``l2`` is what the attack needed.

    With feature constraints the change of variables maps onto each feature's own allowed
    interval (an immutable feature's is a single point, so it never moves), and a
    switch-on feature is rounded to off or on in the forward pass with the gradient of
    the unrounded value (a straight-through estimate), so every point the attack scores
    is a valid input.

    Parameters
    ----------
    confidence : float
        Margin kappa (>= 0) in logits by which the adversarial class must win; larger
        values give examples that transfer better, at a larger distance.
    steps : int
        Adam iterations per binary-search step (>= 1).
    binary_search_steps : int
        Searches for ``c`` (>= 1); each runs up to ``steps`` iterations.
    initial_const : float
        Starting ``c`` (> 0) of every sample.
    learning_rate : float
        Adam's step size in ``w`` (tanh) space (> 0). Carlini & Wagner use 0.01 with
        up to 10,000 steps; the default 0.3 suits the default 30 (pixels at the bounds
        start at ``|w| = 7.25`` and need a large step to move within a few iterations).
    abort_early : bool
        Stop a sample's inner optimisation when its objective has not decreased by
        0.01% over the last tenth of ``steps``.
    targeted : bool
        Move towards the labels given as ``y`` instead of away from them.
    constraints : FeatureConstraints or mapping, optional
        Features the attacker may not change, may only switch on, or may move within a
        narrower range (non-image data); see :class:`~advml.evasion.FeatureConstraints`.
    batch_size : int, optional
        Inputs per chunk; default sized to the input.

    Examples
    --------
    >>> from advml.evasion import CarliniWagnerL2
    >>> result = CarliniWagnerL2().generate(model, x_test, y_test)  # doctest: +SKIP
    >>> result.summary()["median_l2"]  # doctest: +SKIP
    """

    randomised = False  # draws nothing: chunks need not follow the random blocks

    def __init__(
        self,
        *,
        confidence: float = 0.0,
        steps: int = 30,
        binary_search_steps: int = 6,
        initial_const: float = 1.0,
        learning_rate: float = 0.3,
        abort_early: bool = True,
        targeted: bool = False,
        constraints: FeatureConstraints | Mapping[str, Any] | None = None,
        batch_size: int | None = None,
    ) -> None:
        check_number("confidence", confidence, low=0)
        check_number("steps", steps, low=1, integer=True)
        check_number("binary_search_steps", binary_search_steps, low=1, integer=True)
        check_number("initial_const", initial_const, low=0, low_inclusive=False)
        check_number("learning_rate", learning_rate, low=0, low_inclusive=False)
        check_bool("abort_early", abort_early)
        self._set_common(targeted=targeted, batch_size=batch_size, constraints=constraints)
        self.confidence = confidence
        self.steps = steps
        self.binary_search_steps = binary_search_steps
        self.initial_const = initial_const
        self.learning_rate = learning_rate
        self.abort_early = abort_early

    def _run(
        self, model: Classifier, x: Tensor, y: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        low, high = model.bounds
        n = x.shape[0]
        dims = tuple(range(1, x.ndim))
        rules = self._constraints
        lo: Tensor | float
        half: Tensor | float
        if rules is None:
            lo, half = low, (high - low) / 2
        else:
            lo, hi = rules.limits(x, model.bounds)  # per feature; a point if immutable
            half = (hi - lo) / 2
        switch = self._switch_on_rounding(x, model.bounds)

        def to_input(w: Tensor, rows: Tensor | slice = slice(None)) -> Tensor:
            lo_r = lo if isinstance(lo, float) else lo[rows]
            half_r = half if isinstance(half, float) else half[rows]
            out = lo_r + half_r * (torch.tanh(w) + 1)
            return out if switch is None else switch(out, rows)

        scale = half if isinstance(half, float) else half.clamp_min(1e-12)
        w0 = torch.atanh(((x - lo) / scale - 1) * _TANH_SHRINK)
        # Measure the perturbation from the image that w0 maps to, so that an untouched
        # feature has a perturbation of exactly zero (x itself differs by up to 1e-6).
        x0 = to_input(w0)
        queries = torch.zeros(n, dtype=torch.long, device=x.device)
        const = torch.full((n,), float(self.initial_const), device=x.device)
        lower = torch.zeros(n, device=x.device)
        upper = torch.full((n,), _NO_UPPER, device=x.device)
        best_l2 = torch.full((n,), float("inf"), device=x.device)
        best_delta = torch.zeros_like(x)
        check_every = max(1, self.steps // 10)
        # Every search step continues from where the previous one stopped (with fresh
        # Adam moments) rather than from x: a new c only shifts the balance of the two
        # terms, so the last iterate is a far better start, and far fewer steps suffice.
        w = w0.clone()
        for _ in range(self.binary_search_steps):
            m = torch.zeros_like(x)
            v = torch.zeros_like(x)
            succeeded = torch.zeros(n, dtype=torch.bool, device=x.device)
            previous = torch.full((n,), float("inf"), device=x.device)
            active = torch.arange(n, device=x.device)
            for step in range(1, self.steps + 1):
                wa = w[active].requires_grad_(True)
                delta = to_input(wa, active) - x0[active]
                l2_sq = delta.pow(2).sum(dims)
                logits = model.logits(x[active] + delta)
                queries[active] += 1
                margin = cw_margin(logits, y[active], self.targeted)
                objective = l2_sq + const[active] * margin.clamp(min=-self.confidence)
                (grad,) = torch.autograd.grad(objective.sum(), wa)
                with torch.no_grad():
                    # Record the iterate just evaluated before moving away from it.
                    fooled = margin.detach() <= -self.confidence
                    if self.confidence == 0:
                        fooled &= margin.detach() < 0
                    l2 = l2_sq.detach().sqrt()
                    better = fooled & (l2 < best_l2[active])
                    idx = active[better]
                    best_l2[idx] = l2[better]
                    best_delta[idx] = delta.detach()[better]
                    succeeded[active[fooled]] = True
                    # Adam (Kingma & Ba 2015, Algorithm 1) on each sample's own w.
                    ma = m[active].mul_(0.9).add_(grad, alpha=0.1)
                    va = v[active].mul_(0.999).addcmul_(grad, grad, value=0.001)
                    m[active], v[active] = ma, va
                    step_size = self.learning_rate * (1 - 0.999**step) ** 0.5 / (1 - 0.9**step)
                    w[active] = wa.detach() - step_size * ma / (va.sqrt() + 1e-8)
                    if self.abort_early and step % check_every == 0:
                        obj = objective.detach()
                        keep = obj <= previous[active] * 0.9999
                        previous[active] = obj
                        active = active[keep]
                        if active.numel() == 0:
                            break
            # Binary search on c per sample (Carlini & Wagner 2017, §V.A).
            upper = torch.where(succeeded, torch.minimum(upper, const), upper)
            lower = torch.where(succeeded, lower, torch.maximum(lower, const))
            known = upper < _NO_UPPER
            const = torch.where(known, (lower + upper) / 2, const * 10)
        return x + best_delta, queries

    def _switch_on_rounding(
        self, x: Tensor, bounds: tuple[float, float]
    ) -> Callable[[Tensor, Tensor | slice], Tensor] | None:
        """``(x_adv, rows) -> x_adv`` with switch-on features rounded to off or on in the
        forward pass and the gradient of the unrounded values; None without them."""
        rules = self._constraints
        if rules is None or not rules.switch_on:
            return None
        idx = list(rules.switch_on)
        _, hi = rules.limits(x, bounds)
        on = hi.reshape(x.shape[0], -1)[:, idx]
        start = x.reshape(x.shape[0], -1)[:, idx]

        def rounded(x_adv: Tensor, rows: Tensor | slice) -> Tensor:
            flat = x_adv.reshape(x_adv.shape[0], -1)
            cont = flat[:, idx]
            snap = torch.where(cont >= (start[rows] + on[rows]) / 2, on[rows], start[rows])
            values = cont + (snap - cont).detach()
            flat = flat.clone()
            flat[:, idx] = values
            return flat.view_as(x_adv)

        return rounded


@registry.register("evasion", "cw_linf")
class CarliniWagnerLinf(EvasionAttack):
    """Carlini–Wagner L∞ as projected gradient descent on the C&W loss, within eps.

    The formulation used by Madry et al. (2018) and later robustness evaluations, not
    the paper's tau-penalty search: sign-gradient ascent on the clamped margin
    ``-f_6 = min(max_{i != y} Z_i - Z_y, kappa)`` (Carlini & Wagner 2017, eq. 6) inside
    the L∞ ball of radius eps, from the input itself or a random point of the ball.
    The step size shrinks by half at 50% and 75% of the steps. A sample stops moving once
    it is fooled with margin ``confidence``; otherwise the iterate with the largest
    margin is kept.

    Parameters
    ----------
    eps : float
        L∞ radius of the allowed perturbation (>= 0).
    steps : int
        Gradient steps (>= 1).
    step_size : float, optional
        Initial step (> 0); default ``eps / 4``.
    confidence : float
        Margin kappa (>= 0) in logits by which the adversarial class must win.
    random_start : bool
        Start from a uniformly random point of the ball instead of the input.
    targeted : bool
        Move towards the labels given as ``y``.
    seed : int, optional
        Seed of the random start.
    constraints : FeatureConstraints or mapping, optional
        Features the attacker may not change, may only switch on, or may move within a
        narrower range (non-image data); see :class:`~advml.evasion.FeatureConstraints`.
    eps_scale : {"absolute", "relative"}, default "absolute"
        ``eps`` in the data's units, or as a fraction of each feature's range (the ball
        then scales per feature; see :data:`~advml.evasion.base.EpsScale`).
    batch_size : int, optional
        Inputs per chunk; default sized to the input.
    """

    def __init__(
        self,
        *,
        eps: float = 0.3,
        steps: int = 100,
        step_size: float | None = None,
        confidence: float = 0.0,
        random_start: bool = False,
        targeted: bool = False,
        seed: int | None = 0,
        constraints: FeatureConstraints | Mapping[str, Any] | None = None,
        eps_scale: EpsScale = "absolute",
        batch_size: int | None = None,
    ) -> None:
        check_number("eps", eps, low=0)
        check_number("steps", steps, low=1, integer=True)
        if step_size is not None:
            check_number("step_size", step_size, low=0, low_inclusive=False)
        check_number("confidence", confidence, low=0)
        check_bool("random_start", random_start)
        self._set_common(
            targeted=targeted,
            batch_size=batch_size,
            seed=seed,
            constraints=constraints,
            eps_scale=eps_scale,
        )
        self.eps = eps
        self.steps = steps
        self.step_size = step_size
        self.confidence = confidence
        self.random_start = random_start

    def _run(
        self, model: Classifier, x: Tensor, y: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        low, high = clip_bounds(model)  # per-feature tensors when the model has them
        n = x.shape[0]
        queries = torch.zeros(n, dtype=torch.long, device=x.device)
        if self.eps == 0:
            return x.clone(), queries
        lo = (x - self.eps).clamp_(min=low)
        hi = (x + self.eps).clamp_(max=high)
        rules = self._constraints
        if rules is not None:  # the ball within what each feature may take
            allowed_lo, allowed_hi = rules.limits(x, model.bounds)
            lo, hi = torch.max(lo, allowed_lo), torch.min(hi, allowed_hi)
        x_adv = x.clone()
        if self.random_start:
            x_adv = torch.min(torch.max(random_point(x, self.eps, "inf", generator), lo), hi)
            if rules is not None:
                x_adv = self._finalise(x_adv, x, clip_pair(low, high))
        best = x_adv.clone()
        best_margin = torch.full((n,), float("-inf"), device=x.device)
        step = self.step_size if self.step_size is not None else self.eps / 4
        active = torch.arange(n, device=x.device)
        for k in range(self.steps + 1):
            xa = x_adv[active].requires_grad_(True)
            logits = model.logits(xa)
            queries[active] += 1
            gain = -cw_margin(logits, y[active], self.targeted)
            (grad,) = torch.autograd.grad(gain.clamp(max=self.confidence).sum(), xa)
            with torch.no_grad():
                gain = gain.detach()
                better = gain > best_margin[active]
                best[active[better]] = xa.detach()[better]
                best_margin[active[better]] = gain[better]
                done = gain >= self.confidence
                if self.confidence == 0:
                    done &= gain > 0
                keep = ~done
                active, xa, grad = active[keep], xa.detach()[keep], grad[keep]
                if active.numel() == 0 or k == self.steps:
                    break
                if k in (self.steps // 2, (3 * self.steps) // 4):
                    step /= 2
                xa = xa + step * grad.sign()
                xa = torch.min(torch.max(xa, lo[active]), hi[active])
                if rules is not None:
                    # A valid input at every step: a sample stops once fooled.
                    xa = self._finalise(xa, x[active], clip_pair(low, high))
                x_adv[active] = xa
        return best, queries
