"""Gaussian blur: a differentiable low-pass filter over each channel."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from advml import registry
from advml.defences.preprocess.base import Preprocessor, Strength, check_optional
from advml.imaging import gaussian_blur

__all__ = ["GaussianBlur"]


@registry.register("preprocess", "gaussian_blur")
class GaussianBlur(Preprocessor):
    """Convolve each channel with a Gaussian kernel (a low-pass filter).

    Blurring removes high-frequency perturbations along with fine detail. It is linear
    and differentiable, so white-box gradients go through it exactly: it is only a
    defence against attackers who do not know about it.

    Parameters
    ----------
    strength : {"low", "medium", "high"}
        Preset width: sigma 0.5, 1.0 or 1.5 pixels.
    sigma : float, optional
        Standard deviation of the kernel in pixels (>= 0); overrides the preset.
    """

    differentiable = True
    randomised = False
    image_only = True
    presets: ClassVar[dict[str, dict[str, float]]] = {
        "low": {"sigma": 0.5},
        "medium": {"sigma": 1.0},
        "high": {"sigma": 1.5},
    }

    def __init__(self, *, strength: Strength = "medium", sigma: float | None = None) -> None:
        check_optional("sigma", sigma, low=0)
        self._init_strength(strength, sigma=sigma)

    def apply(self, x: Tensor, bounds: tuple[float, float], generator: torch.Generator) -> Tensor:
        return gaussian_blur(x, float(self.resolved()["sigma"])).clamp(*bounds)
