"""Fine-tuning removal: FTLL, FTAL, RTLL, RTAL (Adi et al., USENIX Security 2018, §5.1).

One attack with two switches: which layers are trained (the last one, or all) and
whether the last layer is re-initialised first. Each variant is registered under its
own name, as in the paper.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from advml import registry
from advml.models.base import Classifier
from advml.models.torch import TorchClassifier, reinitialise
from advml.watermark.base import last_layer
from advml.watermark.removal.base import RemovalAttack

__all__ = ["FTAL", "FTLL", "RTAL", "RTLL"]


class _FineTuning(RemovalAttack):
    """Fine-tuning with the last layer kept or re-initialised (Adi et al. 2018, §5.1)."""

    reinitialise: ClassVar[bool] = False
    all_layers: ClassVar[bool] = False

    def __init__(
        self, *, epochs: int = 10, lr: float = 1e-3, batch_size: int = 64, seed: int = 0
    ) -> None:
        self._set_tuning(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)

    def _run(self, model: TorchClassifier, x: Tensor, y: Tensor | None) -> Classifier:
        assert y is not None  # checked by remove()
        out = model.clone()
        head = dict(out.module.named_modules())[last_layer(out)]
        if self.reinitialise:
            reinitialise(head, self.seed)
        self._fine_tune(out, x, y, params=None if self.all_layers else list(head.parameters()))
        return out


_TUNING_DOC = """

    Parameters
    ----------
    epochs : int
        Passes over the attacker's data; default 10.
    lr : float
        Adam learning rate; default 1e-3 (the reference models' training rate).
    batch_size : int
        Samples per step; default 64.
    seed : int
        Seeds the shuffling and any re-initialisation; default 0.
    """


@registry.register("watermark_removal", "ftll")
class FTLL(_FineTuning):
    __doc__ = "Fine-tune the last layer only on the attacker's data (FTLL)." + _TUNING_DOC


@registry.register("watermark_removal", "ftal")
class FTAL(_FineTuning):
    __doc__ = "Fine-tune all layers on the attacker's data (FTAL)." + _TUNING_DOC
    all_layers = True


@registry.register("watermark_removal", "rtll")
class RTLL(_FineTuning):
    __doc__ = "Re-initialise the last layer, then train it alone (RTLL)." + _TUNING_DOC
    reinitialise = True


@registry.register("watermark_removal", "rtal")
class RTAL(_FineTuning):
    __doc__ = "Re-initialise the last layer, then train all layers (RTAL)." + _TUNING_DOC
    reinitialise = True
    all_layers = True
