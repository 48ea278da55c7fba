"""Key-seeded pictures for trigger sets: smooth abstract patterns, logos, stroke glyphs.

Each function takes a numpy generator drawn from the owner's key and returns float
arrays in ``[0, 1]`` (the callers scale them to the model's bounds).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch.nn import functional as F

__all__ = ["abstract_images", "is_image", "logo", "stroke_glyphs", "to_bounds"]


def is_image(input_shape: tuple[int, ...]) -> bool:
    """Channels-first images ``(C, H, W)`` with at least 4x4 pixels."""
    return len(input_shape) == 3 and min(input_shape[1:]) >= 4


def to_bounds(unit: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    low, high = bounds
    return (low + (high - low) * unit).astype(np.float32)


def abstract_images(n: int, input_shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Abstract pictures: coarse random patterns, smoothly upsampled, with random contrast.

    They stand in for the abstract images Adi et al. (2018, §4) took from the web: out of
    the data's distribution, so that the labels the owner assigns them are arbitrary.
    Inputs that are not images get uniform random vectors.
    """
    if not is_image(input_shape):
        return rng.random((n, *input_shape))
    c, h, w = input_shape
    out = np.empty((n, c, h, w))
    for i in range(n):
        rows = int(rng.integers(2, max(3, h // 3) + 1))
        cols = int(rng.integers(2, max(3, w // 3) + 1))
        coarse = rng.random((1, c, rows, cols))
        smooth = F.interpolate(
            torch.as_tensor(coarse), size=(h, w), mode="bilinear", align_corners=False
        )[0].numpy()
        lo, hi = smooth.min(), smooth.max()
        smooth = (smooth - lo) / max(hi - lo, 1e-9)
        gamma = float(rng.uniform(0.5, 2.0))
        out[i] = smooth**gamma
    return out


def logo(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A binary ``shape`` pattern with about half its pixels on (the owner's "logo")."""
    return (rng.random(shape) < 0.5).astype(np.float64)


def stroke_glyphs(n: int, input_shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Letter-like glyphs of 2–4 random strokes on a dark background.

    They play the "unrelated class" of Zhang et al. (2018, §3.1), who used images of a
    class foreign to the task (e.g. letters for a digit classifier). Inputs that are not
    images get vectors drawn from a Beta(0.3, 0.3) (far from a typical sample).
    """
    if not is_image(input_shape):
        return rng.beta(0.3, 0.3, size=(n, *input_shape))
    c, h, w = input_shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    thickness = max(1.0, 0.12 * min(h, w))
    out = np.zeros((n, c, h, w))
    for i in range(n):
        canvas = np.zeros((h, w))
        points = rng.uniform(0.15, 0.85, size=(int(rng.integers(3, 6)), 2)) * [h - 1, w - 1]
        for (y0, x0), (y1, x1) in itertools.pairwise(points):
            dy, dx = y1 - y0, x1 - x0
            length2 = max(dy * dy + dx * dx, 1e-9)
            t = np.clip(((yy - y0) * dy + (xx - x0) * dx) / length2, 0.0, 1.0)
            dist = np.hypot(yy - (y0 + t * dy), xx - (x0 + t * dx))
            canvas = np.maximum(canvas, np.clip(1.0 - (dist - thickness / 2), 0.0, 1.0))
        out[i] = canvas[None]
    return out
