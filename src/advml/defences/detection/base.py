"""The detection family: ``fit(model, x_clean)`` then ``detect(model, x) -> DetectionResult``.

A detector gives each input a score (higher: more likely adversarial). The threshold is
set on clean data so that a chosen fraction of clean inputs, the false-positive rate, is
flagged; the same rate then holds, approximately, on new clean data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from torch import Tensor

from advml.base import Component
from advml.models.base import Classifier, check_classifier
from advml.validation import check_input_shape, check_number

__all__ = ["DetectionResult", "Detector", "threshold_for_fpr"]


@dataclass(frozen=True)
class DetectionResult:
    """What a detector says about a batch of inputs."""

    scores: np.ndarray
    """Score of each input, shape (n,); higher means more likely adversarial."""
    flags: np.ndarray
    """Boolean, shape (n,): ``scores > threshold``."""
    threshold: float
    """The threshold fitted on clean data."""
    fpr: float
    """The false-positive rate the threshold was chosen for (on the clean fitting data)."""
    detector: str = ""

    @property
    def n(self) -> int:
        return int(self.flags.shape[0])

    @property
    def detection_rate(self) -> float:
        """Fraction of inputs flagged (the true-positive rate on adversarial inputs)."""
        return float(self.flags.mean()) if self.n else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "n": self.n,
            "detection_rate": self.detection_rate,
            "threshold": self.threshold,
            "fpr": self.fpr,
        }


def threshold_for_fpr(clean_scores: np.ndarray, fpr: float) -> float:
    """The score above which a fraction ``fpr`` of ``clean_scores`` lies.

    The ``1 - fpr`` quantile, taken as the next higher observed score, so the fraction of
    the fitting data flagged (``score > threshold``) is at most ``fpr``.
    """
    scores = np.sort(np.asarray(clean_scores, dtype=np.float64))
    k = int(np.ceil((1.0 - fpr) * len(scores))) - 1
    return float(scores[min(max(k, 0), len(scores) - 1)])


class Detector(Component):
    """Base of detectors: subclasses implement :meth:`score` (and may extend :meth:`fit`)."""

    family: ClassVar[str] = "detection"
    fpr: float

    def score(self, model: Classifier, x: np.ndarray | Tensor) -> np.ndarray:
        """Score of each input, shape (n,); higher means more likely adversarial."""
        raise NotImplementedError

    def fit(self, model: Classifier, x_clean: np.ndarray | Tensor) -> Detector:
        """Set the threshold on clean inputs for the false-positive rate ``fpr``; return self.

        Use clean data the model was not trained on (held-out data), or the rate will be
        underestimated on new inputs.
        """
        self._check(model, x_clean, "x_clean")
        scores = self.score(model, x_clean)
        self.threshold_ = threshold_for_fpr(scores, float(self.fpr))
        self.clean_scores_ = scores
        return self

    def detect(self, model: Classifier, x: np.ndarray | Tensor) -> DetectionResult:
        """Score ``x`` and flag the inputs above the fitted threshold."""
        if not hasattr(self, "threshold_"):
            raise RuntimeError(
                f"{type(self).__name__} is not fitted: call fit(model, x_clean) on clean "
                f"held-out inputs first"
            )
        self._check(model, x, "x")
        scores = self.score(model, x)
        return DetectionResult(
            scores=scores,
            flags=scores > self.threshold_,
            threshold=float(self.threshold_),
            fpr=float(self.fpr),
            detector=self.name,
        )

    def _check(self, model: Classifier, x: np.ndarray | Tensor, name: str) -> None:
        check_classifier("model", model)
        if not isinstance(x, np.ndarray | Tensor):
            raise TypeError(f"{name} must be a numpy array or a tensor, got {type(x).__name__}")
        check_input_shape(name, x, model.input_shape)
        if x.shape[0] == 0:
            raise ValueError(f"{name} is empty: give at least one sample")


def check_fpr(fpr: float) -> None:
    check_number("fpr", fpr, low=0, high=1, low_inclusive=False, high_inclusive=False)
