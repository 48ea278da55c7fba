"""Standard training with the same recipe as the robust ones: the baseline they beat."""

from __future__ import annotations

from torch import Tensor
from torch.nn import functional as F

from advml import registry
from advml.defences.training.base import RobustTraining, with_training_parameters
from advml.models.torch import TorchClassifier

__all__ = ["StandardTraining"]


@registry.register("robust_training", "standard")
class StandardTraining(RobustTraining):
    """Cross-entropy on clean inputs only: no defence.

    The "none" row of a cross-evaluation: the same architecture, epochs, optimiser
    and seed as the robust methods, so any difference is the defence's. It has no
    settings of its own: :class:`RobustTraining` takes the shared ones.
    """

    __doc__ = with_training_parameters(
        __doc__,
        warmup_epochs="Accepted for a uniform recipe; standard training has no ε to warm up.",
        seed="Seeds the initial weights and the shuffling.",
    )

    def _loss(self, model: TorchClassifier, x: Tensor, y: Tensor, eps: float, seed: int) -> Tensor:
        return F.cross_entropy(model.forward(x), y)
