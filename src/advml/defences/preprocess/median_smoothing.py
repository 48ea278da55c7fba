"""Spatial (median) smoothing: each pixel replaced by the median of its window."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor
from torch.nn import functional as F

from advml import registry
from advml.defences.preprocess.base import Preprocessor, Strength, check_optional

__all__ = ["MedianSmoothing", "median_filter"]


def median_filter(x: Tensor, size: int) -> Tensor:
    """Median over ``size x size`` windows of each channel of ``x`` (n, c, h, w).

    The image is padded by reflection (replication for images too small to reflect),
    with the extra row/column of an even window on the bottom/right, as in
    ``scipy.ndimage.median_filter``'s centring. The median of an even count is the lower
    of the two middle values (``torch.median``'s convention).
    """
    if size == 1:
        return x.clone()
    before, after = (size - 1) // 2, size // 2
    h, w = x.shape[-2:]
    mode = "reflect" if min(h, w) > max(before, after) else "replicate"
    padded = F.pad(x, (before, after, before, after), mode=mode)
    windows = padded.unfold(2, size, 1).unfold(3, size, 1)  # (n, c, h, w, size, size)
    values = windows.reshape(*windows.shape[:4], -1)
    k = values.shape[-1]
    if k % 2:
        return values.median(dim=-1).values
    middle = values.sort(dim=-1).values[..., k // 2 - 1 : k // 2 + 1]
    return middle.mean(dim=-1)


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
