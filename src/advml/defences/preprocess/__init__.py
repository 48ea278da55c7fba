"""Input cleansing: preprocessors in front of a model, and their honest evaluation.

Every preprocessor is registered in the family ``"preprocess"`` and called as
``prep(x)``. :class:`DefendedClassifier` puts preprocessors in front of a model and is
itself a Classifier, so every attack and metric applies; :func:`evaluate_defence`
measures a defence against the standard and the adaptive (BPDA/EOT) attack.
"""

from advml.defences.preprocess.autoencoder import Autoencoder
from advml.defences.preprocess.base import STRENGTHS, Preprocessor, Strength
from advml.defences.preprocess.defended import DEFAULT_EOT_SAMPLES, DefendedClassifier
from advml.defences.preprocess.evaluation import DefenceEvaluation, evaluate_defence
from advml.defences.preprocess.feature_squeezing import FeatureSqueezing
from advml.defences.preprocess.gaussian_blur import GaussianBlur
from advml.defences.preprocess.gaussian_noise import GaussianNoise
from advml.defences.preprocess.jpeg import JPEGCompression
from advml.defences.preprocess.median_smoothing import MedianSmoothing

__all__ = [
    "DEFAULT_EOT_SAMPLES",
    "STRENGTHS",
    "Autoencoder",
    "DefenceEvaluation",
    "DefendedClassifier",
    "FeatureSqueezing",
    "GaussianBlur",
    "GaussianNoise",
    "JPEGCompression",
    "MedianSmoothing",
    "Preprocessor",
    "Strength",
    "evaluate_defence",
]
