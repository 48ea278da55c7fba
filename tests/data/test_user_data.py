"""load_npz and load_csv: round trips, label mapping, and errors that name the input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from advml.data import load_csv, load_npz
from advml.errors import UntrustedFileError


def rand(*shape: int) -> np.ndarray:
    return np.random.default_rng(sum(shape)).random(shape)


def toy(n: int = 60, d: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, d)), np.arange(n) % 3


# --------------------------------------------------------------------------- load_npz


def test_npz_round_trip_with_a_split_made_for_it(tmp_path: Path) -> None:
    x, y = toy()
    path = tmp_path / "toy.npz"
    np.savez(path, x=x, y=y)
    ds = load_npz(path, bounds=(0, 1), test_fraction=0.25, seed=1)
    assert (ds.n_train, ds.n_test) == (45, 15)
    assert ds.name == "toy" and ds.input_shape == (4,) and ds.n_classes == 3
    assert ds.bounds == (0.0, 1.0) and ds.class_names == ("0", "1", "2")
    assert np.bincount(ds.y_test).tolist() == [5, 5, 5]  # stratified
    # Every (x, y) pair survives the split unchanged.
    rebuilt = np.concatenate([ds.x_train, ds.x_test])
    labels = np.concatenate([ds.y_train, ds.y_test])
    order = np.lexsort(rebuilt.T[::-1])
    expected = np.lexsort(x.astype(np.float32).T[::-1])
    np.testing.assert_array_equal(rebuilt[order], x.astype(np.float32)[expected])
    np.testing.assert_array_equal(labels[order], y[expected])
    same = load_npz(path, bounds=(0, 1), test_fraction=0.25, seed=1)
    np.testing.assert_array_equal(same.x_test, ds.x_test)
    other = load_npz(path, bounds=(0, 1), test_fraction=0.25, seed=2)
    assert not np.array_equal(other.x_test, ds.x_test)


def test_npz_keeps_the_files_own_test_split_and_infers_bounds(tmp_path: Path) -> None:
    x, y = toy()
    path = tmp_path / "split.npz"
    np.savez(path, x_train=x[:50] * 10, y_train=y[:50], x_test=x[50:] * 10, y_test=y[50:])
    ds = load_npz(path, name="mine")
    assert ds.name == "mine" and (ds.n_train, ds.n_test) == (50, 10)
    np.testing.assert_allclose(ds.x_test, x[50:] * 10, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_train, y[:50])
    lo, hi = float((x * 10).astype(np.float32).min()), float((x * 10).astype(np.float32).max())
    assert ds.bounds == pytest.approx((lo, hi))
    assert "the file's split" in ds.description


def test_npz_images_become_channels_first(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = np.arange(20) % 2
    np.savez(tmp_path / "rgb.npz", x=rng.integers(0, 256, (20, 8, 6, 3)), y=y)
    np.savez(tmp_path / "gray.npz", x=rng.random((20, 8, 6)), y=y)
    rgb = load_npz(tmp_path / "rgb.npz", bounds=(0, 255))
    assert rgb.input_shape == (3, 8, 6) and rgb.is_image and rgb.bounds == (0.0, 255.0)
    raw = np.load(tmp_path / "rgb.npz")["x"]
    # The pixel (row 2, column 5, blue) of some sample is at [2, 2, 5] channels-first.
    assert any(np.array_equal(raw[i].transpose(2, 0, 1), rgb.x_train[0]) for i in range(20))
    gray = load_npz(tmp_path / "gray.npz")
    assert gray.input_shape == (1, 8, 6)


def test_npz_string_labels_are_mapped_to_indices(tmp_path: Path) -> None:
    x, _ = toy(40)
    labels = np.array(["cat", "dog", "bird", "dog"] * 10)
    np.savez(tmp_path / "animals.npz", x=x, y=labels)
    ds = load_npz(tmp_path / "animals.npz")
    assert ds.class_names == ("bird", "cat", "dog") and ds.n_classes == 3
    assert np.bincount(np.concatenate([ds.y_train, ds.y_test])).tolist() == [10, 10, 20]


def test_npz_with_object_arrays_is_refused_as_untrusted(tmp_path: Path) -> None:
    x, _ = toy(10)
    np.savez(tmp_path / "obj.npz", x=x, y=np.array([1, "a"] * 5, dtype=object))
    with pytest.raises(UntrustedFileError, match=r"array 'y' .* Python objects"):
        load_npz(tmp_path / "obj.npz")


@pytest.mark.parametrize(
    ("arrays", "kwargs", "error", "pattern"),
    [
        (
            {"x": np.full((10, 2), np.nan), "y": np.arange(10) % 2},
            {"bounds": (0, 1)},
            ValueError,
            r"x in bad.npz contains NaN",
        ),
        (
            {"x": np.full((10, 2), np.nan), "y": np.arange(10) % 2},
            {},
            ValueError,
            r"x in bad.npz contains NaN",
        ),
        ({"x": np.zeros((0, 2)), "y": np.zeros(0)}, {}, ValueError, r"x in bad.npz is empty"),
        (
            {"x": np.zeros(10), "y": np.arange(10) % 2},
            {},
            ValueError,
            r"x in bad.npz must have one row per sample",
        ),
        (
            {"x": np.ones((10, 2)), "y": np.arange(9) % 2},
            {},
            ValueError,
            r"y in bad.npz has 9 labels for 10 samples",
        ),
        (
            {"x": np.ones((10, 2)), "y": np.ones((10, 2))},
            {},
            ValueError,
            r"y in bad.npz must be 1-d",
        ),
        (
            {"x": rand(10, 2), "y": np.arange(10) % 2 + 0.5},
            {},
            ValueError,
            r"y in bad.npz must hold class labels, got the non-integer value 0.5",
        ),
        ({"x": rand(10, 2), "y": np.zeros(10)}, {}, ValueError, r"single class"),
        (
            {"x": rand(10, 2) * 3, "y": np.arange(10) % 2},
            {"bounds": (0, 1)},
            ValueError,
            r"x in bad.npz has values in .*pass bounds=",
        ),
        (
            {"x": np.ones((10, 2)), "y": np.arange(10) % 2},
            {},
            ValueError,
            r"x in bad.npz is constant",
        ),
        (
            {"features": np.ones((10, 2)), "y": np.arange(10) % 2},
            {},
            ValueError,
            r"must hold arrays 'x' and 'y'.*\['features', 'y'\]",
        ),
        (
            {
                "x": rand(10, 2),
                "y": np.arange(10) % 2,
                "x_test": rand(4, 3),
                "y_test": np.arange(4) % 2,
            },
            {},
            ValueError,
            r"x_test in bad.npz has samples of shape \(3,\), but x has \(2,\)",
        ),
        (
            {"x": rand(10, 2), "y": np.arange(10) % 2, "x_test": rand(4, 2)},
            {},
            ValueError,
            r"only one of 'x_test' and 'y_test'",
        ),
        (
            {"x": np.array([["a", "b"]] * 10), "y": np.arange(10) % 2},
            {},
            TypeError,
            r"x in bad.npz must hold numbers",
        ),
        (
            {"x": rand(10, 2), "y": np.arange(10) % 2},
            {"test_fraction": 1.0},
            ValueError,
            r"test_fraction must be < 1",
        ),
        (
            {"x": rand(10, 2), "y": np.arange(10) % 2},
            {"bounds": (1, 1)},
            ValueError,
            r"bounds must be finite with min < max",
        ),
    ],
)
def test_npz_bad_inputs_name_the_array_or_parameter(
    tmp_path: Path, arrays: dict[str, Any], kwargs: dict[str, Any], error: type, pattern: str
) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(error, match=pattern):
        load_npz(path, **kwargs)


def test_npz_missing_or_wrong_files_are_explained(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"path .*nothing.npz' does not exist"):
        load_npz(tmp_path / "nothing.npz")
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(ValueError, match=r"holds a single array; save x and y together"):
        load_npz(tmp_path / "single.npy")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(ValueError, match=r"not a readable .npz archive"):
        load_npz(tmp_path / "text.npz")


# --------------------------------------------------------------------------- load_csv


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n")
    return path


def test_csv_with_header_and_string_labels(tmp_path: Path) -> None:
    rows = ["radius,texture,diagnosis"] + [
        f"{i % 7}.5,{(i * 3) % 11},{'malignant' if i % 3 == 0 else 'benign'}" for i in range(30)
    ]
    ds = load_csv(write_csv(tmp_path / "cells.csv", rows), label_column="diagnosis")
    assert ds.class_names == ("benign", "malignant")
    assert ds.input_shape == (2,) and (ds.n_train, ds.n_test) == (24, 6)
    labels = np.concatenate([ds.y_train, ds.y_test])
    assert np.bincount(labels).tolist() == [20, 10]
    # Feature values are read as written (no scaling by default); bounds are inferred.
    assert ds.bounds == (0.0, 10.0)  # radius 0.5..6.5, texture 0..10
    x = np.concatenate([ds.x_train, ds.x_test])
    # Row i=3 was "3.5,9,malignant": find it and check its label came along.
    (k,) = np.flatnonzero((x == [3.5, 9.0]).all(1))
    assert ds.class_names[labels[k]] == "malignant"
    assert "label column 'diagnosis'" in ds.description


def test_csv_without_header_label_first_and_integer_labels(tmp_path: Path) -> None:
    rows = [f"{i % 2},{i},{i * 2}" for i in range(20)]
    ds = load_csv(write_csv(tmp_path / "plain.csv", rows), label_column=0, test_fraction=0.5)
    assert ds.input_shape == (2,) and ds.class_names == ("0", "1")
    assert (ds.n_train, ds.n_test) == (10, 10)
    x = np.concatenate([ds.x_train, ds.x_test])
    y = np.concatenate([ds.y_train, ds.y_test])
    np.testing.assert_array_equal(x[:, 1], 2 * x[:, 0])
    np.testing.assert_array_equal(y, x[:, 0] % 2)


def test_csv_scaling_uses_the_training_split(tmp_path: Path) -> None:
    rows = ["a,b,label"] + [f"{i},{100 - i * 3},{i % 2}" for i in range(40)]
    ds = load_csv(write_csv(tmp_path / "s.csv", rows), scale=True, seed=5)
    assert ds.bounds == (0.0, 1.0)
    np.testing.assert_allclose(ds.x_train.min(0), 0.0)
    np.testing.assert_allclose(ds.x_train.max(0), 1.0)
    assert ds.x_test.min() >= 0.0 and ds.x_test.max() <= 1.0
    assert "min-max scaled" in ds.description


def test_csv_with_negative_labels_maps_them(tmp_path: Path) -> None:
    rows = [f"{i},{-1 if i % 2 else 1}" for i in range(20)]
    ds = load_csv(write_csv(tmp_path / "pm.csv", rows))
    assert ds.class_names == ("-1", "1") and ds.n_classes == 2


def test_csv_semicolons_and_forced_header(tmp_path: Path) -> None:
    rows = ["1;2;label"] + [f"{i};{i + 1};{i % 2}" for i in range(20)]
    path = write_csv(tmp_path / "semi.csv", rows)
    ds = load_csv(path, delimiter=";", header=True, label_column="label")
    assert ds.n_train + ds.n_test == 20


@pytest.mark.parametrize(
    ("rows", "kwargs", "error", "pattern"),
    [
        (
            ["a,b,y", "1,2,0", "1,,1", "3,4,0"],
            {},
            ValueError,
            r"line 3: feature column 'b' is empty",
        ),
        (
            ["a,b,y", "1,2,0", "1,x,1", "3,4,0"],
            {},
            ValueError,
            r"line 3: feature column 'b' holds 'x', not a number",
        ),
        (
            ["a,b,y", "1,2,0", "1,nan,1", "3,4,0"],
            {},
            ValueError,
            r"line 3: feature column 'b' holds 'nan'.*NaN",
        ),
        (["a,b,y", "1,2,0", "1,2", "3,4,0"], {}, ValueError, r"line 3 has 2 fields, expected 3"),
        (
            ["a,b,y", "1,2,0", "3,4,1"],
            {"label_column": "label"},
            ValueError,
            r"label_column='label' is not a column.*\['a', 'b', 'y'\]",
        ),
        (
            ["1,2,0", "3,4,1"],
            {"label_column": "y"},
            ValueError,
            r"label_column='y' is a name but .* has no header row",
        ),
        (
            ["1,2,0", "3,4,1"],
            {"label_column": 3},
            ValueError,
            r"label_column=3 is out of range .* 3 columns",
        ),
        (
            ["a,b,y", "1,2,0.5", "3,4,1"],
            {},
            ValueError,
            r"label_column 'y' in bad.csv must hold class labels",
        ),
        (["a,b,y", "1,2,", "3,4,1"], {}, ValueError, r"line 2: the label \(column 'y'\) is empty"),
        (["a,b,y"], {}, ValueError, r"has no data rows"),
        ([""], {}, ValueError, r"is empty"),
        (
            ["a,b,y", "1,2,0", "3,4,1"],
            {"scale": True, "bounds": (0, 1)},
            ValueError,
            r"pass either bounds or scale=True",
        ),
        (
            ["a,b,y", "1,2,0", "3,4,1", "5,6,1", "2,2,0"],
            {"bounds": (0, 5)},
            ValueError,
            r"features in bad.csv has values in \[1, 6\].*pass bounds=\(1, 6\)",
        ),
        (
            ["a,b,y", "1,2,0", "3,4,1"],
            {"label_column": 1.5},
            TypeError,
            r"label_column must be a column index or a column name",
        ),
        (
            ["a,b,y", "1,2,0", "3,4,1"],
            {"delimiter": ",,"},
            ValueError,
            r"delimiter must be a single character",
        ),
        (["a,b,y", "1,2,0", "3,4,1"], {"seed": -3}, ValueError, r"seed must be >= 0"),
    ],
)
def test_csv_bad_inputs_are_explained(
    tmp_path: Path, rows: list[str], kwargs: dict[str, Any], error: type, pattern: str
) -> None:
    path = write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(error, match=pattern):
        load_csv(path, **kwargs)
