"""MNIST / Fashion-MNIST from IDX files written in the real format."""

from __future__ import annotations

import dataclasses
import gzip
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from advml.data import load_dataset, sources
from advml.data.idx import read_idx
from advml.errors import DatasetUnavailableError


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
        np.array([-3, 0, 7], dtype=np.int8),
        np.array([[-300, 2], [1, 30000]], dtype=np.int16),
        np.array([1 << 20, -5], dtype=np.int32),
        np.array([[0.5, -1.25]], dtype=np.float32),
        np.array([np.pi], dtype=np.float64),
    ],
    ids=["uint8", "int8", "int16", "int32", "float32", "float64"],
)
def test_read_idx_reads_every_type_gzipped_or_not(
    tmp_path: Path, array: np.ndarray, compress: bool, fmt: Any
) -> None:
    raw = fmt.idx_bytes(array)
    path = tmp_path / "a.idx"
    path.write_bytes(gzip.compress(raw) if compress else raw)
    out = read_idx(path)
    assert out.shape == array.shape
    assert out.dtype == array.dtype  # native byte order, not the file's big-endian
    np.testing.assert_array_equal(out, array)


def test_read_idx_header_is_big_endian(tmp_path: Path) -> None:
    path = tmp_path / "labels"
    path.write_bytes(bytes([0, 0, 0x08, 1, 0, 0, 1, 0]) + bytes(range(256)))
    assert read_idx(path).shape == (256,)


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        (b"PK\x03\x04junk", r"is not an IDX file: it starts with 504b0304"),
        (b"", r"is not an IDX file: it starts with nothing"),
        (bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 5]), r"unknown IDX type code 0x07"),
        (bytes([0, 0, 0x08, 2, 0, 0, 0, 2]), r"truncated inside its header"),
        (bytes([0, 0, 0x08, 1, 0, 0, 0, 4, 1, 2]), r"holds 2 bytes of data.*needs 4"),
        (bytes([0, 0, 0x08, 1, 0, 0, 0, 1, 1, 2]), r"holds 2 bytes of data.*needs 1"),
        (b"\x1f\x8b\x08\x00garbage", r"damaged gzip file"),
    ],
)
def test_read_idx_refuses_damaged_files(tmp_path: Path, data: bytes, pattern: str) -> None:
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=pattern):
        read_idx(path)


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_load_dataset_reads_the_four_idx_files(
    make_idx_dataset: Callable[..., Any], dataset: str
) -> None:
    files = make_idx_dataset(dataset)
    ds = load_dataset(dataset, download=False)
    assert ds.name == dataset
    assert ds.x_train.shape == (20, 1, 28, 28) and ds.x_test.shape == (10, 1, 28, 28)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    np.testing.assert_allclose(ds.x_train[:, 0] * 255, files.x_train, atol=1e-4)
    np.testing.assert_allclose(ds.x_test[:, 0] * 255, files.x_test, atol=1e-4)
    np.testing.assert_array_equal(ds.y_train, files.y_train)
    np.testing.assert_array_equal(ds.y_test, files.y_test)
    assert ds.bounds == (0.0, 1.0) and ds.input_shape == (1, 28, 28)
    assert "official split, 20 train / 10 test" in ds.description
    if dataset == "fashion-mnist":
        assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"
    else:
        assert ds.class_names == tuple("0123456789")


def test_uncompressed_idx_files_are_accepted(make_idx_dataset: Callable[..., Any]) -> None:
    files = make_idx_dataset("mnist", compress=False)
    assert all(not name.endswith(".gz") for name in files.contents)
    ds = load_dataset("mnist", download=False)
    np.testing.assert_array_equal(ds.y_test, files.y_test)


def test_root_overrides_advml_home(make_idx_dataset: Callable[..., Any], tmp_path: Path) -> None:
    root = tmp_path / "elsewhere"
    make_idx_dataset("mnist", root=root)
    with pytest.raises(DatasetUnavailableError):
        load_dataset("mnist", download=False)  # nothing in $ADVML_HOME
    assert load_dataset("mnist", root=root, download=False).n_train == 20


def test_a_damaged_uncompressed_copy_fails_its_checksum(
    make_idx_dataset: Callable[..., Any],
) -> None:
    files = make_idx_dataset("mnist", compress=False)
    target = files.folder / "t10k-labels-idx1-ubyte"
    target.write_bytes(target.read_bytes()[:-1] + b"\x03")
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte has SHA-256 .* expected"):
        load_dataset("mnist", download=False)


def test_image_and_label_counts_must_agree(
    make_idx_dataset: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, fmt: Any
) -> None:
    files = make_idx_dataset("mnist")
    labels = gzip.compress(fmt.idx_bytes(np.zeros(9, dtype=np.uint8)))
    (files.folder / "t10k-labels-idx1-ubyte.gz").write_bytes(labels)
    table = list(sources.REMOTE_FILES["mnist"])
    table[3] = dataclasses.replace(table[3], sha256=fmt.sha256(labels))
    monkeypatch.setitem(sources.REMOTE_FILES, "mnist", tuple(table))
    with pytest.raises(ValueError, match=r"has 10 images but .*t10k-labels.* has 9 labels"):
        load_dataset("mnist", download=False)
