"""Noise trigger-set watermark (Zhang et al., AsiaCCS 2018, "WM_noise")."""

from __future__ import annotations

from typing import Literal

import numpy as np
from torch import Tensor

from advml import registry
from advml.models.torch import TorchClassifier
from advml.validation import check_number
from advml.watermark.base import TRIGGER_SET_PARAMETERS, TriggerSetScheme
from advml.watermark.content import pick_sources

__all__ = ["Noise"]


@registry.register("watermark", "noise")
class Noise(TriggerSetScheme):
    """Training images with strong Gaussian noise drawn from the key, relabelled.

    Zhang et al. (2018, §3.1) add Gaussian noise to training images and teach the model
    a label for the noisy images. The noise of every trigger is drawn from the owner's
    key with standard deviation ``std`` (relative to the width of the input bounds) and
    the result clipped to the bounds. Labels are drawn per trigger among the classes
    other than the source class (see :class:`~advml.watermark.content.Content` for why).

    Parameters
    ----------
    n_triggers : int
        Number of noisy images; default 100.
    std : float
        Standard deviation of the noise as a fraction of the bounds' width (> 0);
        default 0.4.
    """

    __doc__ = (__doc__ or "") + TRIGGER_SET_PARAMETERS

    def __init__(
        self,
        *,
        n_triggers: int = 100,
        std: float = 0.4,
        trigger_batch: int = 64,
        epochs: int = 15,
        lr: float = 1e-3,
        batch_size: int = 64,
        schedule: Literal["constant", "cosine"] = "constant",
    ) -> None:
        super().__init__(
            n_triggers=n_triggers,
            trigger_batch=trigger_batch,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            schedule=schedule,
        )
        check_number("std", std, low=0, low_inclusive=False)
        self.std = std

    def _triggers(
        self, model: TorchClassifier, x: Tensor, y: Tensor, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray | None, dict[str, np.ndarray]]:
        xs, source = pick_sources(x, y, self.n_triggers, rng)
        low, high = model.bounds
        xs = xs + rng.normal(0.0, self.std * (high - low), size=xs.shape)
        return xs, source, {}
