"""The model seam: the Classifier protocol, its adapters, access levels, reference
networks (:mod:`advml.models.reference`), the one training loop."""

from advml.models.architectures import build as build_architecture
from advml.models.base import BaseClassifier, Classifier, WhiteBox
from advml.models.callable import CallableClassifier
from advml.models.formats.boosters import BoosterClassifier
from advml.models.formats.onnx import OnnxRuntimeClassifier
from advml.models.formats.spec import LoadReport
from advml.models.http import HTTPClassifier, TargetSpec
from advml.models.io import how_loaded, load_model, save_model
from advml.models.sklearn import SklearnClassifier
from advml.models.torch import TorchClassifier
from advml.models.training import History, TrainingRecipe, train, validation_split

__all__ = [
    "BaseClassifier",
    "BoosterClassifier",
    "CallableClassifier",
    "Classifier",
    "HTTPClassifier",
    "History",
    "LoadReport",
    "OnnxRuntimeClassifier",
    "SklearnClassifier",
    "TargetSpec",
    "TorchClassifier",
    "TrainingRecipe",
    "WhiteBox",
    "build_architecture",
    "how_loaded",
    "load_model",
    "save_model",
    "train",
    "validation_split",
]
