"""Checks of user input at the public boundary, with errors that name the parameter.

These run once per public call, never inside an attack's loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "ArrayLike",
    "check_bool",
    "check_bounds",
    "check_choice",
    "check_feature_bounds",
    "check_finite",
    "check_in_bounds",
    "check_in_feature_bounds",
    "check_input_shape",
    "check_labels",
    "check_not_empty",
    "check_number",
    "check_numeric",
]

ArrayLike = np.ndarray | torch.Tensor


def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    integer: bool = False,
) -> None:
    """Raise ``ValueError``/``TypeError`` unless ``value`` is a number within the range."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        kind = "an integer" if integer else "a number"
        raise TypeError(f"{name} must be {kind}, got {value!r}")
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        # numpy cannot hold it (np.isfinite would fail with its own text): no count,
        # seed or size advml takes comes near this.
        raise ValueError(f"{name} is too large, got {value!r}")
    if integer and not float(value).is_integer():
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and (value < low or (value == low and not low_inclusive)):
        op = ">=" if low_inclusive else ">"
        raise ValueError(f"{name} must be {op} {low}, got {value!r}")
    if high is not None and (value > high or (value == high and not high_inclusive)):
        op = "<=" if high_inclusive else "<"
        raise ValueError(f"{name} must be {op} {high}, got {value!r}")


