"""The Olivetti faces from a .mat file in the real layout, written by the test."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from advml.data import list_datasets, load_dataset, sources
from advml.errors import DatasetUnavailableError


def _images() -> np.ndarray:
    """400 distinct 64x64 uint8 images; asymmetric, so a transposition would show."""
    rng = np.random.default_rng(0)
    return rng.integers(10, 250, (400, 64, 64), dtype=np.uint8)


def _write(
    folder: Path, monkeypatch: pytest.MonkeyPatch, faces: np.ndarray, **extra: object
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "olivettifaces.mat"
    scipy.io.savemat(str(path), {"faces": faces, **extra})
    (remote,) = sources.REMOTE_FILES["olivetti"]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setitem(
        sources.REMOTE_FILES, "olivetti", (dataclasses.replace(remote, sha256=digest),)
    )
    return path


def _matlab_layout(images: np.ndarray) -> np.ndarray:
    """``(4096, n)``: image j in column j, column-major, as MATLAB stores a 64x64 matrix."""
    return np.stack([img.T.reshape(-1) for img in images], axis=1)


def test_the_real_layout_loads_with_pixels_and_people_in_place(
    advml_home_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = _images()
    _write(advml_home_dir / "olivetti", monkeypatch, _matlab_layout(images))
    ds = load_dataset("olivetti", download=False)
    assert ds.x_train.shape == (280, 1, 64, 64) and ds.x_test.shape == (120, 1, 64, 64)
    assert ds.n_classes == 40 and ds.class_names[0] == "person 1"
    assert ds.x_train.dtype == np.float32 and ds.x_train.min() == 0.0 and ds.x_train.max() <= 1.0
    low, high = float(images.min()), float(images.max())
    scaled = (images.astype(np.float64) - low) / (high - low)
    # Person p owns images 10p .. 10p+9: the first 7 train, the last 3 test.
    np.testing.assert_allclose(ds.x_train[7 * 3 + 2, 0], scaled[10 * 3 + 2], atol=1e-6)
    np.testing.assert_allclose(ds.x_test[3 * 5 + 1, 0], scaled[10 * 5 + 7 + 1], atol=1e-6)
    assert ds.x_train[0, 0, 0, 1] == pytest.approx(scaled[0, 0, 1], abs=1e-6)  # (row, col)
    np.testing.assert_array_equal(ds.y_train, np.repeat(np.arange(40), 7))
    np.testing.assert_array_equal(ds.y_test, np.repeat(np.arange(40), 3))
    assert "olivetti" in [d.name for d in list_datasets() if not d.embedded]


def test_offline_error_names_the_file_the_folder_and_the_url(advml_home_dir: Path) -> None:
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset("olivetti")
    text = str(info.value)
    assert "olivettifaces.mat" in text and str(advml_home_dir / "olivetti") in text
    assert "figshare" in text and sources.REMOTE_FILES["olivetti"][0].sha256 in text


def test_a_wrong_checksum_is_refused(advml_home_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = advml_home_dir / "olivetti"
    folder.mkdir(parents=True)
    scipy.io.savemat(str(folder / "olivettifaces.mat"), {"faces": _matlab_layout(_images())})
    with pytest.raises(ValueError, match="SHA-256"):
        load_dataset("olivetti", download=False)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"pictures": np.zeros((4096, 400))}, "no variable 'faces'"),
        ({"faces": np.zeros((4096, 399))}, r"shape \(4096, 399\)"),
        ({"faces": np.zeros((4096, 400))}, "same value"),
    ],
)
def test_malformed_files_are_explained(
    advml_home_dir: Path, monkeypatch: pytest.MonkeyPatch, content: dict, message: str
) -> None:
    folder = advml_home_dir / "olivetti"
    folder.mkdir(parents=True)
    path = folder / "olivettifaces.mat"
    scipy.io.savemat(str(path), content)
    (remote,) = sources.REMOTE_FILES["olivetti"]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setitem(
        sources.REMOTE_FILES, "olivetti", (dataclasses.replace(remote, sha256=digest),)
    )
    with pytest.raises(ValueError, match=message):
        load_dataset("olivetti", download=False)


def test_a_file_that_is_not_a_mat_file_is_explained(
    advml_home_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = advml_home_dir / "olivetti"
    folder.mkdir(parents=True)
    path = folder / "olivettifaces.mat"
    path.write_bytes(b"<html>not found</html>")
    (remote,) = sources.REMOTE_FILES["olivetti"]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setitem(
        sources.REMOTE_FILES, "olivetti", (dataclasses.replace(remote, sha256=digest),)
    )
    with pytest.raises(ValueError, match="not a readable MATLAB"):
        load_dataset("olivetti", download=False)
