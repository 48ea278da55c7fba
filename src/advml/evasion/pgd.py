"""Projected Gradient Descent (Madry, Makelov, Schmidt, Tsipras & Vladu, ICLR 2018)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from advml import registry
from advml.evasion._gradient import Loss, check_settings, iterate, loss_per_sample, step_size_for
from advml.evasion.base import EpsScale, EvasionAttack, Norm
from advml.evasion.constraints import FeatureConstraints
from advml.models.base import Classifier, clip_bounds
from advml.validation import check_bool, check_number

__all__ = ["PGD"]


@registry.register("evasion", "pgd")
class PGD(EvasionAttack):
    """Gradient ascent on the loss from a random point of the ε-ball, projected each step.

    ``x_{k+1} = Π_{B(x, eps)}(x_k + alpha * sign(∇x L(f(x_k), y)))`` (Madry et al.
    2018, eq. 3 and §2.1); with ``norm="2"`` the step follows the L2-normalised gradient.
    Restarts run the attack again from new random points on the samples not yet
    fooled and keep, per sample, a fooling example or else the one with the highest loss.

    Parameters
    ----------
    eps : float
        Radius of the allowed perturbation (>= 0); 0.3 is the MNIST L∞ convention, for
        ``norm="2"`` values around 1.5–2.0 are usual on MNIST.
    steps : int
        Gradient steps per restart (>= 1); 40 in Madry et al.'s MNIST evaluation.
    step_size : float, optional
        Step per iteration; default ``2.5 * eps / steps`` (Madry et al.'s heuristic).
    norm : {"inf", "2"}
        Norm of the ε-ball and of the steps.
    random_start : bool
        Start from a uniformly random point of the ε-ball.
    restarts : int
        Number of runs (>= 1); more than one needs ``random_start=True``.
    targeted : bool
        Move towards the labels given as ``y``.
    loss : {"ce", "margin"}
        Cross-entropy, or the Carlini–Wagner logit margin (stronger on some defences).
    early_stop : bool
        Stop moving each sample once the model is fooled.
    seed : int, optional
        Seed of the random starts; the same seed gives the same result.
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
    >>> from advml.evasion import PGD
    >>> attack = PGD(eps=0.3, steps=40, restarts=2)
    >>> result = attack.generate(model, x_test, y_test)  # doctest: +SKIP
    >>> 1 - result.success_rate  # robust accuracy on originally correct inputs  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        eps: float = 0.3,
        steps: int = 40,
        step_size: float | None = None,
        norm: Norm = "inf",
        random_start: bool = True,
        restarts: int = 1,
        targeted: bool = False,
        loss: Loss = "ce",
        early_stop: bool = False,
        seed: int | None = 0,
        constraints: FeatureConstraints | Mapping[str, Any] | None = None,
        eps_scale: EpsScale = "absolute",
        batch_size: int | None = None,
    ) -> None:
        check_settings(eps=eps, norm=norm, loss=loss, steps=steps, step_size=step_size)
        check_number("restarts", restarts, low=1, integer=True)
        check_bool("random_start", random_start)
        check_bool("early_stop", early_stop)
        if restarts > 1 and not random_start:
            raise ValueError(
                f"restarts={restarts} repeats the same deterministic run unless "
                f"random_start=True; set random_start=True or restarts=1"
            )
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
        self.norm = norm
        self.random_start = random_start
        self.restarts = restarts
        self.loss = loss
        self.early_stop = early_stop

    def _run(
        self, model: Classifier, x: Tensor, y: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        step = step_size_for(self.eps, self.steps, self.step_size)
        run = functools.partial(
            iterate,
            eps=self.eps,
            norm=self.norm,
            step_size=step,
            steps=self.steps,
            targeted=self.targeted,
            loss=self.loss,
            random_start=self.random_start,
            early_stop=self.early_stop,
            generator=generator,
            project=self._step_projection(clip_bounds(model)),
        )
        x_adv, queries = run(model, x, y)
        if self.restarts == 1:
            return x_adv, queries
        best_loss, fooled = self._assess(model, x_adv, y)
        queries += 1
        for _ in range(self.restarts - 1):
            todo = (~fooled).nonzero().squeeze(1)
            if todo.numel() == 0:
                break
            candidate, q = run(model, x[todo], y[todo])
            cand_loss, cand_fooled = self._assess(model, candidate, y[todo])
            queries[todo] += q + 1
            better = cand_fooled | (cand_loss > best_loss[todo])
            idx = todo[better]
            x_adv[idx] = candidate[better]
            best_loss[idx] = cand_loss[better]
            fooled[idx] = cand_fooled[better]
        return x_adv, queries

    def _assess(self, model: Classifier, x_adv: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            logits = model.logits(x_adv)
        pred = logits.argmax(1)
        fooled = (pred == y) if self.targeted else (pred != y)
        return loss_per_sample(logits, y, self.loss, self.targeted), fooled
