"""Spatial (median) smoothing: each pixel replaced by the median of its window."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from advml import registry
from advml.defences.preprocess.base import Preprocessor, Strength, check_optional
from advml.imaging import median_filter

__all__ = ["MedianSmoothing"]


@registry.register("preprocess", "median_smoothing")
class MedianSmoothing(Preprocessor):
    """Replace each pixel by the median of the ``size x size`` window around it.

    Xu, Evans & Qi (NDSS 2018, §3.2) use 2x2 and 3x3 windows as "local smoothing"
    squeezers. The median passes its gradient to one pixel per window only, so gradients
    through it are masked: an adaptive attacker uses BPDA (identity on the backward pass,
    Athalye et al. 2018, §4.1), hence ``differentiable = False``.

    Parameters
    ----------
    strength : {"low", "medium", "high"}
        Preset window: 3, 5 or 7 pixels. Odd windows are centred; an even window (Xu et
        al.'s 2x2) also shifts the image by half a pixel.
    size : int, optional
        Window width in pixels (>= 1); overrides the preset.
    """

    differentiable = False
    randomised = False
    image_only = True
    presets: ClassVar[dict[str, dict[str, float]]] = {
        "low": {"size": 3},
        "medium": {"size": 5},
        "high": {"size": 7},
    }

    def __init__(self, *, strength: Strength = "medium", size: int | None = None) -> None:
        check_optional("size", size, low=1, integer=True)
        self._init_strength(strength, size=size)

    def apply(self, x: Tensor, bounds: tuple[float, float], generator: torch.Generator) -> Tensor:
        return median_filter(x, int(self.resolved()["size"]))
