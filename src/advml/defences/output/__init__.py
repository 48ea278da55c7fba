"""Output hardening: wrappers that limit what a prediction API reveals.

Each defence holds settings; ``defence.wrap(model)`` returns a
:class:`HardenedClassifier`, itself a black-box Classifier, to attack or to measure.
Registered in the ``"output_defence"`` family:

============== ============================================================
``top_k``      the k largest probabilities only (:class:`TopK`)
``rounding``   probabilities rounded to r decimals (:class:`Rounding`)
``labels_only`` the predicted label only (:class:`LabelsOnly`)
``noisy_scores`` Gaussian noise on the probabilities (:class:`NoisyScores`)
============== ============================================================

Examples
--------
>>> from advml import registry
>>> defence = registry.create("output_defence", "rounding", decimals=1)
>>> api = defence.wrap(model)  # doctest: +SKIP
>>> api.predict_proba(x)  # doctest: +SKIP
"""

from advml.defences.output.base import PROBA_FLOOR, HardenedClassifier, OutputDefence
from advml.defences.output.labels_only import LabelsOnly
from advml.defences.output.noisy_scores import NoisyScores
from advml.defences.output.rounding import Rounding
from advml.defences.output.top_k import TopK

__all__ = [
    "PROBA_FLOOR",
    "HardenedClassifier",
    "LabelsOnly",
    "NoisyScores",
    "OutputDefence",
    "Rounding",
    "TopK",
]
