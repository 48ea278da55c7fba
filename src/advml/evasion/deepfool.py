"""DeepFool (Moosavi-Dezfooli, Fawzi & Frossard, "DeepFool: a simple and accurate method
to fool deep neural networks", CVPR 2016)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import Tensor

from advml import registry
from advml.evasion.base import EvasionAttack
from advml.evasion.constraints import FeatureConstraints
from advml.models.base import Classifier
from advml.validation import check_choice, check_number

__all__ = ["DeepFool"]


@registry.register("evasion", "deepfool")
class DeepFool(EvasionAttack):
    """Step to the nearest decision boundary of the model linearised at the current point.

    At each iteration, for every candidate class ``k`` other than the label ``y``, the
    model is linearised: ``f_k = Z_k - Z_y``, ``w_k = ∇Z_k - ∇Z_y``. The closest
    linearised boundary is ``l = argmin_k |f_k| / ||w_k||_q`` (Moosavi-Dezfooli et al.
    2016, Algorithm 2; ``q = 2`` for the L2 attack, ``q = 1`` — the dual norm — for L∞,
    §3.2 and eq. 17), and the minimal step onto it is
    ``r = |f_l| / ||w_l||_2^2 * w_l`` (L2) or ``r = |f_l| / ||w_l||_1 * sign(w_l)`` (L∞).
    Steps are summed and the output is ``x + (1 + overshoot) * Σ r``, clipped to the
    model's bounds; a sample stops as soon as the model's label leaves ``y``. Untargeted
    only, and unbounded (no eps): the result's norms are what the attack needed.

    With feature constraints each linearisation keeps only the features that may still
    move the way ``w_k`` points (not immutable, not at their allowed limit; a switch-on
    feature only upwards), so the step is the nearest boundary within what the attacker
    may change; the point is then clipped to the allowed intervals, and a switch-on
    feature that a step moved up is switched fully on.

    Parameters
    ----------
    norm : {"2", "inf"}
        Norm whose distance to the boundary each step minimises.
    overshoot : float
        Relative step beyond the linearised boundary (>= 0); the paper uses 0.02.
    max_iter : int
        Iterations per sample (>= 1); most samples need fewer than five.
    candidates : int
        Classes considered as the next class (>= 2), those with the highest scores on
        the input (the paper's implementation uses 10); capped at the model's classes.
    constraints : FeatureConstraints or mapping, optional
        Features the attacker may not change, may only switch on, or may move within a
        narrower range (non-image data); see :class:`~advml.evasion.FeatureConstraints`.
    batch_size : int, optional
        Inputs per chunk; default sized to the input.

    Examples
    --------
    >>> from advml.evasion import DeepFool
    >>> result = DeepFool().generate(model, x_test, y_test)  # doctest: +SKIP
    >>> result.summary()["median_l2"]  # doctest: +SKIP
    """

    randomised = False  # draws nothing: chunks need not follow the random blocks

    def __init__(
        self,
        *,
        norm: Literal["2", "inf"] = "2",
        overshoot: float = 0.02,
        max_iter: int = 50,
        candidates: int = 10,
        constraints: FeatureConstraints | Mapping[str, Any] | None = None,
        batch_size: int | None = None,
    ) -> None:
        check_choice("norm", norm, ("2", "inf"))
        check_number("overshoot", overshoot, low=0)
        check_number("max_iter", max_iter, low=1, integer=True)
        check_number("candidates", candidates, low=2, integer=True)
        self._set_common(targeted=False, batch_size=batch_size, constraints=constraints)
        self.norm = norm
        self.overshoot = overshoot
        self.max_iter = max_iter
        self.candidates = candidates

    def _run(
        self, model: Classifier, x: Tensor, y: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        low, high = model.bounds
        n = x.shape[0]
        queries = torch.zeros(n, dtype=torch.long, device=x.device)
        x_adv = x.clone()
        total = torch.zeros_like(x)
        active = torch.arange(n, device=x.device)
        classes: Tensor | None = None  # candidate classes per sample, fixed at the start
        rules = self._constraints
        if rules is not None:
            allowed_lo, allowed_hi = (t.flatten(1) for t in rules.limits(x, model.bounds))
            switch = list(rules.switch_on)
        for _ in range(self.max_iter):
            xa = x_adv[active].requires_grad_(True)
            logits = model.logits(xa)
            queries[active] += 1
            ya = y[active]
            if classes is None:
                # The label itself is always a candidate: it is the class left behind.
                k = min(self.candidates, model.n_classes)
                scores = logits.detach().scatter(1, ya[:, None], float("inf"))
                classes = scores.topk(k, dim=1).indices
            going = logits.detach().argmax(1) == ya
            keep = going.nonzero().squeeze(1)
            if keep.numel() == 0:
                break
            cand = classes[keep]
            grads = []
            picked = logits[keep].gather(1, cand)
            for j in range(cand.shape[1]):
                (g,) = torch.autograd.grad(
                    picked[:, j].sum(), xa, retain_graph=j < cand.shape[1] - 1
                )
                grads.append(g[keep].flatten(1))
            with torch.no_grad():
                grad = torch.stack(grads, 1)  # (m, k, d); column 0 is the label y
                f = picked.detach()[:, 1:] - picked.detach()[:, :1]
                w = grad[:, 1:] - grad[:, :1]
                if rules is not None:
                    # Only features that can still move the way w points take part.
                    at = x_adv[active[keep]].flatten(1)[:, None, :]
                    up = at < allowed_hi[active[keep]][:, None, :]
                    down = at > allowed_lo[active[keep]][:, None, :]
                    w = w * torch.where(w > 0, up, down)
                dual = w.abs().sum(2) if self.norm == "inf" else w.norm(dim=2)
                distance = f.abs() / dual.clamp_min(1e-12)
                best = distance.argmin(1)
                row = torch.arange(best.numel(), device=x.device)
                f_l, w_l, dual_l = f[row, best].abs(), w[row, best], dual[row, best]
                # The small constant keeps a step on the boundary from stalling there.
                if self.norm == "inf":
                    step = ((f_l + 1e-4) / dual_l.clamp_min(1e-12))[:, None] * w_l.sign()
                else:
                    step = ((f_l + 1e-4) / dual_l.pow(2).clamp_min(1e-12))[:, None] * w_l
                active = active[keep]
                classes = cand
                total[active] += step.view(-1, *x.shape[1:])
                moved = x[active] + (1 + self.overshoot) * total[active]
                if rules is not None:
                    flat = torch.max(
                        torch.min(moved.flatten(1), allowed_hi[active]), allowed_lo[active]
                    )
                    if switch:
                        start = x[active].flatten(1)[:, switch]
                        up_sw = flat[:, switch] > start
                        flat[:, switch] = torch.where(up_sw, allowed_hi[active][:, switch], start)
                    moved = flat.view_as(moved)
                x_adv[active] = moved.clamp(low, high)
        return x_adv, queries
