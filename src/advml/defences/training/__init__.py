"""Robust training: defences that change how a network is trained.

Each is a :class:`RobustTraining` holding settings; ``fit(model, x, y)`` trains a copy
of the network with the shared training loop and returns a :class:`TrainedModel`.
Registered in the ``"robust_training"`` family: ``"standard"`` (the baseline),
``"fgsm_training"``, ``"pgd_training"`` and ``"trades"``.

Privacy defences are in the ``"private_training"`` family: ``"dp_sgd"`` (:class:`DPSGD`,
DP-SGD through opacus, reporting ε) and ``"regularised"`` (:class:`Regularised`: weight
decay, label smoothing, early stopping; the non-private baselines). Their ``fit`` returns
a :class:`PrivateTrainedModel`.
"""

from advml.defences.training.adversarial import FGSMTraining, PGDTraining
from advml.defences.training.base import RobustTraining, TrainedModel
from advml.defences.training.dp import DPSGD, PrivateTrainedModel
from advml.defences.training.regularised import Regularised
from advml.defences.training.standard import StandardTraining
from advml.defences.training.trades import TRADES

__all__ = [
    "DPSGD",
    "TRADES",
    "FGSMTraining",
    "PGDTraining",
    "PrivateTrainedModel",
    "Regularised",
    "RobustTraining",
    "StandardTraining",
    "TrainedModel",
]
