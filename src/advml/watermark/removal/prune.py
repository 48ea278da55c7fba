"""Magnitude pruning removal (Han et al. 2015; the attack Uchida et al. 2017, §4.3, test)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from advml import registry
from advml.errors import UnsupportedModelError
from advml.models.base import Classifier
from advml.models.torch import TorchClassifier
from advml.validation import check_number
from advml.watermark.removal.base import RemovalAttack

__all__ = ["Prune", "weight_layers"]


def weight_layers(model: TorchClassifier) -> list[str]:
    """Layers with a weight matrix or kernel (convolutional and dense layers)."""
    return [
        name
        for name, m in model.module.named_modules()
        if name and isinstance(getattr(m, "weight", None), nn.Parameter) and m.weight.ndim >= 2
    ]


def _check_layers(layers: Sequence[str] | None) -> None:
    if layers is None:
        return
    if isinstance(layers, str) or not all(isinstance(n, str) and n for n in layers) or not layers:
        raise ValueError(f"layers must be a non-empty list of layer names or None, got {layers!r}")


@registry.register("watermark_removal", "prune")
class Prune(RemovalAttack):
    """Magnitude pruning: zero the smallest weights of each chosen layer.

    In each layer, the ``rate`` fraction of weights with the smallest absolute value is
    set to zero (Han et al. 2015; the attack Uchida et al. 2017, §4.3, test against).
    Biases are kept. Nothing is retrained.

    Parameters
    ----------
    rate : float
        Fraction of each layer's weights to zero, in [0, 1); default 0.5.
    layers : list of str, optional
        Layers to prune; default every convolutional and dense layer.
    """

    needs_labels = False

    def __init__(self, *, rate: float = 0.5, layers: list[str] | None = None) -> None:
        check_number("rate", rate, low=0, high=1, high_inclusive=False)
        _check_layers(layers)
        self.rate = rate
        self.layers = None if layers is None else list(layers)

    def _run(self, model: TorchClassifier, x: Tensor, y: Tensor | None) -> Classifier:
        out = model.clone()
        names = self.layers or weight_layers(out)
        modules = dict(out.module.named_modules())
        for name in names:
            module = modules.get(name)
            weight = getattr(module, "weight", None)
            if not isinstance(weight, nn.Parameter):
                raise UnsupportedModelError(
                    f"layer {name!r} has no weights to prune; layers with weights: "
                    f"{', '.join(weight_layers(out))}"
                )
            k = math.floor(self.rate * weight.numel())
            if k == 0:
                continue
            with torch.no_grad():
                flat = weight.abs().flatten()
                cut = flat.kthvalue(k).values
                # Ties at the threshold: zero exactly k weights, the first ones in order.
                below = flat < cut
                ties = torch.nonzero(flat == cut).flatten()[: k - int(below.sum())]
                mask = below.clone()
                mask[ties] = True
                weight.view(-1)[mask] = 0.0
        return out
