"""Additive Gaussian noise: a randomised input-cleansing defence."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from advml import registry
from advml.defences.preprocess.base import Preprocessor, Strength, check_optional, check_seed
from advml.imaging import add_gaussian_noise

__all__ = ["GaussianNoise"]


@registry.register("preprocess", "gaussian_noise")
class GaussianNoise(Preprocessor):
    """Add ``N(0, sigma^2)`` noise to every input feature, then clip to the bounds.

    Noise drowns a small adversarial perturbation on some draws; against an attacker who
    knows about it, averaging the gradient over the noise (EOT, Athalye et al. 2018,
    §4.3) recovers the attack. ``sigma`` is relative to the width of the bounds.

    Parameters
    ----------
    strength : {"low", "medium", "high"}
        Preset noise level: sigma 0.05, 0.1 or 0.2 of the bounds' width.
    sigma : float, optional
        Standard deviation (fraction of the bounds' width, >= 0); overrides the preset.
    seed : int, optional
        Seed of the noise when called directly; the same seed gives the same output.

    Examples
    --------
    >>> import numpy as np
    >>> from advml.defences.preprocess import GaussianNoise
    >>> GaussianNoise(strength="low")(np.full((2, 1, 4, 4), 0.5, np.float32)).shape
    (2, 1, 4, 4)
    """

    differentiable = True
    randomised = True
    presets: ClassVar[dict[str, dict[str, float]]] = {
        "low": {"sigma": 0.05},
        "medium": {"sigma": 0.1},
        "high": {"sigma": 0.2},
    }

    def __init__(
        self, *, strength: Strength = "medium", sigma: float | None = None, seed: int | None = 0
    ) -> None:
        check_optional("sigma", sigma, low=0)
        check_seed(seed)
        self._init_strength(strength, sigma=sigma)
        self.seed = seed

    def apply(self, x: Tensor, bounds: tuple[float, float], generator: torch.Generator) -> Tensor:
        return add_gaussian_noise(x, float(self.resolved()["sigma"]), bounds, generator)
