"""Basic Iterative Method / iterative FGSM (Kurakin, Goodfellow & Bengio, 2017)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from advml import registry
from advml.evasion._gradient import Loss, check_settings, iterate, step_size_for
from advml.evasion.base import EpsScale, EvasionAttack, Norm
from advml.evasion.constraints import FeatureConstraints
from advml.models.base import Classifier, clip_bounds
from advml.validation import check_bool

__all__ = ["BIM"]


@registry.register("evasion", "bim")
class BIM(EvasionAttack):
    """FGSM repeated in small steps from the clean input, projected after each step.

    ``x_{k+1} = Clip_{x,eps}(x_k + alpha * sign(∇x L(f(x_k), y)))`` (Kurakin et al.
    2017, "Adversarial examples in the physical world", eq. 2). Unlike PGD it starts at
    ``x`` itself, with no random start and no restarts.

    Parameters
    ----------
    eps : float
        Radius of the allowed perturbation (>= 0).
    steps : int
        Number of iterations (>= 1).
    step_size : float, optional
        Step per iteration; default ``2.5 * eps / steps``, enough to reach and move
        along the boundary of the ε-ball.
    norm : {"inf", "2"}
        Norm of the ε-ball and of the steps.
    targeted : bool
        Move towards the labels given as ``y``.
    loss : {"ce", "margin"}
        Cross-entropy, or the Carlini–Wagner logit margin.
    early_stop : bool
        Stop moving each sample once the model is fooled (fewer queries, smaller
        perturbations, weaker confidence).
    constraints : FeatureConstraints or mapping, optional
        Features the attacker may not change, may only switch on, or may move within a
        narrower range (non-image data); see :class:`~advml.evasion.FeatureConstraints`.
    eps_scale : {"absolute", "relative"}, default "absolute"
        ``eps`` in the data's units, or as a fraction of each feature's range (the ball
        then scales per feature; see :data:`~advml.evasion.base.EpsScale`).
    batch_size : int, optional
        Inputs per chunk; default sized to the input.
    """

    randomised = False  # draws nothing: chunks need not follow the random blocks

    def __init__(
        self,
        *,
        eps: float = 0.3,
        steps: int = 10,
        step_size: float | None = None,
        norm: Norm = "inf",
        targeted: bool = False,
        loss: Loss = "ce",
        early_stop: bool = False,
        constraints: FeatureConstraints | Mapping[str, Any] | None = None,
        eps_scale: EpsScale = "absolute",
        batch_size: int | None = None,
    ) -> None:
        check_settings(eps=eps, norm=norm, loss=loss, steps=steps, step_size=step_size)
        check_bool("early_stop", early_stop)
        self._set_common(
            targeted=targeted, batch_size=batch_size, constraints=constraints, eps_scale=eps_scale
        )
        self.eps = eps
        self.steps = steps
        self.step_size = step_size
        self.norm = norm
        self.loss = loss
        self.early_stop = early_stop

    def _run(
        self, model: Classifier, x: Tensor, y: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        step = step_size_for(self.eps, self.steps, self.step_size)
        return iterate(
            model,
            x,
            y,
            eps=self.eps,
            norm=self.norm,
            step_size=step,
            steps=self.steps,
            targeted=self.targeted,
            loss=self.loss,
            random_start=False,
            early_stop=self.early_stop,
            generator=generator,
            project=self._step_projection(clip_bounds(model)),
        )
