"""Accuracy-type metrics."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from advml.metrics.norms import _as_numpy
from advml.models.base import Classifier
from advml.validation import check_labels

__all__ = ["accuracy", "attack_success_rate", "robust_accuracy"]


def accuracy(
    model: Classifier,
    x: np.ndarray | Tensor,
    y: np.ndarray | Tensor,
    *,
    batch_size: int | None = None,
) -> float:
    """Fraction of ``x`` the model labels ``y``."""
    y_np = _as_numpy(y)
    check_labels("y", y_np, model.n_classes, len(x))
    pred = _as_numpy(model.predict(x, batch_size=batch_size))
    return float((pred == y_np).mean())


def robust_accuracy(
    model: Classifier,
    x_adv: np.ndarray | Tensor,
    y: np.ndarray | Tensor,
    *,
    batch_size: int | None = None,
) -> float:
    """Accuracy on adversarial inputs: the fraction still labelled with the true ``y``.

    This is the number a defender plans with. It counts an input the model already
    got wrong as not robust, whatever the attack did.
    """
    return accuracy(model, x_adv, y, batch_size=batch_size)


def attack_success_rate(
    y_true: np.ndarray | Tensor,
    y_clean: np.ndarray | Tensor,
    y_adv: np.ndarray | Tensor,
    *,
    y_target: np.ndarray | Tensor | None = None,
) -> float:
    """Success rate over the inputs the model classified correctly before the attack.

    Untargeted: the fraction of correctly classified inputs whose prediction changed.
    Targeted (``y_target`` given): the fraction of correctly classified inputs whose true
    label is not the target that now get the target. ``nan`` when no input qualifies.
    """
    t, c, a = _as_numpy(y_true), _as_numpy(y_clean), _as_numpy(y_adv)
    if not (t.shape == c.shape == a.shape):
        raise ValueError(
            f"y_true, y_clean and y_adv must have one shape; got {t.shape}, {c.shape}, {a.shape}"
        )
    eligible = c == t
    if y_target is None:
        hits = a != t
    else:
        tgt = _as_numpy(y_target)
        eligible &= tgt != t
        hits = a == tgt
    return float(hits[eligible].mean()) if eligible.any() else float("nan")
