"""Feature squeezing by bit-depth reduction (Xu, Evans & Qi, NDSS 2018)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from advml import registry
from advml.defences.preprocess.base import Preprocessor, Strength, check_optional
from advml.imaging import reduce_bit_depth

__all__ = ["FeatureSqueezing"]


@registry.register("preprocess", "feature_squeezing")
class FeatureSqueezing(Preprocessor):
    """Reduce the colour depth of every input feature to ``bit_depth`` bits.

    Rounding has a zero gradient almost everywhere, so plain gradients through it are
    useless (gradient masking); an adaptive attacker uses BPDA (Athalye et al. 2018,
    §4.1, who break exactly this defence), hence ``differentiable = False``.

    Parameters
    ----------
    strength : {"low", "medium", "high"}
        Preset depth: 4, 2 or 1 bit (1 bit is Xu et al.'s MNIST setting).
    bit_depth : int, optional
        Bits per feature (1 to 16); overrides the preset.
    """

    differentiable = False
    randomised = False
    presets: ClassVar[dict[str, dict[str, float]]] = {
        "low": {"bit_depth": 4},
        "medium": {"bit_depth": 2},
        "high": {"bit_depth": 1},
    }

    def __init__(self, *, strength: Strength = "medium", bit_depth: int | None = None) -> None:
        check_optional("bit_depth", bit_depth, low=1, high=16, integer=True)
        self._init_strength(strength, bit_depth=bit_depth)

    def apply(self, x: Tensor, bounds: tuple[float, float], generator: torch.Generator) -> Tensor:
        return reduce_bit_depth(x, int(self.resolved()["bit_depth"]), bounds)
