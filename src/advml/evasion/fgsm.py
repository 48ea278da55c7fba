"""Fast Gradient Sign Method (Goodfellow, Shlens & Szegedy, ICLR 2015)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from advml import registry
from advml.evasion._gradient import Loss, check_settings, iterate
from advml.evasion.base import EpsScale, EvasionAttack, Norm
from advml.evasion.constraints import FeatureConstraints
from advml.models.base import Classifier, clip_bounds

__all__ = ["FGSM"]


@registry.register("evasion", "fgsm")
class FGSM(EvasionAttack):
    """One step of size ``eps`` along the sign of the loss gradient.

    ``x_adv = clip(x + eps * sign(∇x L(f(x), y)))`` (Goodfellow et al. 2015, eq. 3).
    With ``norm="2"`` the step follows the L2-normalised gradient instead (the "fast
    gradient method").

    Parameters
    ----------
    eps : float
        Size of the perturbation in the chosen norm (>= 0); 0.3 is the MNIST L∞ convention.
    norm : {"inf", "2"}
        Norm of the perturbation.
    targeted : bool
        Move towards the labels given as ``y`` instead of away from them.
    loss : {"ce", "margin"}
        Cross-entropy, or the Carlini–Wagner logit margin.
    constraints : FeatureConstraints or mapping, optional
        Features the attacker may not change, may only switch on, or may move within a
        narrower range (non-image data); see :class:`~advml.evasion.FeatureConstraints`.
    eps_scale : {"absolute", "relative"}, default "absolute"
        ``eps`` in the data's units, or as a fraction of each feature's range (the ball
        then scales per feature; see :data:`~advml.evasion.base.EpsScale`).
    batch_size : int, optional
        Inputs per chunk; default sized to the input (see the user guide).

    Examples
    --------
    >>> from advml.evasion import FGSM
    >>> result = FGSM(eps=0.1).generate(model, x_test, y_test)  # doctest: +SKIP
    >>> result.success_rate  # doctest: +SKIP
    """

    randomised = False  # draws nothing: chunks need not follow the random blocks

    def __init__(
        self,
        *,
        eps: float = 0.3,
        norm: Norm = "inf",
        targeted: bool = False,
        loss: Loss = "ce",
        constraints: FeatureConstraints | Mapping[str, Any] | None = None,
        eps_scale: EpsScale = "absolute",
        batch_size: int | None = None,
    ) -> None:
        check_settings(eps=eps, norm=norm, loss=loss)
        self._set_common(
            targeted=targeted, batch_size=batch_size, constraints=constraints, eps_scale=eps_scale
        )
        self.eps = eps
        self.norm = norm
        self.loss = loss

    def _run(
        self, model: Classifier, x: Tensor, y: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        return iterate(
            model,
            x,
            y,
            eps=self.eps,
            norm=self.norm,
            step_size=self.eps,
            steps=1,
            targeted=self.targeted,
            loss=self.loss,
            random_start=False,
            early_stop=False,
            generator=generator,
            project=self._step_projection(clip_bounds(model)),
        )
