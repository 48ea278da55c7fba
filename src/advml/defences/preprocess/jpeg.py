"""JPEG compression with a real codec (Pillow): a non-differentiable defence."""

from __future__ import annotations

import io
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from advml import registry
from advml.defences.preprocess.base import (
    Preprocessor,
    Strength,
    check_optional,
    from_unit,
    to_unit,
)

__all__ = ["JPEGCompression", "jpeg_compress"]


def jpeg_compress(
    x: Tensor, quality: int | Tensor | np.ndarray, bounds: tuple[float, float]
) -> Tensor:
    """Encode and decode each image of ``x`` (n, c, h, w) as JPEG at ``quality``.

    Values are mapped from ``bounds`` to 8-bit pixels first. One-channel images are
    coded as greyscale, three-channel ones as RGB (with the codec's chroma subsampling),
    any other channel count one channel at a time. ``quality`` is one number or one per
    image (1-95). The result has no gradient: the codec runs in Pillow on the CPU.
    """
    from PIL import Image

    n, c = x.shape[:2]
    q = np.broadcast_to(np.asarray(quality, dtype=np.int64).reshape(-1), (n,))
    pixels = (to_unit(x.detach(), bounds).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    out = np.empty_like(pixels)
    for i in range(n):
        if c == 3:
            out[i] = _roundtrip(Image.fromarray(pixels[i].transpose(1, 2, 0), "RGB"), int(q[i]))
        else:
            for ch in range(c):
                out[i, ch] = _roundtrip(Image.fromarray(pixels[i, ch], "L"), int(q[i]))
    decoded = torch.from_numpy(out.astype(np.float32) / 255.0).to(x.device)
    return from_unit(decoded, bounds).to(x.dtype)


def _roundtrip(image: object, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)  # type: ignore[attr-defined]
    buffer.seek(0)
    from PIL import Image

    with Image.open(buffer) as decoded:
        arr = np.asarray(decoded)
    return arr.transpose(2, 0, 1) if arr.ndim == 3 else arr


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
