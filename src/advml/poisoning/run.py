"""Poison a training set, train on it, and measure the backdoor: ``advml poison`` as a function."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from advml.models.base import Classifier
from advml.poisoning.base import PoisonedData, PoisoningAttack
from advml.poisoning.metrics import evaluate_backdoor

__all__ = ["PoisoningRun", "poison_and_train"]


@dataclass(frozen=True)
class PoisoningRun:
    """The poisoned data, the model trained on it, and how it does on clean test data."""

    data: PoisonedData
    model: Classifier
    clean_accuracy: float
    """Accuracy on the clean test inputs."""
    attack_success: float | None
    """Triggered test inputs sent to the backdoor label (None without a trigger)."""

    def lines(self) -> list[str]:
        """What ``advml poison`` prints."""
        out = [
            f"{self.data.attack} : {self.data.n_poisoned} of {len(self.data.y)} training samples",
            f"  clean test accuracy   {self.clean_accuracy:.2%}",
        ]
        if self.attack_success is not None:
            out.append(f"  attack success        {self.attack_success:.2%}")
        return out


def poison_and_train(
    attack: PoisoningAttack,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    n_classes: int,
    bounds: tuple[float, float],
    train: Callable[[np.ndarray, np.ndarray], Classifier],
) -> PoisoningRun:
    """Poison ``(x_train, y_train)`` with ``attack``, train with ``train`` and measure.

    ``train(x, y)`` returns a model trained on the poisoned set (the caller chooses the
    architecture and recipe). The test data stay clean; a trigger, if the attack has
    one, is stamped on them only to measure attack success.
    """
    data = attack.poison(x_train, y_train, n_classes=n_classes, bounds=bounds)
    model = train(data.x, data.y)
    with model.evaluating():
        accuracy = float((np.asarray(model.predict(x_test)) == np.asarray(y_test)).mean())
    success = None
    if data.trigger is not None:
        success = evaluate_backdoor(model, data, x_test, y_test).attack_success
    return PoisoningRun(data, model, accuracy, success)
