"""Image operations shared by attacks and defences: blur, JPEG, median, bit depth, noise, shift.

A neutral module below every family: evasion (EOT's physical-world transformations),
the input-cleansing defences, feature-squeezing detection, watermark removal, backdoor
fine-pruning and label-only membership all transform images the same way, so the
operations live here once and each family imports them. It depends on torch, numpy and
(for JPEG, imported when first used) Pillow only.

Every function takes a float tensor batch and returns a new tensor; none modifies its
input. Images are ``(n, channels, height, width)``; ``bounds`` is the ``(low, high)``
range of valid values.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = [
    "add_gaussian_noise",
    "from_unit",
    "gaussian_blur",
    "jpeg_compress",
    "median_filter",
    "random_shift",
    "reduce_bit_depth",
    "to_unit",
]


def to_unit(x: Tensor, bounds: tuple[float, float]) -> Tensor:
    """``x`` rescaled from ``bounds`` to ``[0, 1]``."""
    low, high = bounds
    return (x - low) / (high - low)


def from_unit(u: Tensor, bounds: tuple[float, float]) -> Tensor:
    """``u`` in ``[0, 1]`` rescaled to ``bounds``."""
    low, high = bounds
    return u * (high - low) + low


def gaussian_blur(x: Tensor, sigma: float | Tensor) -> Tensor:
    """Blur each channel of ``x`` (n, c, h, w) with a Gaussian of ``sigma`` pixels.

    ``sigma`` is a number, or a tensor of shape ``(n,)`` with one width per image. The
    kernel spans ``2 * ceil(2 * max sigma) + 1`` pixels; edges are replicated, so a
    constant image stays constant. Differentiable in ``x`` (and in ``sigma``).
    """
    sig = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
    if float(sig.max()) <= 0:
        return x.clone()
    radius = max(1, math.ceil(2 * float(sig.max())))
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    # One separable 1-d kernel per image; zero width gives the identity kernel.
    s = sig.clamp_min(1e-6)[:, None]
    kernel = torch.exp(-0.5 * (offsets[None, :] / s) ** 2)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)
    n, c, h, w = x.shape
    kernel = kernel.expand(n, -1) if kernel.shape[0] == 1 else kernel
    k = kernel.repeat_interleave(c, dim=0)  # (n*c, size)
    flat = x.reshape(1, n * c, h, w)
    flat = F.pad(flat, (radius, radius, radius, radius), mode="replicate")
    flat = F.conv2d(flat, k[:, None, None, :], groups=n * c)
    flat = F.conv2d(flat, k[:, None, :, None], groups=n * c)
    return flat.reshape(n, c, h, w)


def jpeg_compress(
    x: Tensor, quality: int | Tensor | np.ndarray, bounds: tuple[float, float]
) -> Tensor:
    """Encode and decode each image of ``x`` (n, c, h, w) as JPEG at ``quality``.

    Values are mapped from ``bounds`` to 8-bit pixels first. One-channel images are
    coded as greyscale, three-channel ones as RGB (with the codec's chroma subsampling),
    any other channel count one channel at a time. ``quality`` is one number or one per
    image (1-95). The result has no gradient: the codec runs in Pillow on the CPU.
    """
    from PIL import Image  # the codec, loaded on first use: importing advml stays fast

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


def _roundtrip(image: Any, quality: int) -> np.ndarray:
    from PIL import Image

    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        arr = np.asarray(decoded)
    return arr.transpose(2, 0, 1) if arr.ndim == 3 else arr


def median_filter(x: Tensor, size: int) -> Tensor:
    """Median over ``size x size`` windows of each channel of ``x`` (n, c, h, w).

    The image is padded by reflection (replication for images too small to reflect),
    with the extra row/column of an even window on the bottom/right, as in
    ``scipy.ndimage.median_filter``'s centring. The median of an even count is the mean
    of the two middle values.
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


def reduce_bit_depth(x: Tensor, bits: int, bounds: tuple[float, float]) -> Tensor:
    """``x`` quantised to ``2**bits`` levels spread evenly over ``bounds``.

    Xu, Evans & Qi (NDSS 2018, §3.1): ``round(x * (2^i - 1)) / (2^i - 1)`` for ``x`` in
    [0, 1].
    """
    levels = 2**bits - 1
    return from_unit(torch.round(to_unit(x, bounds).clamp(0, 1) * levels) / levels, bounds)


def add_gaussian_noise(
    x: Tensor, sigma: float, bounds: tuple[float, float], generator: torch.Generator
) -> Tensor:
    """``x`` plus ``N(0, (sigma * (high - low))^2)`` noise per feature, clipped to ``bounds``.

    ``sigma`` is relative to the width of the bounds. The noise is drawn from
    ``generator`` (on ``x``'s device), so the same generator state gives the same draw.
    """
    low, high = bounds
    std = sigma * (high - low)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x + std * noise).clamp(low, high)


def random_shift(x: Tensor, max_shift: int, generator: torch.Generator) -> Tensor:
    """Each image of ``x`` ``(n, c, h, w)`` translated by its own random ``(dy, dx)``.

    Offsets are drawn uniformly from ``[-max_shift, max_shift]`` per axis; the pixels
    that enter at an edge repeat the edge (replicate padding), so no value outside the
    image's own range appears. ``max_shift=0`` returns ``x`` unchanged.
    """
    if max_shift == 0:
        return x
    n, _, h, w = x.shape
    k = max_shift
    padded = F.pad(x, (k, k, k, k), mode="replicate")
    # Drawn on the generator's device, so a CPU generator serves inputs on any device.
    dy = torch.randint(0, 2 * k + 1, (n,), generator=generator, device=generator.device)
    dx = torch.randint(0, 2 * k + 1, (n,), generator=generator, device=generator.device)
    dy, dx = dy.to(x.device), dx.to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device)[None, :])[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device)[None, :])[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]
