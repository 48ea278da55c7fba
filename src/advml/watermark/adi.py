"""Abstract-image trigger-set watermark (Adi, Baum, Cisse, Pinkas & Keshet, USENIX Sec. 2018)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from torch import Tensor

from advml import registry
from advml.models.torch import TorchClassifier
from advml.watermark._images import abstract_images, to_bounds
from advml.watermark.base import TriggerSetScheme, check_training, check_trigger_settings

__all__ = ["Adi"]


@registry.register("watermark", "adi")
class Adi(TriggerSetScheme):
    """Abstract images with labels drawn from the key, learned alongside the task.

    The owner's key generates ``n_triggers`` abstract images (coarse random patterns,
    smoothly upsampled) and one label per image, uniform over the K classes; embedding
    fine-tunes the model on its training data with triggers mixed into every batch
    (Adi et al. 2018, §4, "backdooring" with a trigger set of abstract images and
    random labels). Verification asks the model for the triggers' labels: a model not
    trained on the key agrees with each random label with probability 1/K.

    Parameters
    ----------
    n_triggers : int
        Size of the trigger set; default 100 (as in the paper).
    trigger_batch : int
        Triggers added to each training batch of ``batch_size``; default 64.
    epochs : int
        Fine-tuning epochs; default 15.
    lr : float
        Adam learning rate; default 1e-3 (the reference models' training rate).
    batch_size : int
        Training samples per step (before the triggers are added); default 64.
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
        images = abstract_images(self.n_triggers, model.input_shape, rng)
        return to_bounds(images, model.bounds), None, {}
