"""Key files: JSON + npz, never pickle; damaged or foreign files are refused clearly."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from advml.watermark import WatermarkKey, load_key, save_key
from advml.watermark.key import derive_seed, normalise_secret


def sample() -> WatermarkKey:
    return WatermarkKey(
        scheme="uchida",
        secret="owner secret",
        settings={"bits": 4, "layer": None},
        arrays={"projection": np.ones((4, 3), np.float32), "bits": np.array([0, 1, 1, 0])},
        meta={"layer": "fc2", "null_rate": 0.5},
    )


def test_round_trip(tmp_path: Path) -> None:
    path = save_key(sample(), tmp_path / "k.npz")
    loaded = load_key(path)
    assert loaded.same_material(sample())
    assert loaded.meta == {"layer": "fc2", "null_rate": 0.5}
    assert loaded.size == 4


def test_missing_folder_and_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="folder"):
        save_key(sample(), tmp_path / "no" / "k.npz")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_key(tmp_path / "absent.npz")


def test_a_pickled_array_is_never_loaded(tmp_path: Path) -> None:
    path = tmp_path / "evil.npz"
    np.savez(path, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="not a readable watermark key"):
        load_key(path)
    raw = tmp_path / "raw.npz"
    raw.write_bytes(pickle.dumps({"scheme": "adi"}))
    with pytest.raises(ValueError):
        load_key(raw)


def test_foreign_and_damaged_files(tmp_path: Path) -> None:
    plain = tmp_path / "plain.npz"
    np.savez(plain, x=np.zeros(3))
    with pytest.raises(ValueError, match="not an advml watermark key"):
        load_key(plain)
    good = save_key(sample(), tmp_path / "good.npz").read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError):
        load_key(cut)


def test_a_newer_format_asks_for_an_upgrade(tmp_path: Path) -> None:
    path = save_key(sample(), tmp_path / "k.npz")
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    meta = bytes(arrays["__meta__"]).decode().replace('"version": 1', '"version": 99')
    arrays["__meta__"] = np.frombuffer(meta.encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())
    assert zipfile.is_zipfile(path)
    with pytest.raises(ValueError, match="upgrade"):
        load_key(path)


def test_object_arrays_cannot_be_saved(tmp_path: Path) -> None:
    bad = WatermarkKey(scheme="adi", secret="s", settings={}, arrays={"x": np.array([None])})
    with pytest.raises(ValueError, match="object"):
        save_key(bad, tmp_path / "k.npz")


def test_secrets() -> None:
    assert normalise_secret(7) == "7"
    assert len(normalise_secret(None)) == 32
    assert normalise_secret(None) != normalise_secret(None)
    with pytest.raises(ValueError, match="key"):
        normalise_secret("")
    with pytest.raises(TypeError, match="key"):
        normalise_secret(1.5)  # type: ignore[arg-type]
    assert derive_seed("a", "x") != derive_seed("a", "y") != derive_seed("b", "x")
