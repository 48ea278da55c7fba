"""JPEG compression with a real codec (Pillow): a non-differentiable defence."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from advml import registry
from advml.defences.preprocess.base import Preprocessor, Strength, check_optional
from advml.imaging import jpeg_compress

__all__ = ["JPEGCompression"]


@registry.register("preprocess", "jpeg")
class JPEGCompression(Preprocessor):
    """Compress every image with JPEG at ``quality`` and decode it again.

    JPEG drops high-frequency detail, where small perturbations live (Dziugaite et al.
    2016; Das et al. 2017). The codec has no gradient, so a standard gradient attack
    sees zero gradients (gradient masking); an adaptive attacker uses BPDA with the
    identity on the backward pass (Athalye et al. 2018, §4.1).

    Parameters
    ----------
    strength : {"low", "medium", "high"}
        Preset quality: 75, 50 or 25 (lower quality is a stronger squeeze).
    quality : int, optional
        JPEG quality from 1 (worst) to 95; overrides the preset.
    """

    differentiable = False
    randomised = False
    image_only = True
    presets: ClassVar[dict[str, dict[str, float]]] = {
        "low": {"quality": 75},
        "medium": {"quality": 50},
        "high": {"quality": 25},
    }

    def __init__(self, *, strength: Strength = "medium", quality: int | None = None) -> None:
        check_optional("quality", quality, low=1, high=95, integer=True)
        self._init_strength(strength, quality=quality)

    def apply(self, x: Tensor, bounds: tuple[float, float], generator: torch.Generator) -> Tensor:
        return jpeg_compress(x, int(self.resolved()["quality"]), bounds)
