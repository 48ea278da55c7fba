"""Dataset's invariants, subset(), and check_data's errors."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch

from advml.data import Dataset, check_data


def make(**changes: Any) -> Dataset:
    rng = np.random.default_rng(0)
    fields: dict[str, Any] = dict(
        name="toy",
        x_train=rng.random((60, 3)),
        y_train=np.arange(60) % 3,
        x_test=rng.random((30, 3)),
        y_test=np.arange(30) % 3,
        input_shape=(3,),
        n_classes=3,
        bounds=(0, 1),
        class_names=("a", "b", "c"),
        description="toy data",
    )
    fields.update(changes)
    return Dataset(**fields)


def test_arrays_are_converted_to_float32_and_int64() -> None:
    ds = make(y_train=(np.arange(60) % 3).astype(np.int32), y_test=np.arange(30.0) % 3)
    assert ds.x_train.dtype == np.float32 and ds.x_test.dtype == np.float32
    assert ds.y_train.dtype == np.int64 and ds.y_test.dtype == np.int64
    assert ds.bounds == (0.0, 1.0) and isinstance(ds.bounds[0], float)
    assert not ds.is_image and ds.n_train == 60 and ds.n_test == 30


def test_torch_tensors_are_accepted_and_stored_as_numpy() -> None:
    ds = make(x_test=torch.rand(30, 3), y_test=torch.arange(30) % 3)
    assert isinstance(ds.x_test, np.ndarray) and ds.x_test.dtype == np.float32


def test_dataset_is_frozen_and_its_repr_is_short() -> None:
    ds = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.n_classes = 4  # type: ignore[misc]
    assert repr(ds) == (
        "Dataset(name='toy', n_train=60, n_test=30, input_shape=(3,), n_classes=3, "
        "bounds=(0.0, 1.0))"
    )


@pytest.mark.parametrize(
    ("changes", "error", "pattern"),
    [
        ({"x_test": np.full((30, 3), np.nan)}, ValueError, r"x_test contains NaN"),
        ({"x_train": np.full((60, 3), 2.0)}, ValueError, r"x_train has values in \[2, 2\]"),
        ({"x_train": np.zeros((60, 4))}, ValueError, r"x_train must have shape \(n, 3\)"),
        ({"y_test": np.arange(30) % 4}, ValueError, r"y_test has labels in \[0, 3\]"),
        ({"y_train": np.arange(59) % 3}, ValueError, r"y_train has 59 labels for 60 samples"),
        ({"y_train": np.full(60, 0.5)}, ValueError, r"y_train must hold integer class"),
        ({"x_train": np.zeros((0, 3))}, ValueError, r"x_train is empty"),
        ({"class_names": ("a", "b")}, ValueError, r"class_names has 2 names for n_classes=3"),
        ({"n_classes": 1, "class_names": ("a",)}, ValueError, r"n_classes must be >= 2"),
        ({"bounds": (1, 0)}, ValueError, r"bounds must be finite with min < max"),
        ({"input_shape": ()}, ValueError, r"input_shape must be a tuple of positive sizes"),
        ({"name": ""}, ValueError, r"name must be a non-empty string"),
        ({"x_train": "pixels"}, TypeError, r"x_train must be a numpy array"),
    ],
)
def test_an_inconsistent_dataset_is_refused_naming_the_field(
    changes: dict[str, Any], error: type[Exception], pattern: str
) -> None:
    with pytest.raises(error, match=pattern):
        make(**changes)


def test_subset_keeps_class_proportions_and_is_seeded() -> None:
    ds = make()
    small = ds.subset(n_train=12, n_test=6, seed=3)
    assert (small.n_train, small.n_test) == (12, 6)
    assert np.bincount(small.y_train).tolist() == [4, 4, 4]
    assert np.bincount(small.y_test).tolist() == [2, 2, 2]
    again = ds.subset(n_train=12, n_test=6, seed=3)
    np.testing.assert_array_equal(small.x_train, again.x_train)
    other = ds.subset(n_train=12, n_test=6, seed=4)
    assert not np.array_equal(small.x_train, other.x_train)
    # Every kept sample is a real (x, y) pair of the original, in the original order.
    rows = [int(np.flatnonzero((ds.x_train == row).all(1))[0]) for row in small.x_train]
    assert rows == sorted(rows)
    np.testing.assert_array_equal(ds.y_train[rows], small.y_train)
    assert "subset of 12 train / 6 test (seed 3)" in small.description


def test_subset_of_an_unbalanced_split_rounds_by_largest_remainder() -> None:
    y = np.array([0] * 50 + [1] * 7 + [2] * 3)
    ds = make(y_train=y)
    small = ds.subset(n_train=10)
    # Exact shares 8.33 / 1.17 / 0.5: floors 8 / 1 / 0; the one left goes to the largest
    # remainder, class 2.
    assert np.bincount(small.y_train, minlength=3).tolist() == [8, 1, 1]
    assert small.n_test == ds.n_test
    np.testing.assert_array_equal(small.x_test, ds.x_test)


def test_subset_does_not_change_the_original() -> None:
    ds = make()
    before = ds.x_train.copy()
    ds.subset(n_train=5).x_train[:] = 0
    np.testing.assert_array_equal(ds.x_train, before)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"n_train": 0}, r"n_train must be >= 1"),
        ({"n_train": 61}, r"n_train must be <= 60"),
        ({"n_test": 2.5}, r"n_test must be an integer"),
        ({"seed": -1}, r"seed must be >= 0"),
    ],
)
def test_subset_refuses_bad_sizes(kwargs: dict[str, Any], pattern: str) -> None:
    with pytest.raises((ValueError, TypeError), match=pattern):
        make().subset(**kwargs)


def test_check_data_accepts_a_valid_batch() -> None:
    x = np.zeros((4, 1, 2, 2), dtype=np.float32)
    check_data(x, np.array([0, 1, 1, 0]), input_shape=(1, 2, 2), n_classes=2, bounds=(0, 1))
    check_data(
        torch.zeros(2, 3), torch.tensor([1, 0]), input_shape=(3,), n_classes=2, bounds=(-1, 1)
    )


@pytest.mark.parametrize(
    ("x", "y", "pattern"),
    [
        (np.zeros((0, 3)), np.zeros(0, dtype=int), r"images is empty"),
        (np.zeros((2, 4)), np.array([0, 1]), r"images must have shape \(n, 3\), got \(2, 4\)"),
        (np.zeros(3), np.array([0]), r"images must have shape \(n, 3\).*images\[None\]"),
        (np.array([[0.0, np.inf, 0.0]]), np.array([0]), r"images contains NaN or infinite"),
        (np.full((1, 3), -0.5), np.array([0]), r"images has values in \[-0.5, -0.5\]"),
        (np.zeros((2, 3)), np.array([0, 2]), r"targets has labels in \[0, 2\], outside \[0, 2\)"),
        (np.zeros((2, 3)), np.array([0, -1]), r"targets has labels in \[-1, 0\]"),
        (np.zeros((2, 3)), np.array([0, 1, 1]), r"targets has 3 labels for 2 samples"),
        (np.zeros((2, 3)), np.zeros((2, 2)), r"targets must be a 1-d array.*argmax"),
    ],
)
def test_check_data_names_the_parameter(x: Any, y: Any, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        check_data(
            x,
            y,
            input_shape=(3,),
            n_classes=2,
            bounds=(0, 1),
            name_x="images",
            name_y="targets",
        )


def test_check_data_refuses_non_numeric_arrays() -> None:
    with pytest.raises(TypeError, match=r"x must hold real numbers"):
        check_data(np.array([["a", "b", "c"]]), [0], input_shape=(3,), n_classes=2, bounds=(0, 1))
    with pytest.raises(TypeError, match=r"y must hold integer class indices"):
        check_data(np.zeros((1, 3)), np.array(["a"]), input_shape=(3,), n_classes=2, bounds=(0, 1))