def check_bool(name: str, value: Any) -> None:
    """Raise ``TypeError`` unless ``value`` is ``True`` or ``False`` (not merely truthy)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {options}; got {value!r}")


def check_bounds(name: str, bounds: Any) -> tuple[float, float]:
    """Validate a ``(min, max)`` pair of valid input values and return it as floats."""
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (min, max) of numbers, got {bounds!r}") from None
    if not (np.isfinite(low) and np.isfinite(high)) or low >= high:
        raise ValueError(f"{name} must be finite with min < max, got {bounds!r}")
    return low, high


def check_feature_bounds(
    name: str, bounds: Any, input_shape: tuple[int, ...]
) -> tuple[tuple[float, float], tuple[np.ndarray, np.ndarray] | None]:
    """Validate bounds that may differ per feature; return the envelope and the arrays.

    ``bounds`` is ``(low, high)``, each a number or an array: of ``input_shape`` (one
    value per feature), or of shape ``(C,)`` for images ``(C, H, W)`` (one value per
    channel, the same over every pixel), or anything numpy broadcasts to ``input_shape``.

    Returns
    -------
    envelope : (float, float)
        The smallest low and the largest high: what ``bounds`` is on a model or dataset.
    per_feature : (numpy.ndarray, numpy.ndarray) or None
        ``float32`` arrays of ``input_shape``; ``None`` when every feature has the same
        bounds (then the envelope says it all and nothing changes from scalar bounds).
    """
    try:
        low, high = bounds
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a pair (low, high) of numbers or arrays, got {bounds!r}"
        ) from None
    if np.ndim(low) == 0 and np.ndim(high) == 0:
        return check_bounds(name, (low, high)), None
    shape = tuple(int(d) for d in input_shape)
    arrays = []
    for side, value in (("low", low), ("high", high)):
        try:
            a = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{name} {side} must hold numbers, got {value!r}") from None
        if len(shape) == 3 and a.ndim == 1 and a.shape[0] == shape[0] and a.shape != shape:
            a = a[:, None, None]  # one value per channel, the same at every pixel
        elif a.ndim == 1 and a.size == int(np.prod(shape)) and len(shape) > 1:
            a = a.reshape(shape)  # one value per feature, flattened
        try:
            a = np.broadcast_to(a, shape)
        except ValueError:
            per_channel = f", or ({shape[0]},) per channel" if len(shape) == 3 else ""
            raise ValueError(
                f"{name} {side} has shape {a.shape}; give a number, an array of the input "
                f"shape {shape} (or flattened){per_channel}"
            ) from None
        arrays.append(a)
    lo, hi = arrays
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        raise ValueError(f"{name} must be finite; a NaN or infinite value is in low or high")
    bad = np.flatnonzero((lo >= hi).ravel())
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{name} must have low < high for every feature; feature {i} (flattened) has "
            f"low {lo.ravel()[i]:g} >= high {hi.ravel()[i]:g} ({bad.size} such features); "
            "a constant feature needs a range, e.g. widen it by a small margin"
        )
    envelope = (float(lo.min()), float(hi.max()))
    if float(lo.min()) == float(lo.max()) and float(hi.min()) == float(hi.max()):
        return envelope, None
    return envelope, (lo.astype(np.float32), hi.astype(np.float32))


def check_not_empty(name: str, x: ArrayLike) -> None:
    if x.shape[0] == 0 if x.ndim else True:
        raise ValueError(f"{name} is empty: give at least one sample (got shape {tuple(x.shape)})")


def check_input_shape(name: str, x: ArrayLike, input_shape: tuple[int, ...]) -> None:
    """``x`` must be a batch of numbers of ``input_shape``: shape ``(n, *input_shape)``."""
    check_numeric(name, x)
    if tuple(x.shape[1:]) != tuple(input_shape) or x.ndim != len(input_shape) + 1:
        hint = ""
        if x.ndim == len(input_shape) and tuple(x.shape) == tuple(input_shape):
            hint = f"; for one sample use {name}[None]"
        elif int(np.prod(x.shape[1:], dtype=np.int64)) == int(np.prod(input_shape)):
            hint = f"; reshape it with {name}.reshape(-1, *{tuple(input_shape)})"
        raise ValueError(
            f"{name} must have shape (n, {', '.join(map(str, input_shape))}), "
            f"got {tuple(x.shape)}{hint}"
        )


def check_numeric(name: str, x: Any) -> None:
    """Raise ``TypeError`` unless ``x`` is a tensor or an array of numbers (not strings or
    Python objects, on which numpy's own checks fail with text that names no parameter)."""
    if isinstance(x, torch.Tensor):
        if x.is_complex():
            raise TypeError(f"{name} must hold real numbers, got a tensor of dtype {x.dtype}")
        return
    if not isinstance(x, np.ndarray):
        raise TypeError(
            f"{name} must be a numpy array or a torch tensor of numbers, got {type(x).__name__}"
        )
    if x.dtype.kind not in "biuf":
        kind = {"U": "strings", "S": "bytes", "O": "Python objects"}.get(x.dtype.kind, "")
        raise TypeError(
            f"{name} must hold numbers, got an array of dtype {x.dtype}"
            + (f" ({kind})" if kind else "")
            + f"; convert it with np.asarray({name}, dtype=np.float32)"
        )


def check_finite(name: str, x: ArrayLike) -> None:
    check_numeric(name, x)
    finite = torch.isfinite(x).all() if isinstance(x, torch.Tensor) else np.isfinite(x).all()
    if not bool(finite):
        raise ValueError(f"{name} contains NaN or infinite values; clean or drop those samples")


def check_in_bounds(
    name: str, x: ArrayLike, bounds: tuple[float, float], *, tol: float = 1e-6
) -> None:
    low, high = bounds
    xmin, xmax = float(x.min()), float(x.max())
    if xmin < low - tol or xmax > high + tol:
        raise ValueError(
            f"{name} has values in [{xmin:g}, {xmax:g}], outside the model's bounds "
            f"[{low:g}, {high:g}]; scale the data to the bounds or pass bounds=({xmin:g}, {xmax:g})"
        )


def check_in_feature_bounds(
    name: str, x: ArrayLike, low: ArrayLike, high: ArrayLike, *, tol: float = 1e-6
) -> None:
    """``x`` must lie within per-feature bounds (arrays broadcast to one sample's shape)."""
    if isinstance(x, torch.Tensor):
        lo = torch.as_tensor(low, device=x.device, dtype=x.dtype)
        hi = torch.as_tensor(high, device=x.device, dtype=x.dtype)
        outside: np.ndarray = ((x < lo - tol) | (x > hi + tol)).flatten(1).any(0).cpu().numpy()
        xs = x.detach().cpu().numpy()
    else:
        xs = np.asarray(x)
        beyond = (xs < _numpy(low) - tol) | (xs > _numpy(high) + tol)
        outside = np.asarray(np.asarray(beyond).reshape(len(xs), -1).any(0))
    if outside.any():
        j = int(np.flatnonzero(outside)[0])
        flat = xs.reshape(len(xs), -1)[:, j]
        lo_j, hi_j = (
            float(np.broadcast_to(_numpy(b), xs.shape)[0].ravel()[j]) for b in (low, high)
        )
        raise ValueError(
            f"{name} feature {j} (flattened) has values in [{flat.min():g}, {flat.max():g}], "
            f"outside its bounds [{lo_j:g}, {hi_j:g}] ({int(outside.sum())} features out of "
            "bounds); scale the data to the bounds or widen them (--bounds)"
        )


def check_labels(name: str, y: ArrayLike, n_classes: int, n_samples: int | None = None) -> None:
    """Labels must be a 1-d integer array of class indices in ``[0, n_classes)``."""
    if y.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-d array of class indices, got shape {tuple(y.shape)}"
            + ("; for one-hot labels pass y.argmax(1)" if y.ndim == 2 else "")
        )
    if n_samples is not None and y.shape[0] != n_samples:
        raise ValueError(f"{name} has {y.shape[0]} labels for {n_samples} samples")
    if isinstance(y, torch.Tensor):
        is_int = not (y.is_floating_point() or y.is_complex() or y.dtype == torch.bool)
        integral = bool((y == y.round()).all()) if y.is_floating_point() else is_int
    else:
        is_int = np.issubdtype(y.dtype, np.integer)
        integral = is_int or (
            np.issubdtype(y.dtype, np.floating) and bool(np.all(np.mod(y, 1) == 0))
        )
    if not integral:
        raise ValueError(f"{name} must hold integer class indices, got dtype {y.dtype}")
    if y.shape[0] and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise ValueError(
            f"{name} has labels in [{int(y.min())}, {int(y.max())}], "
            f"outside [0, {n_classes}) for a model with {n_classes} classes"
        )


def _numpy(a: ArrayLike | float) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
