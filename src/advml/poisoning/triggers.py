"""Backdoor triggers: what an attacker stamps on an input to switch the backdoor on.

Every trigger is a mask ``m`` and a pattern ``p`` of the input's shape, applied as

    x' = (1 - m) * x + m * p                                  (Wang et al. 2019, eq. 1)

so a stamped patch (``m`` = 1 on the patch), a blended image (``m`` = ``alpha``
everywhere, Chen et al. 2017) and set tabular features all read the same way, and the
trigger Neural Cleanse reverse-engineers can be shown beside the real one.

Values are given as fractions of the model's input range: ``value=1.0`` is the largest
valid value (white for images in [0, 1]), ``0.0`` the smallest.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import torch
from torch import Tensor

from advml import registry
from advml.base import Component
from advml.validation import check_bounds, check_choice, check_number

__all__ = ["BlendedTrigger", "PatternTrigger", "PixelTrigger", "TabularTrigger", "Trigger"]

Corner = Literal["bottom-right", "bottom-left", "top-right", "top-left"]


class Trigger(Component):
    """Base of triggers: a mask and a pattern for one input shape.

    Subclasses implement :meth:`_mask_pattern` on an image ``(C, H, W)`` or a vector
    ``(d,)`` shape with values in [0, 1] (fractions of the range).
    """

    family: ClassVar[str] = "trigger"
    image_only: ClassVar[bool] = True

    def mask_pattern(
        self, input_shape: tuple[int, ...], bounds: tuple[float, float] = (0.0, 1.0)
    ) -> tuple[np.ndarray, np.ndarray]:
        """The mask ``m`` (in [0, 1]) and pattern ``p`` (in ``bounds``), both of ``input_shape``.

        Raises
        ------
        ValueError
            When the trigger does not fit the shape (e.g. a 5x5 patch on a 4x4 image).
        """
        shape = tuple(int(d) for d in input_shape)
        low, high = check_bounds("bounds", bounds)
        if self.image_only and len(shape) != 3:
            raise ValueError(
                f"a {self.name!r} trigger needs image inputs (channels, height, width), got "
                f"input shape {shape}; use the 'tabular' trigger for feature vectors"
            )
        mask, pattern = self._mask_pattern(shape)
        return mask.astype(np.float32), (low + pattern * (high - low)).astype(np.float32)

    def apply(
        self, x: np.ndarray | Tensor, bounds: tuple[float, float] = (0.0, 1.0)
    ) -> np.ndarray | Tensor:
        """Stamp the trigger on every input of ``x`` (shape ``(n, *input_shape)``).

        Numpy in, numpy out (same dtype for float input, float32 otherwise); tensor in,
        tensor out. ``x`` is not modified.
        """
        if x.ndim < 2:
            raise ValueError(f"x must be a batch (n, *input_shape), got shape {tuple(x.shape)}")
        mask, pattern = self.mask_pattern(tuple(x.shape[1:]), bounds)
        if isinstance(x, Tensor):
            tdtype = x.dtype if x.is_floating_point() else torch.float32
            m = torch.as_tensor(mask, device=x.device, dtype=tdtype)
            p = torch.as_tensor(pattern, device=x.device, dtype=tdtype)
            return (1 - m) * x.to(tdtype) + m * p
        arr = np.asarray(x)
        ndtype = arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.dtype(np.float32)
        out = (1 - mask) * arr.astype(ndtype) + mask * pattern
        return out.astype(ndtype, copy=False)

    def _mask_pattern(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


def _corner_slices(
    corner: str, size: int, margin: int, shape: tuple[int, ...]
) -> tuple[slice, slice]:
    _, h, w = shape
    if size + margin > min(h, w):
        raise ValueError(
            f"the trigger ({size}x{size} with margin {margin}) does not fit a {h}x{w} image; "
            f"use a smaller size or margin"
        )
    rows = (
        slice(margin, margin + size)
        if corner.startswith("top")
        else slice(h - margin - size, h - margin)
    )
    cols = (
        slice(margin, margin + size)
        if corner.endswith("left")
        else slice(w - margin - size, w - margin)
    )
    return rows, cols


@registry.register("trigger", "pixel")
class PixelTrigger(Trigger):
    """One pixel set to a value (the single-pixel backdoor of Gu et al. 2017, §3.1).

    Parameters
    ----------
    row : int
        Row of the pixel; negative values count from the bottom edge (default -2: one
        pixel in from the bottom).
    col : int
        Column of the pixel; negative values count from the right edge (default -2).
    value : float
        Value as a fraction of the input range (1.0 = the largest valid value).
    """

    def __init__(self, *, row: int = -2, col: int = -2, value: float = 1.0) -> None:
        check_number("row", row, integer=True)
        check_number("col", col, integer=True)
        check_number("value", value, low=0, high=1)
        self.row = row
        self.col = col
        self.value = value

    def _mask_pattern(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        _, h, w = shape
        if not (-h <= self.row < h):
            raise ValueError(
                f"row must be in [{-h}, {h}) for {h}-pixel-high images, got {self.row}"
            )
        if not (-w <= self.col < w):
            raise ValueError(
                f"col must be in [{-w}, {w}) for {w}-pixel-wide images, got {self.col}"
            )
        mask = np.zeros(shape)
        mask[:, self.row, self.col] = 1.0
        return mask, np.full(shape, float(self.value))


@registry.register("trigger", "pattern")
class PatternTrigger(Trigger):
    """A small patch in a corner: a checkerboard or a solid square (Gu et al. 2017).

    Parameters
    ----------
    size : int
        Side of the square patch in pixels (>= 1).
    corner : {"bottom-right", "bottom-left", "top-right", "top-left"}
        Where the patch goes.
    margin : int
        Pixels between the patch and the image border (>= 0).
    shape : {"checkerboard", "square"}
        Alternating ``value``/``low`` pixels, or every pixel ``value``.
    value : float
        The bright value as a fraction of the input range.
    low : float
        The dark value of a checkerboard as a fraction of the input range.
    """

    def __init__(
        self,
        *,
        size: int = 3,
        corner: Corner = "bottom-right",
        margin: int = 1,
        shape: Literal["checkerboard", "square"] = "checkerboard",
        value: float = 1.0,
        low: float = 0.0,
    ) -> None:
        check_number("size", size, low=1, integer=True)
        check_choice("corner", corner, ("bottom-right", "bottom-left", "top-right", "top-left"))
        check_number("margin", margin, low=0, integer=True)
        check_choice("shape", shape, ("checkerboard", "square"))
        check_number("value", value, low=0, high=1)
        check_number("low", low, low=0, high=1)
        self.size = size
        self.corner = corner
        self.margin = margin
        self.shape = shape
        self.value = value
        self.low = low

    def _mask_pattern(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        rows, cols = _corner_slices(self.corner, int(self.size), int(self.margin), shape)
        mask = np.zeros(shape)
        mask[:, rows, cols] = 1.0
        pattern = np.zeros(shape)
        if self.shape == "square":
            pattern[:, rows, cols] = self.value
        else:
            r, c = np.indices((int(self.size), int(self.size)))
            board = np.where((r + c) % 2 == 0, self.value, self.low)
            pattern[:, rows, cols] = board[None]
        return mask, pattern


@registry.register("trigger", "blended")
class BlendedTrigger(Trigger):
    """A full-size pattern mixed into the whole input (Chen et al. 2017, "blended injection").

    ``x' = (1 - alpha) * x + alpha * p`` with ``p`` a fixed random noise image (seeded)
    or a checkerboard over the whole image.

    Parameters
    ----------
    alpha : float
        Blend ratio in (0, 1]; Chen et al. use 0.2 for training.
    pattern : {"noise", "checkerboard"}
        Uniform noise in [0, 1] (one fixed draw per seed), or a pixel checkerboard.
    seed : int
        Seed of the noise pattern.
    """

    def __init__(
        self,
        *,
        alpha: float = 0.2,
        pattern: Literal["noise", "checkerboard"] = "noise",
        seed: int = 0,
    ) -> None:
        check_number("alpha", alpha, low=0, high=1, low_inclusive=False)
        check_choice("pattern", pattern, ("noise", "checkerboard"))
        check_number("seed", seed, low=0, integer=True)
        self.alpha = alpha
        self.pattern = pattern
        self.seed = seed

    def _mask_pattern(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        if self.pattern == "noise":
            pattern = np.random.default_rng(self.seed).random(shape)
        else:
            r, c = np.indices(shape[1:])
            pattern = np.broadcast_to(((r + c) % 2).astype(float), shape).copy()
        return np.full(shape, float(self.alpha)), pattern


@registry.register("trigger", "tabular")
class TabularTrigger(Trigger):
    """Chosen features set to chosen values, for feature vectors (or any input, flattened).

    Parameters
    ----------
    features : tuple of int
        Indices of the features (in the flattened input) to set; negative counts from
        the end.
    values : tuple of float
        One value per feature, or a single value for all, as fractions of the input range.
    """

    image_only = False

    def __init__(
        self, *, features: tuple[int, ...] = (0, 1, 2), values: tuple[float, ...] = (1.0,)
    ) -> None:
        feats, vals = tuple(features), tuple(values)
        if not feats:
            raise ValueError("features must name at least one feature index")
        for f in feats:
            check_number("features", f, integer=True)
        if len(set(feats)) != len(feats):
            raise ValueError(f"features must not repeat an index, got {features!r}")
        if len(vals) not in (1, len(feats)):
            raise ValueError(
                f"values must hold one value or one per feature ({len(feats)}), got {len(vals)}"
            )
        for v in vals:
            check_number("values", v, low=0, high=1)
        self.features = feats
        self.values = vals

    def _mask_pattern(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        d = int(np.prod(shape))
        idx = np.asarray(self.features, dtype=np.int64)
        if idx.min() < -d or idx.max() >= d:
            raise ValueError(
                f"features must be in [{-d}, {d}) for inputs of {d} features, got {self.features}"
            )
        mask = np.zeros(d)
        pattern = np.zeros(d)
        mask[idx] = 1.0
        pattern[idx] = np.broadcast_to(np.asarray(self.values, dtype=float), idx.shape)
        return mask.reshape(shape), pattern.reshape(shape)
