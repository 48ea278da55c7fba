"""Every validation helper accepts what it should and names the parameter when it refuses."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from advml.validation import (
    check_bool,
    check_bounds,
    check_choice,
    check_finite,
    check_in_bounds,
    check_input_shape,
    check_labels,
    check_not_empty,
    check_number,
)

# -- check_number ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1, 2.5, np.int64(3), np.float32(0.5), 10**12])
def test_check_number_accepts_numbers(value: Any) -> None:
    check_number("eps", value)


@pytest.mark.parametrize("value", ["1", None, [1], True, np.bool_(True), 1 + 0j])
def test_check_number_rejects_non_numbers(value: Any) -> None:
    with pytest.raises(TypeError, match="eps must be a number"):
        check_number("eps", value)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, np.float64("nan")])
def test_check_number_rejects_non_finite(value: Any) -> None:
    with pytest.raises(ValueError, match="eps must be finite"):
        check_number("eps", value)


def test_check_number_ranges() -> None:
    check_number("eps", 0, low=0)
    check_number("eps", 1, high=1)
    with pytest.raises(ValueError, match=r"eps must be >= 0, got -0.1"):
        check_number("eps", -0.1, low=0)
    with pytest.raises(ValueError, match=r"lr must be > 0, got 0"):
        check_number("lr", 0, low=0, low_inclusive=False)
    with pytest.raises(ValueError, match=r"p must be <= 1, got 1.5"):
        check_number("p", 1.5, high=1)
    with pytest.raises(ValueError, match=r"val_fraction must be < 1, got 1"):
        check_number("val_fraction", 1, high=1, high_inclusive=False)
    check_number("val_fraction", 0.999, low=0, high=1, high_inclusive=False)


def test_check_number_integers() -> None:
    check_number("steps", 3, integer=True)
    check_number("steps", np.int32(3), integer=True)
    check_number("steps", 3.0, integer=True)  # a whole float is a whole number
    with pytest.raises(TypeError, match=r"steps must be an integer, got 2\.5"):
        check_number("steps", 2.5, integer=True)
    with pytest.raises(TypeError, match="steps must be an integer"):
        check_number("steps", "3", integer=True)
    with pytest.raises(ValueError, match="steps must be >= 1, got 0"):
        check_number("steps", 0, low=1, integer=True)


# -- check_bool, check_choice -----------------------------------------------------------------


def test_check_bool() -> None:
    check_bool("targeted", True)
    check_bool("targeted", False)
    for value in ("yes", 1, 0, None, np.bool_(True)):
        with pytest.raises(TypeError, match="targeted must be True or False"):
            check_bool("targeted", value)


def test_check_choice() -> None:
    check_choice("norm", "inf", ("inf", "2"))
    with pytest.raises(ValueError, match=r"norm must be one of 'inf', '2'; got '3'"):
        check_choice("norm", "3", ("inf", "2"))
    with pytest.raises(ValueError, match="norm"):
        check_choice("norm", 2, ("inf", "2"))


# -- check_bounds ---------------------------------------------------------------------------


def test_check_bounds_returns_floats() -> None:
    assert check_bounds("bounds", (0, 1)) == (0.0, 1.0)
    low, high = check_bounds("bounds", np.array([-1, 255]))
    assert (low, high) == (-1.0, 255.0) and isinstance(low, float) and isinstance(high, float)
    assert check_bounds("bounds", torch.tensor([0.0, 0.5])) == (0.0, 0.5)


@pytest.mark.parametrize("bounds", [1.0, (0,), (0, 1, 2), ("a", "b"), None])
def test_check_bounds_needs_a_pair_of_numbers(bounds: Any) -> None:
    with pytest.raises(ValueError, match="bounds must be a pair"):
        check_bounds("bounds", bounds)


@pytest.mark.parametrize("bounds", [(1, 0), (0.5, 0.5), (0, math.inf), (math.nan, 1)])
def test_check_bounds_needs_finite_increasing(bounds: Any) -> None:
    with pytest.raises(ValueError, match="bounds must be finite with min < max"):
        check_bounds("bounds", bounds)


# -- arrays: emptiness, shape, finiteness, range ----------------------------------------------

ARRAY_KINDS = pytest.mark.parametrize("kind", [np.asarray, torch.as_tensor], ids=["np", "torch"])


@ARRAY_KINDS
def test_check_not_empty(kind: Any) -> None:
    check_not_empty("x", kind(np.zeros((1, 2))))
    with pytest.raises(ValueError, match=r"x is empty.*\(0, 2\)"):
        check_not_empty("x", kind(np.zeros((0, 2))))
    with pytest.raises(ValueError, match="x is empty"):
        check_not_empty("x", kind(np.float32(1.0)))  # a scalar holds no samples


@ARRAY_KINDS
def test_check_input_shape(kind: Any) -> None:
    check_input_shape("x", kind(np.zeros((5, 1, 8, 8))), (1, 8, 8))
    check_input_shape("x", kind(np.zeros((0, 1, 8, 8))), (1, 8, 8))
    with pytest.raises(ValueError, match=r"x must have shape \(n, 1, 8, 8\), got \(5, 3, 8, 8\)$"):
        check_input_shape("x", kind(np.zeros((5, 3, 8, 8))), (1, 8, 8))
    with pytest.raises(ValueError, match=r"for one sample use x\[None\]"):
        check_input_shape("x", kind(np.zeros((1, 8, 8))), (1, 8, 8))
    with pytest.raises(ValueError, match=r"reshape it with x.reshape\(-1, \*\(1, 8, 8\)\)"):
        check_input_shape("x", kind(np.zeros((5, 64))), (1, 8, 8))
    with pytest.raises(ValueError, match="x_val must have shape"):
        check_input_shape("x_val", kind(np.zeros(5)), (1,))


@ARRAY_KINDS
def test_check_finite(kind: Any) -> None:
    check_finite("x", kind(np.zeros((2, 2))))
    for bad in (np.nan, np.inf, -np.inf):
        a = np.zeros((2, 2))
        a[1, 1] = bad
        with pytest.raises(ValueError, match="x contains NaN or infinite values"):
            check_finite("x", kind(a))


@ARRAY_KINDS
def test_check_in_bounds(kind: Any) -> None:
    check_in_bounds("x", kind(np.array([0.0, 0.5, 1.0])), (0.0, 1.0))
    check_in_bounds("x", kind(np.array([-5e-7, 1 + 5e-7])), (0.0, 1.0))  # within tolerance
    with pytest.raises(ValueError, match=r"x has values in \[0, 2\], outside .* \[0, 1\]"):
        check_in_bounds("x", kind(np.array([0.0, 2.0])), (0.0, 1.0))
    with pytest.raises(ValueError, match=r"bounds=\(-0.5, 1\)"):
        check_in_bounds("x", kind(np.array([-0.5, 1.0])), (0.0, 1.0))
    with pytest.raises(ValueError, match="x has values"):
        check_in_bounds("x", kind(np.array([0.5, 1.1])), (0.0, 1.0), tol=0.05)
    check_in_bounds("x", kind(np.array([0.5, 1.1])), (0.0, 1.0), tol=0.2)


# -- labels ---------------------------------------------------------------------------------


@ARRAY_KINDS
def test_check_labels_accepts_class_indices(kind: Any) -> None:
    check_labels("y", kind(np.array([0, 1, 2])), 3)
    check_labels("y", kind(np.array([0, 2], dtype=np.uint8)), 3, n_samples=2)
    check_labels("y", kind(np.array([0.0, 2.0])), 3)  # whole floats are indices
    check_labels("y", kind(np.zeros(0, dtype=np.int64)), 3, n_samples=0)


@ARRAY_KINDS
@pytest.mark.parametrize(
    ("y", "n_samples", "match"),
    [
        (np.zeros((3, 3)), None, r"y must be a 1-d array.*y.argmax\(1\)"),
        (np.zeros((3, 1, 1)), None, r"y must be a 1-d array .*got shape \(3, 1, 1\)$"),
        (np.array(1), None, "y must be a 1-d array"),
        (np.array([0, 1]), 3, "y has 2 labels for 3 samples"),
        (np.array([0.5, 1.0]), None, "y must hold integer class indices"),
        (np.array([True, False]), None, "y must hold integer class indices"),
        (np.array([0, 3]), None, r"y has labels in \[0, 3\], outside \[0, 3\)"),
        (np.array([-1, 2]), None, r"y has labels in \[-1, 2\]"),
    ],
)
def test_check_labels_errors(kind: Any, y: np.ndarray, n_samples: int | None, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_labels("y", kind(y), 3, n_samples)
