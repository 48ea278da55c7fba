"""Adversarial training: train on attacked batches (FGSM with a random start, PGD).

Both solve Madry et al.'s saddle-point problem (ICLR 2018, eq. 2.1)

    min_θ  E_{(x, y)} [ max_{||δ|| <= eps} L(f_θ(x + δ), y) ]

by approximating the inner maximum with an attack from :mod:`advml.evasion` on each
batch and taking an optimiser step on the loss at the attacked inputs. The attacks
run in evaluation mode (dropout off); the loss is taken in training mode.
"""

from __future__ import annotations

from typing import cast

from torch import Tensor
from torch.nn import functional as F

from advml import registry
from advml.defences.training.base import (
    Init,
    Optimizer,
    RobustTraining,
    with_training_parameters,
)
from advml.evasion.base import Norm
from advml.models.torch import TorchClassifier
from advml.validation import check_choice, check_number

__all__ = ["FGSMTraining", "PGDTraining"]


def _attacked(
    model: TorchClassifier,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    norm: Norm,
    steps: int,
    step_size: float,
    seed: int,
) -> Tensor:
    """``x`` attacked with :class:`advml.evasion.PGD` from a random start of the ε-ball."""
    if eps == 0:
        return x
    attack = registry.create(
        "evasion",
        "pgd",
        eps=eps,
        norm=norm,
        steps=steps,
        step_size=step_size,
        random_start=True,
        seed=seed,
    )
    return cast(Tensor, attack.generate(model, x, y).x_adv)


@registry.register("robust_training", "pgd_training")
class PGDTraining(RobustTraining):
    """Madry et al.'s PGD adversarial training (ICLR 2018).

    Every batch is replaced by its PGD adversarial examples (random start, ``steps``
    steps of ``step_size``, projected onto the ε-ball and the model's bounds); the
    network minimises the cross-entropy on them. Madry et al. trained MNIST with 40
    steps of 0.01 at ε = 0.3; fewer, larger steps (7-10 of ``2.5 * eps / steps``) give
    most of the robustness at a fraction of the cost.

    Parameters
    ----------
    eps : float
        Radius of the perturbations trained against (>= 0); 0.3 is the MNIST L∞
        convention.
    norm : {"inf", "2"}
        Norm of the ε-ball.
    steps : int
        PGD steps per batch (>= 1).
    step_size : float, optional
        Step of the inner attack; default ``2.5 * eps / steps`` (scaled with ε during
        the warm-up).

    Examples
    --------
    >>> from advml.defences.training import PGDTraining
    >>> training = PGDTraining(eps=0.3, steps=10, epochs=20)
    >>> trained = training.fit(model, x_train, y_train)  # doctest: +SKIP
    >>> robust_model = trained.model  # doctest: +SKIP
    """

    __doc__ = with_training_parameters(
        __doc__,
        warmup_epochs="ε rises linearly from ``eps / warmup_epochs`` to ``eps`` over the first\n"
        "``warmup_epochs`` epochs (0: the full ε from the start). Helps a network\n"
        "that cannot yet fit the full ε to start learning.",
        seed="Seeds the initial weights, the shuffling and the attacks' random starts.",
    )

    def __init__(
        self,
        *,
        eps: float = 0.3,
        norm: Norm = "inf",
        steps: int = 10,
        step_size: float | None = None,
        epochs: int = 20,
        batch_size: int = 64,
        lr: float = 1e-3,
        optimizer: Optimizer = "adam",
        weight_decay: float = 0.0,
        warmup_epochs: int = 0,
        init: Init = "scratch",
        seed: int = 0,
    ) -> None:
        super().__init__(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            optimizer=optimizer,
            weight_decay=weight_decay,
            warmup_epochs=warmup_epochs,
            init=init,
            seed=seed,
        )
        check_number("eps", eps, low=0)
        check_choice("norm", norm, ("inf", "2"))
        check_number("steps", steps, low=1, integer=True)
        if step_size is not None:
            check_number("step_size", step_size, low=0, low_inclusive=False)
        self.eps = eps
        self.norm = norm
        self.steps = steps
        self.step_size = step_size

    def _loss(self, model: TorchClassifier, x: Tensor, y: Tensor, eps: float, seed: int) -> Tensor:
        # The step scales with ε during the warm-up, so the step/ε ratio stays fixed.
        step = self._scaled_step(eps, default=2.5 * eps / self.steps)
        x_adv = _attacked(
            model, x, y, eps=eps, norm=self.norm, steps=self.steps, step_size=step, seed=seed
        )
        return F.cross_entropy(model.forward(x_adv), y)


@registry.register("robust_training", "fgsm_training")
class FGSMTraining(RobustTraining):
    """FGSM adversarial training with a random start (Wong, Rice & Kolter, ICLR 2020).

    "Fast is better than free": each batch is attacked by one signed-gradient step of
    ``step_size`` (default ``1.25 * eps``, the paper's α) from a uniformly random point
    of the ε-ball, projected back onto the ball (Wong et al. 2020, Algorithm 3). About
    as cheap as standard training plus one gradient, and, unlike FGSM from the clean
    point, it does not teach the network to mask its gradients. A step much larger
    than ``1.25 * eps`` can cause "catastrophic overfitting" (robustness to FGSM but
    not to PGD); check the result with PGD.

    Parameters
    ----------
    eps : float
        Radius of the perturbations trained against (>= 0).
    norm : {"inf", "2"}
        Norm of the ε-ball.
    step_size : float, optional
        Size of the FGSM step; default ``1.25 * eps`` (scaled with ε during warm-up).

    Examples
    --------
    >>> from advml.defences.training import FGSMTraining
    >>> training = FGSMTraining(eps=0.3, epochs=10)
    >>> robust = training.fit(model, x_train, y_train).model  # doctest: +SKIP
    """

    __doc__ = with_training_parameters(
        __doc__,
        seed="Seeds the initial weights, the shuffling and the random starts.",
    )

    def __init__(
        self,
        *,
        eps: float = 0.3,
        norm: Norm = "inf",
        step_size: float | None = None,
        epochs: int = 20,
        batch_size: int = 64,
        lr: float = 1e-3,
        optimizer: Optimizer = "adam",
        weight_decay: float = 0.0,
        warmup_epochs: int = 0,
        init: Init = "scratch",
        seed: int = 0,
    ) -> None:
        super().__init__(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            optimizer=optimizer,
            weight_decay=weight_decay,
            warmup_epochs=warmup_epochs,
            init=init,
            seed=seed,
        )
        check_number("eps", eps, low=0)
        check_choice("norm", norm, ("inf", "2"))
        if step_size is not None:
            check_number("step_size", step_size, low=0, low_inclusive=False)
        self.eps = eps
        self.norm = norm
        self.step_size = step_size

    def _loss(self, model: TorchClassifier, x: Tensor, y: Tensor, eps: float, seed: int) -> Tensor:
        step = self._scaled_step(eps, default=1.25 * eps)
        x_adv = _attacked(model, x, y, eps=eps, norm=self.norm, steps=1, step_size=step, seed=seed)
        return F.cross_entropy(model.forward(x_adv), y)
