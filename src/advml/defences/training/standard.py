"""Standard training with the same recipe as the robust ones: the baseline they beat."""

from __future__ import annotations

from torch import Tensor
from torch.nn import functional as F

from advml import registry
from advml.defences.training.base import (
    Init,
    Optimizer,
    RobustTraining,
    check_training_settings,
)
from advml.models.torch import TorchClassifier

__all__ = ["StandardTraining"]


@registry.register("robust_training", "standard")
class StandardTraining(RobustTraining):
    """Cross-entropy on clean inputs only: no defence.

    The "none" row of a cross-evaluation: the same architecture, epochs, optimiser
    and seed as the robust methods, so any difference is the defence's.

    Parameters
    ----------
    epochs : int
        Passes over the training data.
    batch_size : int
        Samples per optimiser step.
    lr : float
        Learning rate.
    optimizer : {"adam", "sgd"}
        Adam, or SGD with momentum 0.9.
    weight_decay : float
        L2 penalty.
    warmup_epochs : int
        Accepted for a uniform recipe; standard training has no ε to warm up.
    init : {"scratch", "model"}
        Fresh seeded weights of the given architecture, or the given weights.
    seed : int
        Seeds the initial weights and the shuffling.
    """

    def __init__(
        self,
        *,
        epochs: int = 20,
        batch_size: int = 64,
        lr: float = 1e-3,
        optimizer: Optimizer = "adam",
        weight_decay: float = 0.0,
        warmup_epochs: int = 0,
        init: Init = "scratch",
        seed: int = 0,
    ) -> None:
        check_training_settings(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            optimizer=optimizer,
            weight_decay=weight_decay,
            warmup_epochs=warmup_epochs,
            init=init,
            seed=seed,
        )
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.warmup_epochs = warmup_epochs
        self.init = init
        self.seed = seed

    def _loss(self, model: TorchClassifier, x: Tensor, y: Tensor, eps: float, seed: int) -> Tensor:
        return F.cross_entropy(model.forward(x), y)
