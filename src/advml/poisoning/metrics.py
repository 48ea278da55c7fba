"""How well a backdoor works: clean accuracy, attack success rate, per-class effects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor

from advml.metrics.backdoor import backdoor_success_rate
from advml.models.base import Classifier
from advml.poisoning.base import PoisonedData
from advml.validation import check_labels

# backdoor_success_rate lives in advml.metrics; re-exported for existing imports.
__all__ = ["BackdoorEvaluation", "backdoor_success_rate", "evaluate_backdoor"]


@dataclass(frozen=True)
class BackdoorEvaluation:
    """A model measured on clean and triggered test inputs."""

    clean_accuracy: float
    """Accuracy on the clean test inputs."""
    attack_success: float
    """Triggered test inputs whose true label is not their backdoor label that the model
    sends to the backdoor label (``nan`` when no input qualifies)."""
    triggered_accuracy: float
    """Accuracy on triggered inputs against their true labels (what a user would see)."""
    per_class_clean_accuracy: tuple[float, ...]
    """Clean accuracy per true class (``nan`` for a class absent from the test data)."""
    per_class_attack_success: tuple[float, ...]
    """Attack success per true class (``nan`` where no input of the class qualifies)."""
    n: int

    def summary(self) -> dict[str, Any]:
        return {
            "clean_accuracy": self.clean_accuracy,
            "attack_success": self.attack_success,
            "triggered_accuracy": self.triggered_accuracy,
            "n": self.n,
        }


def evaluate_backdoor(
    model: Classifier,
    poisoned: PoisonedData,
    x_test: np.ndarray | Tensor,
    y_test: np.ndarray | Tensor,
    *,
    batch_size: int | None = None,
) -> BackdoorEvaluation:
    """Clean accuracy and attack success of ``model`` on held-out test data.

    The trigger and the target rule come from ``poisoned``; the test inputs are stamped
    with the trigger here (the training set is not used).

    Parameters
    ----------
    model : Classifier
        The (possibly backdoored) model.
    poisoned : PoisonedData
        The result of a trigger-planting attack (BadNets, clean-label).
    x_test, y_test : arrays
        Clean test inputs ``(n, *input_shape)`` and their true labels.
    """
    x = np.asarray(x_test.detach().cpu() if isinstance(x_test, Tensor) else x_test)
    y = np.asarray(y_test.detach().cpu() if isinstance(y_test, Tensor) else y_test)
    check_labels("y_test", y, model.n_classes, len(x))
    with model.evaluating():
        pred_clean = np.asarray(model.predict(x, batch_size=batch_size))
        x_trig = np.asarray(poisoned.apply_trigger(x)).clip(*model.bounds)
        pred_trig = np.asarray(model.predict(x_trig, batch_size=batch_size))
    y_bd = poisoned.backdoor_labels(y)
    per_acc, per_asr = [], []
    for c in range(model.n_classes):
        of_c = y == c
        per_acc.append(float((pred_clean[of_c] == c).mean()) if of_c.any() else float("nan"))
        per_asr.append(backdoor_success_rate(y[of_c], y_bd[of_c], pred_trig[of_c]))
    return BackdoorEvaluation(
        clean_accuracy=float((pred_clean == y).mean()),
        attack_success=backdoor_success_rate(y, y_bd, pred_trig),
        triggered_accuracy=float((pred_trig == y).mean()),
        per_class_clean_accuracy=tuple(per_acc),
        per_class_attack_success=tuple(per_asr),
        n=len(y),
    )
