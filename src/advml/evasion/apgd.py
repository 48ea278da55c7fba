"""Auto-PGD (Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble
of diverse parameter-free attacks", ICML 2020)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import Tensor

from advml import registry
from advml.evasion._gradient import ascent_direction, cw_margin, loss_per_sample, project_ball
from advml.evasion.base import EpsScale, EvasionAttack, Norm, clip_pair
from advml.evasion.constraints import FeatureConstraints
from advml.models.base import Classifier, clamp_to, clip_bounds
from advml.validation import check_choice, check_number

__all__ = ["APGD", "checkpoints", "dlr_loss"]

_MOMENTUM = 0.75  # alpha of Croce & Hein 2020, eq. 4
_RHO = 0.75  # rho of condition 1, §3.2


def checkpoints(steps: int) -> list[int]:
    """Iterations at which APGD may halve its step (Croce & Hein 2020, §3.2).

    ``w_j = ceil(p_j * steps)`` with ``p_0 = 0``, ``p_1 = 0.22`` and
    ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``.
    """
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    # Rounded before the ceiling: in floating point 0.57 * 100 is 57.000000000000014,
    # which would put the checkpoint at 58 instead of the paper's 57.
    points = sorted({math.ceil(round(q * steps, 9)) for q in p[1:] if q <= 1})
    return [w for w in points if 0 < w < steps]


def dlr_loss(logits: Tensor, y: Tensor, targeted: bool) -> Tensor:
    """The Difference of Logits Ratio loss per sample (Croce & Hein 2020, eqs. 5 and 6).

    Untargeted: ``-(z_y - max_{i != y} z_i) / (z_π1 - z_π3)``, with ``z`` sorted
    decreasingly; invariant to shifting and scaling the logits. Targeted (``y`` holds the
    targets): ``-(max_{i != t} z_i - z_t) / (z_π1 - (z_π3 + z_π4) / 2)`` — the paper
    uses the true label where this uses the best other class, which advml's targeted
    calls do not know. With too few classes for the denominator (fewer than 3, or 4
    targeted) it is 1, and the loss is the plain logit margin.
    """
    numerator = cw_margin(logits, y, targeted)
    z = logits.sort(dim=1, descending=True).values
    k = logits.shape[1]
    if targeted:
        scale = z[:, 0] - (z[:, 2] + z[:, 3]) / 2 if k >= 4 else None
    else:
        scale = z[:, 0] - z[:, 2] if k >= 3 else None
    if scale is None:
        return -numerator
    return -numerator / (scale + 1e-12)


@registry.register("evasion", "apgd")
class APGD(EvasionAttack):
    """PGD with momentum and a step size that adapts itself, per sample.

    From a random point of the ε-ball, the first step is ``x_1 = P(x_0 + η ∇)`` with
    ``η = 2 eps``; then ``z = P(x_k + η ∇)`` and
    ``x_{k+1} = P(x_k + α (z - x_k) + (1 - α)(x_k - x_{k-1}))`` with α = 0.75 (Croce &
    Hein 2020, eq. 4; ``∇`` is the gradient's sign for L∞ and its L2-normalised value for
    L2). At the checkpoints of :func:`checkpoints` a sample's step is halved, and it
    restarts from its best point so far, when fewer than 75% of the steps since the last
    checkpoint raised its loss, or when neither its step nor its best loss changed since
    the last checkpoint (§3.2, conditions 1 and 2). A sample stops as soon as it is
    fooled, which keeps the cost to the inputs that resist. Restarts run the attack again
    from new random points on the samples not yet fooled.

    Parameters
    ----------
    eps : float
        Radius of the allowed perturbation (>= 0).
    norm : {"inf", "2"}
        Norm of the ε-ball.
    steps : int
        Iterations per restart (>= 1); 100 in AutoAttack.
    loss : {"ce", "dlr"}
        Cross-entropy, or the Difference of Logits Ratio (:func:`dlr_loss`), which is
        invariant to the scale of the logits and so resists that kind of gradient masking.
    restarts : int
        Number of runs from random starting points (>= 1).
    targeted : bool
        Move towards the labels given as ``y``.
    seed : int, optional
        Seed of the random starts.
    constraints : FeatureConstraints or mapping, optional
        Features the attacker may not change, may only switch on, or may move within a
        narrower range (non-image data); see :class:`~advml.evasion.FeatureConstraints`.
    eps_scale : {"absolute", "relative"}, default "absolute"
        ``eps`` in the data's units, or as a fraction of each feature's range (the ball
        then scales per feature; see :data:`~advml.evasion.base.EpsScale`).
    batch_size : int, optional
        Inputs per chunk; default sized to the input.

    Examples
    --------
    >>> from advml.evasion import APGD
    >>> result = APGD(eps=0.3, loss="dlr").generate(model, x_test, y_test)  # doctest: +SKIP
    >>> 1 - result.success_rate  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        eps: float = 0.3,
        norm: Norm = "inf",
        steps: int = 100,
        loss: Literal["ce", "dlr"] = "ce",
        restarts: int = 1,
        targeted: bool = False,
        seed: int | None = 0,
        constraints: FeatureConstraints | Mapping[str, Any] | None = None,
        eps_scale: EpsScale = "absolute",
        batch_size: int | None = None,
    ) -> None:
        check_number("eps", eps, low=0)
        check_choice("norm", norm, ("inf", "2"))
        check_number("steps", steps, low=1, integer=True)
        check_choice("loss", loss, ("ce", "dlr"))
        check_number("restarts", restarts, low=1, integer=True)
        self._set_common(
            targeted=targeted,
            batch_size=batch_size,
            seed=seed,
            constraints=constraints,
            eps_scale=eps_scale,
        )
        self.eps = eps
        self.norm = norm
        self.steps = steps
        self.loss = loss
        self.restarts = restarts

    def _run(
        self, model: Classifier, x: Tensor, y: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        queries = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        x_adv = x.clone()
        if self.eps == 0:
            return x_adv, queries
        todo = torch.arange(x.shape[0], device=x.device)
        for _ in range(self.restarts):
            found, fooled = self._attack(model, x[todo], y[todo], generator, queries, todo)
            x_adv[todo] = found
            todo = todo[~fooled]
            if todo.numel() == 0:
                break
        return x_adv, queries

    # -- one run -----------------------------------------------------------------------
    def _objective(self, logits: Tensor, y: Tensor) -> Tensor:
        if self.loss == "dlr":
            return dlr_loss(logits, y, self.targeted)
        return loss_per_sample(logits, y, "ce", self.targeted)

    def _evaluate(
        self, model: Classifier, x_adv: Tensor, y: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Loss, its gradient and the fooled mask at ``x_adv``."""
        xa = x_adv.detach().clone().requires_grad_(True)
        logits = model.logits(xa)
        loss = self._objective(logits, y)
        (grad,) = torch.autograd.grad(loss.sum(), xa)
        pred = logits.detach().argmax(1)
        fooled = pred == y if self.targeted else pred != y
        return loss.detach(), grad, fooled

    def _into_ball(self, z: Tensor, x: Tensor, low: float | Tensor, high: float | Tensor) -> Tensor:
        if self._constraints is not None:
            # Every iterate a valid input (switch-on features off or on), so a sample
            # that stops once fooled is fooled by what the attack returns.
            return self._finalise(z, x, clip_pair(low, high))
        return project_ball(z, x, eps=self.eps, norm=self.norm, low=low, high=high)

    def _attack(
        self,
        model: Classifier,
        x: Tensor,
        y: Tensor,
        generator: torch.Generator,
        queries: Tensor,
        index: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """One APGD run on ``x``; returns the output and which samples were fooled."""
        low, high = clip_bounds(model)  # per-feature tensors when the model has them
        n = x.shape[0]
        shape = (-1,) + (1,) * (x.ndim - 1)
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        if self.norm == "inf":
            t = 2 * noise - 1
            start = x + self.eps * t / t.flatten(1).abs().amax(1).clamp_min(1e-12).view(shape)
        else:
            t = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            start = x + self.eps * t / t.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape)
        x_cur = (
            clamp_to(start, low, high)
            if self._constraints is None
            else self._into_ball(start, x, low, high)
        )
        loss, grad, fooled = self._evaluate(model, x_cur, y)
        queries[index] += 1
        x_out = x_cur.clone()  # fooling point, else the best point
        x_best, grad_best, loss_best = x_cur.clone(), grad.clone(), loss.clone()
        x_prev = x_cur.clone()
        step = torch.full((n,), 2.0 * self.eps, device=x.device)
        increases = torch.zeros(n, device=x.device)
        loss_at_check = loss_best.clone()
        halved_at_check = torch.ones(n, dtype=torch.bool, device=x.device)
        marks = set(checkpoints(self.steps))
        since = 0
        active = (~fooled).nonzero().squeeze(1)
        for i in range(self.steps):
            if active.numel() == 0:
                break
            xa, xp, xo = x_cur[active], x_prev[active], x[active]
            s = step[active].view(shape)
            # grad[active] is a copy (rows picked by index): the direction may overwrite it.
            z = self._into_ball(xa + s * ascent_direction(grad[active], self.norm), xo, low, high)
            if i > 0:
                z = self._into_ball(
                    xa + _MOMENTUM * (z - xa) + (1 - _MOMENTUM) * (xa - xp), xo, low, high
                )
            x_prev[active] = xa
            x_cur[active] = z
            new_loss, new_grad, new_fooled = self._evaluate(model, z, y[active])
            queries[index[active]] += 1
            grad[active] = new_grad
            increases[active] += (new_loss > loss[active]).float()
            loss[active] = new_loss
            better = new_loss > loss_best[active]
            idx = active[better]
            x_best[idx], grad_best[idx], loss_best[idx] = (
                z[better],
                new_grad[better],
                new_loss[better],
            )
            hit = active[new_fooled]
            fooled[hit] = True
            x_out[hit] = z[new_fooled]
            since += 1
            if i + 1 in marks:
                # Condition 1: too few of the steps since the last checkpoint helped;
                # condition 2: the step was not halved and the best loss did not move.
                few = increases[active] < _RHO * since
                stuck = ~halved_at_check[active] & (loss_at_check[active] >= loss_best[active])
                halve = few | stuck
                halved_at_check[active] = halve
                loss_at_check[active] = loss_best[active]
                increases[active] = 0
                since = 0
                h = active[halve]
                step[h] /= 2
                x_cur[h] = x_best[h]
                grad[h] = grad_best[h]
            active = active[~new_fooled]
        still = (~fooled).nonzero().squeeze(1)
        x_out[still] = x_best[still]
        return x_out, fooled
