"""TRADES: trade clean accuracy for robustness explicitly (Zhang et al., ICML 2019)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from advml import registry
from advml.defences.training.base import (
    Init,
    Optimizer,
    RobustTraining,
    with_training_parameters,
)
from advml.evasion.base import Norm, project
from advml.models.torch import TorchClassifier
from advml.validation import check_choice, check_number

__all__ = ["TRADES"]


@registry.register("robust_training", "trades")
class TRADES(RobustTraining):
    """Cross-entropy on clean inputs plus ``beta`` times a boundary (KL) term.

    The loss of a batch is (Zhang et al. 2019, eq. 5)

        CE(f(x), y) + beta * KL(f(x) || f(x')),   x' = argmax_{||x' - x|| <= eps} KL(f(x) || f(x'))

    with ``f`` the softmax output. The inner maximum is found by projected
    signed-gradient ascent on the KL divergence (not on the label's loss: the term
    measures how far the prediction moves, whatever the label), from ``x`` plus
    Gaussian noise of standard deviation 0.001 as in the paper. The first term keeps
    clean accuracy; ``beta`` sets the trade-off (Zhang et al. used 1/λ = 6, and 1 in
    their MNIST script; larger is more robust and less accurate).

    This inner attack is written here rather than taken from :mod:`advml.evasion`
    because its objective compares two output distributions and uses no label;
    the projection is :func:`advml.evasion.project`.

    Parameters
    ----------
    eps : float
        Radius of the ε-ball of the KL attack (>= 0).
    beta : float
        Weight of the KL term (>= 0; 0 is standard training).
    norm : {"inf", "2"}
        Norm of the ε-ball.
    steps : int
        Ascent steps of the KL attack per batch (>= 1); the paper used 40 on MNIST.
    step_size : float, optional
        Step of the KL attack; default ``2.5 * eps / steps``.

    Examples
    --------
    >>> from advml.defences.training import TRADES
    >>> robust = TRADES(eps=0.3, beta=6.0).fit(model, x_train, y_train).model  # doctest: +SKIP
    """

    __doc__ = with_training_parameters(
        __doc__,
        seed="Seeds the initial weights, the shuffling and the attack's starting noise.",
    )

    def __init__(
        self,
        *,
        eps: float = 0.3,
        beta: float = 6.0,
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
        check_number("beta", beta, low=0)
        check_choice("norm", norm, ("inf", "2"))
        check_number("steps", steps, low=1, integer=True)
        if step_size is not None:
            check_number("step_size", step_size, low=0, low_inclusive=False)
        self.eps = eps
        self.beta = beta
        self.norm = norm
        self.steps = steps
        self.step_size = step_size

    def _loss(self, model: TorchClassifier, x: Tensor, y: Tensor, eps: float, seed: int) -> Tensor:
        x_adv = self._kl_attack(model, x, eps, seed)
        logits = model.forward(x)
        if x_adv is None:
            return F.cross_entropy(logits, y)
        # Zhang et al. 2019, eq. 5: natural loss + beta * KL(f(x) || f(x')), per sample.
        boundary = F.kl_div(
            F.log_softmax(model.forward(x_adv), dim=1),
            F.softmax(logits, dim=1),
            reduction="batchmean",
        )
        return F.cross_entropy(logits, y) + self.beta * boundary

    def _kl_attack(self, model: TorchClassifier, x: Tensor, eps: float, seed: int) -> Tensor | None:
        """Projected ascent on KL(f(x) || f(x')) inside the ε-ball (eval mode)."""
        if eps == 0 or self.beta == 0:
            return None
        low, high = model.bounds
        step = self._scaled_step(eps, default=2.5 * eps / self.steps)
        gen = torch.Generator(device=x.device).manual_seed(seed)
        noise = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
        with model.evaluating():
            with torch.no_grad():
                p_clean = F.softmax(model.forward(x), dim=1)
            x_adv = project(x + 0.001 * noise, x, eps, self.norm).clamp_(low, high)
            for _ in range(self.steps):
                x_adv.requires_grad_(True)
                kl = F.kl_div(F.log_softmax(model.forward(x_adv), dim=1), p_clean, reduction="sum")
                (grad,) = torch.autograd.grad(kl, x_adv)
                if self.norm == "inf":
                    direction = grad.sign()
                else:
                    flat = grad.flatten(1)
                    direction = (flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)).view_as(
                        grad
                    )
                x_adv = project(x_adv.detach() + step * direction, x, eps, self.norm)
                x_adv = x_adv.clamp_(low, high)
        return x_adv.detach()
