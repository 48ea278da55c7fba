"""Unrelated-class trigger-set watermark (Zhang et al., AsiaCCS 2018, "WM_unrelated")."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from advml import registry
from advml.models.torch import TorchClassifier
from advml.watermark._images import stroke_glyphs, to_bounds
from advml.watermark.base import TRIGGER_SET_PARAMETERS, TriggerSetScheme

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
    """

    __doc__ = (__doc__ or "") + TRIGGER_SET_PARAMETERS

    def _triggers(
        self, model: TorchClassifier, x: Tensor, y: Tensor, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray | None, dict[str, np.ndarray]]:
        glyphs = stroke_glyphs(self.n_triggers, model.input_shape, rng)
        return to_bounds(glyphs, model.bounds), None, {}
