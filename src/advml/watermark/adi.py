"""Abstract-image trigger-set watermark (Adi, Baum, Cisse, Pinkas & Keshet, USENIX Sec. 2018)."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from advml import registry
from advml.models.torch import TorchClassifier
from advml.watermark._images import abstract_images, to_bounds
from advml.watermark.base import TRIGGER_SET_PARAMETERS, TriggerSetScheme

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
    """

    __doc__ = (__doc__ or "") + TRIGGER_SET_PARAMETERS

    def _triggers(
        self, model: TorchClassifier, x: Tensor, y: Tensor, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray | None, dict[str, np.ndarray]]:
        images = abstract_images(self.n_triggers, model.input_shape, rng)
        return to_bounds(images, model.bounds), None, {}
