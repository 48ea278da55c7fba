"""The gradient-step loop shared by FGSM, BIM and PGD, and the pieces of it that APGD and
the Carlini–Wagner attacks use too (the logit margin, the step direction, the random
start, the projection onto the ε-ball).

The loop is kept lean on purpose: per step one forward and one backward pass with respect
to the input (``torch.autograd.grad``, so the model's parameter gradients are untouched),
then three in-place tensor operations. The cost over the raw gradient work is measured in
``benchmarks/evasion_speed.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor
from torch.nn import functional as F

from advml.evasion.base import Norm, project
from advml.models.base import Classifier, clamp_to, clip_bounds
from advml.validation import check_choice, check_number

Loss = Literal["ce", "margin"]


def check_settings(
    *, eps: float, norm: str, loss: str, steps: int = 1, step_size: float | None = None
) -> None:
    """Validate the settings every gradient attack shares (names the bad one)."""
    check_number("eps", eps, low=0)
    check_number("steps", steps, low=1, integer=True)
    if step_size is not None:
        check_number("step_size", step_size, low=0, low_inclusive=False)
    check_choice("norm", norm, ("inf", "2"))
    check_choice("loss", loss, ("ce", "margin"))


def step_size_for(eps: float, steps: int, step_size: float | None) -> float:
    """``step_size``, or Madry et al.'s ``2.5 * eps / steps``: enough to reach the ball's
    boundary from anywhere inside it and then move along it."""
    return step_size if step_size is not None else 2.5 * eps / steps


def cw_margin(logits: Tensor, y: Tensor, targeted: bool) -> Tensor:
    """How far each sample is from the attack's goal in logits (Carlini & Wagner 2017,
    eq. 6 without the clamp).

    ``Z_y - max_{i != y} Z_i`` untargeted, ``max_{i != t} Z_i - Z_t`` targeted: positive
    while the goal is not reached, negative once it is.
    """
    own = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
    return other - own if targeted else own - other


def loss_per_sample(logits: Tensor, y: Tensor, loss: Loss, targeted: bool) -> Tensor:
    """The objective each step ascends, per sample.

    ``"ce"``: cross-entropy of the label (negated when targeted). ``"margin"``: the
    logit margin of Carlini & Wagner (2017, eq. 6 without the clamp), best other class
    minus the label's class (reversed when targeted): :func:`cw_margin` negated.
    """
    if loss == "ce":
        ce = F.cross_entropy(logits, y, reduction="none")
        return -ce if targeted else ce
    return -cw_margin(logits, y, targeted)


def summed_loss(logits: Tensor, y: Tensor, loss: Loss, targeted: bool) -> Tensor:
    """``loss_per_sample(...).sum()`` in one reduction: the objective of a step whose
    per-sample values are not needed (the samples' gradients are independent, so the
    gradient of the sum is each sample's own). Cross-entropy reduced inside the kernel
    saves the separate sum and its backward expand on every step."""
    if loss == "ce":
        ce = F.cross_entropy(logits, y, reduction="sum")
        return -ce if targeted else ce
    return -cw_margin(logits, y, targeted).sum()


def ascent_direction(grad: Tensor, norm: str) -> Tensor:
    """The step direction of ``grad``: its sign for L∞, its L2-normalised value for L2.

    Overwrites ``grad`` for L∞ (one operation fewer in the loop); pass a copy to keep it.
    """
    if norm == "inf":
        return grad.sign_()
    flat = grad.flatten(1)
    return (flat / flat.norm(p=2, dim=1, keepdim=True).clamp_min(1e-12)).view_as(grad)


def random_point(x: Tensor, eps: float, norm: str, generator: torch.Generator) -> Tensor:
    """A point drawn uniformly from the ``norm``-ball of radius ``eps`` around each row.

    Not clipped to the bounds (the caller's projection does that).
    """
    if norm == "inf":
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return x + (2 * noise - 1) * eps
    # Uniform in the L2 ball: a Gaussian direction, radius eps * U^(1/d).
    d = x[0].numel()
    direction = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype).flatten(1)
    direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-12)
    radius = torch.rand(x.shape[0], 1, generator=generator, device=x.device, dtype=x.dtype) ** (
        1 / d
    )
    return x + (eps * radius * direction).view_as(x)


def project_ball(
    x_adv: Tensor,
    x: Tensor,
    *,
    eps: float,
    norm: Norm,
    low: float | Tensor,
    high: float | Tensor,
) -> Tensor:
    """``x_adv`` projected onto the ``norm``-ball of radius ``eps`` around ``x``, then
    clipped to ``[low, high]`` (two floats, or per-feature tensors that broadcast over
    the rows); any subset of rows, as long as both are the same rows."""
    return clamp_to(project(x_adv, x, eps, norm), low, high, inplace=True)


Projection = Callable[[Tensor, Tensor], Tensor]
"""``(x_adv, x) -> x_adv`` applied after every step: onto the allowed set around ``x``."""


def ball_projection(
    x: Tensor,
    *,
    eps: float,
    norm: Norm,
    low: float | Tensor,
    high: float | Tensor,
    any_rows: bool,
) -> Projection:
    """The loop's own projection onto the ε-ball and the bounds.

    With ``any_rows=False`` the L∞ box of ``x`` within the bounds is computed once and
    each step is one clamp, but the projection then only takes all rows of ``x``; loops
    that drop rows (early stopping) ask for ``any_rows=True``.
    """
    if norm == "inf" and not any_rows:
        lo = (x - eps).clamp_(min=low)
        hi = (x + eps).clamp_(max=high)
        return lambda x_adv, _x: x_adv.clamp_(lo, hi)
    return lambda x_adv, x0: project_ball(x_adv, x0, eps=eps, norm=norm, low=low, high=high)


def iterate(
    model: Classifier,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    norm: Norm,
    step_size: float,
    steps: int,
    targeted: bool,
    loss: Loss,
    random_start: bool,
    early_stop: bool,
    generator: torch.Generator,
    project: Projection | None = None,
) -> tuple[Tensor, Tensor]:
    """Run ``steps`` projected gradient steps from ``x``; return ``x_adv`` and queries.

    ``project(x_adv, x)``, when given, replaces the loop's own projection onto the ball
    and the bounds after every step (attacks with feature constraints pass
    ``EvasionAttack._step_projection``); it must accept any subset of rows.
    """
    low, high = clip_bounds(model)  # per-feature tensors when the model has them
    queries = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    if eps == 0 or steps == 0:
        return x.clone(), queries
    if project is None:
        project = ball_projection(x, eps=eps, norm=norm, low=low, high=high, any_rows=early_stop)
    x_adv = project(random_point(x, eps, norm, generator) if random_start else x.clone(), x)
    if early_stop:
        return _iterate_early_stop(
            model,
            x,
            y,
            x_adv,
            queries,
            norm=norm,
            step_size=step_size,
            steps=steps,
            targeted=targeted,
            loss=loss,
            project=project,
        )
    for _ in range(steps):
        x_adv.requires_grad_(True)
        objective = summed_loss(model.logits(x_adv), y, loss, targeted)
        (grad,) = torch.autograd.grad(objective, x_adv)
        x_adv = project(x_adv.detach().add_(ascent_direction(grad, norm), alpha=step_size), x)
    queries += steps
    return x_adv, queries


def _iterate_early_stop(
    model: Classifier,
    x: Tensor,
    y: Tensor,
    x_adv: Tensor,
    queries: Tensor,
    *,
    norm: str,
    step_size: float,
    steps: int,
    targeted: bool,
    loss: Loss,
    project: Projection,
) -> tuple[Tensor, Tensor]:
    """As :func:`iterate`, but a sample stops moving once the model is fooled."""
    active = torch.arange(x.shape[0], device=x.device)
    for _ in range(steps):
        xa = x_adv[active].requires_grad_(True)
        logits = model.logits(xa)
        queries[active] += 1
        pred = logits.detach().argmax(1)
        done = (pred == y[active]) if targeted else (pred != y[active])
        objective = loss_per_sample(logits, y[active], loss, targeted).sum()
        (grad,) = torch.autograd.grad(objective, xa)
        keep = ~done
        active, xa, grad = active[keep], xa.detach()[keep], grad[keep]
        if active.numel() == 0:
            break
        x_adv[active] = project(xa.add_(ascent_direction(grad, norm), alpha=step_size), x[active])
    return x_adv, queries
