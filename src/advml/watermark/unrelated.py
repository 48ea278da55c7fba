"""Unrelated-class trigger-set watermark (Zhang et al., AsiaCCS 2018, "WM_unrelated")."""

from __future__ import annotations

from typing import Literal

import numpy as np
from torch import Tensor

from advml import registry
from advml.models.torch import TorchClassifier
from advml.watermark._images import stroke_glyphs, to_bounds
from advml.watermark.base import TriggerSetScheme, check_training, check_trigger_settings

__all__ = ["Unrelated"]


@registry.register("watermark", "unrelated")
class Unrelated(TriggerSetScheme):
    """Inputs of a class foreign to the task, with labels drawn from the key.

    Zhang et al. (2018, §3.1) use images from an unrelated class (handwritten letters for
    a digit classifier, digits for CIFAR). Offline and without a second dataset, the
    unrelated class here is letter-like glyphs of 2–4 random strokes drawn from the
    owner's key; labels are uniform over the K classes per trigger (the paper gives them
    one target class; see :class:`~advml.watermark.content.Content`).

    Parameters
    ----------
    n_triggers : int
        Number of glyphs; default 100.
    trigger_batch : int
        Triggers added to each training batch of ``batch_size``; default 64.
    epochs : int
        Fine-tuning epochs; default 15.
    lr : float
        Adam learning rate; default 1e-3 (the reference models' training rate).
    batch_size : int
        Training samples per step; default 64.
    schedule : {"constant", "cosine"}
        Learning rate of the fine-tuning: constant, or cosine decay from ``lr`` to 0
        (see :func:`advml.models.training.train`); default constant.
    """

    def __init__(
        self,
        *,
        n_triggers: int = 100,
        trigger_batch: int = 64,
        epochs: int = 15,
        lr: float = 1e-3,
        batch_size: int = 64,
        schedule: Literal["constant", "cosine"] = "constant",
    ) -> None:
        check_trigger_settings(n_triggers=n_triggers, trigger_batch=trigger_batch)
        check_training(epochs=epochs, lr=lr, batch_size=batch_size, schedule=schedule)
        self.n_triggers = n_triggers
        self.trigger_batch = trigger_batch
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.schedule = schedule

    def _triggers(
        self, model: TorchClassifier, x: Tensor, y: Tensor, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray | None, dict[str, np.ndarray]]:
        glyphs = stroke_glyphs(self.n_triggers, model.input_shape, rng)
        return to_bounds(glyphs, model.bounds), None, {}
