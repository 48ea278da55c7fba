"""Fine-pruning removal (Liu, Dolan-Gavitt & Garg, RAID 2018, §4)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from advml import registry
from advml.errors import UnsupportedModelError
from advml.models.base import Classifier
from advml.models.torch import TorchClassifier
from advml.validation import check_number
from advml.watermark.removal.base import RemovalAttack

__all__ = ["FinePrune", "default_unit_layer"]


def default_unit_layer(model: TorchClassifier) -> str:
    """The last convolutional layer, or else the last hidden dense layer."""
    convs = [n for n, m in model.module.named_modules() if isinstance(m, nn.Conv1d | nn.Conv2d)]
    if convs:
        return convs[-1]
    dense = [n for n, m in model.module.named_modules() if isinstance(m, nn.Linear)]
    if len(dense) < 2:
        raise UnsupportedModelError("fine-pruning needs a hidden layer; this model has none")
    return dense[-2]


@registry.register("watermark_removal", "fine_prune")
class FinePrune(RemovalAttack):
    """Prune the units least active on clean data, then fine-tune (Liu et al. 2018, §4).

    Units of ``layer`` are ranked by their mean activation on the attacker's inputs;
    the ``rate`` fraction with the lowest is masked (through the model's unit masks, so
    they stay pruned during fine-tuning), then all layers are fine-tuned.

    Parameters
    ----------
    rate : float
        Fraction of the layer's units to prune, in [0, 1); default 0.5.
    layer : str, optional
        Layer whose units are pruned; default the last convolutional layer, or the last
        hidden dense layer.
    epochs : int
        Fine-tuning epochs after pruning; default 5.
    lr : float
        Adam learning rate; default 1e-3.
    batch_size : int
        Samples per step; default 64.
    seed : int
        Seeds the shuffling; default 0.
    """

    def __init__(
        self,
        *,
        rate: float = 0.5,
        layer: str | None = None,
        epochs: int = 5,
        lr: float = 1e-3,
        batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        check_number("rate", rate, low=0, high=1, high_inclusive=False)
        if layer is not None and (not isinstance(layer, str) or not layer):
            raise ValueError(f"layer must be a layer name or None, got {layer!r}")
        self.rate = rate
        self.layer = layer
        self._set_tuning(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)

    def _run(self, model: TorchClassifier, x: Tensor, y: Tensor | None) -> Classifier:
        assert y is not None  # checked by remove()
        out = model.clone()
        layer = self.layer or default_unit_layer(out)
        acts = torch.as_tensor(out.activations(x, layer))
        mean = acts.transpose(0, 1).flatten(1).mean(dim=1)
        n_prune = math.floor(self.rate * mean.numel())
        keep = torch.ones(mean.numel(), dtype=torch.bool)
        keep[torch.argsort(mean, stable=True)[:n_prune]] = False
        out.set_unit_mask(layer, keep)
        self._fine_tune(out, x, y)
        return out
