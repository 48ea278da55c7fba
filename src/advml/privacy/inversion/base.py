"""The model-inversion family: ``invert(model, target_class) -> InversionResult``.

An inversion attack reconstructs a representative input of a class from the model alone
(Fredrikson, Jha & Ristenpart, CCS 2015). The attack object holds settings only; the
model is passed per call. :func:`~advml.privacy.inversion.evaluate_inversion` measures
how recognisable the reconstructions are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from advml.base import Component
from advml.errors import UnsupportedModelError
from advml.models.base import Classifier, check_classifier

__all__ = ["InversionAttack", "InversionResult", "target_classes"]


@dataclass(frozen=True)
class InversionResult:
    """Reconstructions of one or more classes."""

    images: np.ndarray
    """``(k, *input_shape)`` float32, one reconstruction per requested class."""
    classes: np.ndarray
    """``(k,)`` the class each image reconstructs."""
    confidence: np.ndarray
    """``(k,)`` the target's probability of that class on the image (NaN without scores)."""
    cost: np.ndarray
    """``(k,)`` the final value of the objective (lower is better)."""
    queries: int
    """Inputs the target model evaluated (gradients count one query per input)."""
    gradient: str
    """How gradients were had: ``"white-box"`` or ``"zeroth-order"``."""
    seconds: float
    attack: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Plain numbers for reports."""
        return {
            "attack": self.attack,
            "classes": [int(c) for c in self.classes],
            "mean_confidence": float(np.nanmean(self.confidence)),
            "queries": self.queries,
            "gradient": self.gradient,
            "seconds": self.seconds,
        }


def target_classes(model: Classifier, target_class: int | Sequence[int] | np.ndarray) -> np.ndarray:
    """``target_class`` as a 1-d int array, checked against ``model.n_classes``."""
    arr = np.atleast_1d(np.asarray(target_class))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(
            f"target_class must be a class index or a list of them, got {target_class!r}"
        )
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"target_class must hold integer class indices, got {target_class!r}")
    if arr.min() < 0 or arr.max() >= model.n_classes:
        raise ValueError(
            f"target_class must be in [0, {model.n_classes}) for a model with "
            f"{model.n_classes} classes, got {target_class!r}"
        )
    return arr.astype(np.int64)


class InversionAttack(Component):
    """Base of inversion attacks: subclasses implement :meth:`invert`."""

    family: ClassVar[str] = "inversion"

    def invert(
        self, model: Classifier, target_class: int | Sequence[int] | np.ndarray
    ) -> InversionResult:
        raise NotImplementedError

    def _check_model(self, model: Classifier) -> None:
        check_classifier("model", model)
        if not model.has_scores:
            raise UnsupportedModelError(
                f"{type(self).__name__} needs the model's scores (confidences); this model "
                f"answers labels only, which leaves no signal to climb. Labels-only output "
                f"is a defence against inversion."
            )
