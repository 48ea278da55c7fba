"""The model seam: the Classifier protocol, its adapters, reference networks, training."""

from advml.models.architectures import build as build_architecture
from advml.models.base import BaseClassifier, Classifier
from advml.models.torch import TorchClassifier
from advml.models.training import History, train

__all__ = [
    "BaseClassifier",
    "Classifier",
    "History",
    "TorchClassifier",
    "build_architecture",
    "train",
]
