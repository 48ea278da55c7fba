"""Triggers: where they go, what they write, and that they leave the rest alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advml import registry
from advml.poisoning import BlendedTrigger, PatternTrigger, PixelTrigger, TabularTrigger


def test_pattern_checkerboard_in_the_corner() -> None:
    x = np.full((2, 1, 8, 8), 0.5, dtype=np.float32)
    out = PatternTrigger(size=3, corner="bottom-right", margin=1).apply(x)
    patch = out[:, 0, 4:7, 4:7]
    expected = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]], dtype=np.float32)
    np.testing.assert_array_equal(patch, np.broadcast_to(expected, patch.shape))
    rest = out.copy()
    rest[:, :, 4:7, 4:7] = 0.5
    np.testing.assert_array_equal(rest, x)  # nothing outside the patch changed
    assert out.dtype == np.float32 and x[0, 0, 5, 5] == 0.5  # input not modified


@pytest.mark.parametrize(
    ("corner", "rows", "cols"),
    [("top-left", slice(0, 2), slice(0, 2)), ("bottom-left", slice(6, 8), slice(0, 2))],
)
def test_pattern_corners_and_square(corner: str, rows: slice, cols: slice) -> None:
    trig = PatternTrigger(size=2, corner=corner, margin=0, shape="square")  # type: ignore[arg-type]
    mask, pattern = trig.mask_pattern((3, 8, 8))
    expected = np.zeros((3, 8, 8))
    expected[:, rows, cols] = 1
    np.testing.assert_array_equal(mask, expected)
    np.testing.assert_array_equal(pattern[:, rows, cols], 1.0)  # every colour channel


def test_values_are_fractions_of_the_bounds() -> None:
    x = np.zeros((1, 1, 4, 4), dtype=np.float64)
    out = PatternTrigger(size=2, margin=0, value=1.0, low=0.0).apply(x, bounds=(-1.0, 3.0))
    assert out.dtype == np.float64
    assert set(np.unique(out[0, 0, 2:, 2:])) == {-1.0, 3.0}


def test_pixel_trigger_counts_from_the_far_edge() -> None:
    mask, pattern = PixelTrigger(row=-1, col=0, value=0.25).mask_pattern((1, 5, 6))
    assert mask.sum() == 1 and mask[0, 4, 0] == 1
    assert pattern[0, 4, 0] == 0.25


def test_blended_is_a_seeded_convex_mix() -> None:
    x = np.random.default_rng(0).random((3, 1, 8, 8)).astype(np.float32)
    trig = BlendedTrigger(alpha=0.2, seed=3)
    _, p = trig.mask_pattern((1, 8, 8))
    np.testing.assert_allclose(trig.apply(x), 0.8 * x + 0.2 * p, atol=1e-6)
    np.testing.assert_array_equal(p, BlendedTrigger(alpha=0.2, seed=3).mask_pattern((1, 8, 8))[1])
    assert not np.array_equal(p, BlendedTrigger(seed=4).mask_pattern((1, 8, 8))[1])


def test_tabular_trigger_sets_features() -> None:
    x = np.full((2, 5), 0.5, dtype=np.float32)
    out = TabularTrigger(features=(0, -1), values=(1.0, 0.0)).apply(x, bounds=(0.0, 10.0))
    np.testing.assert_array_equal(out[:, 0], 10.0)
    np.testing.assert_array_equal(out[:, -1], 0.0)
    np.testing.assert_array_equal(out[:, 1:4], 0.5)


def test_tensor_in_tensor_out() -> None:
    x = torch.zeros(2, 1, 8, 8, dtype=torch.float64)
    out = PatternTrigger().apply(x)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64 and out.shape == x.shape
    assert float(x.sum()) == 0.0
    np.testing.assert_array_equal(out.numpy(), PatternTrigger().apply(x.numpy()))


def test_shape_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        PatternTrigger(size=8, margin=1).apply(np.zeros((1, 1, 8, 8)))
    with pytest.raises(ValueError, match="tabular"):
        PatternTrigger().apply(np.zeros((1, 30)))
    with pytest.raises(ValueError, match="row"):
        PixelTrigger(row=9).apply(np.zeros((1, 1, 8, 8)))
    with pytest.raises(ValueError, match="features"):
        TabularTrigger(features=(40,)).apply(np.zeros((1, 30)))
    with pytest.raises(ValueError, match="values"):
        TabularTrigger(features=(0, 1, 2), values=(1.0, 0.0))


def test_registered_names() -> None:
    assert {"pixel", "pattern", "blended", "tabular"} <= set(registry.available("trigger"))
