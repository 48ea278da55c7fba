"""Fixtures for advml.data: an isolated cache, no network, and tiny real-format files."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import pickle
import struct
import tarfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from advml.data import sources
from advml.data.cifar import CIFAR10_CLASSES

IDX_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(">i2"): 0x0B,
    np.dtype(">i4"): 0x0C,
    np.dtype(">f4"): 0x0D,
    np.dtype(">f8"): 0x0E,
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def idx_bytes(array: np.ndarray) -> bytes:
    """``array`` in the IDX format: magic, big-endian dims, big-endian values."""
    dtype = array.dtype if array.dtype.itemsize == 1 else array.dtype.newbyteorder(">")
    header = bytes([0, 0, IDX_CODES[dtype], array.ndim])
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=dtype).tobytes()


class Py2Pickler(pickle._Pickler):
    """Writes pickles as Python 2's cPickle did for the CIFAR files: protocol 2, bytes as
    STRING opcodes, numpy arrays under ``numpy.core.multiarray``."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def py2_pickle(obj: Any) -> bytes:
    stream = io.BytesIO()
    Py2Pickler(stream, protocol=2).dump(obj)
    data = stream.getvalue()
    # Python 2 era numpy lived under numpy.core; GLOBAL opcodes are plain text lines.
    return data.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """A fresh $ADVML_HOME, quiet progress bars, and every URL refused."""
    home = tmp_path / "advml_home"
    monkeypatch.setenv("ADVML_HOME", str(home))
    monkeypatch.setenv("ADVML_QUIET", "1")

    def offline(request: Any, *args: Any, **kwargs: Any) -> Any:
        url = getattr(request, "full_url", request)
        raise urllib.error.URLError(f"network disabled in tests ({url})")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    yield home


@pytest.fixture
def advml_home_dir(isolated: Path) -> Path:
    return isolated


class FakeResponse(io.BytesIO):
    """What urlopen returns, enough for the downloader: headers and read()."""

    def __init__(self, data: bytes, *, length: int | None = None, fail_after: int | None = None):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data) if length is None else length)}
        self._fail_after = fail_after

    def read(self, size: int | None = -1) -> bytes:
        if self._fail_after is not None and self.tell() >= self._fail_after:
            raise ConnectionResetError("connection reset by peer")
        return super().read(size if self._fail_after is None else min(size or 1, 7))


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[str]]:
    """``serve({url: bytes or FakeResponse factory})``: urlopen answers those URLs only.

    Returns the list that records every URL requested.
    """

    def install(table: dict[str, Any]) -> list[str]:
        requested: list[str] = []

        def fake_urlopen(request: Any, *args: Any, **kwargs: Any) -> Any:
            url = getattr(request, "full_url", request)
            requested.append(url)
            if url not in table:
                raise urllib.error.URLError(f"no route to {url}")
            entry = table[url]
            return entry() if callable(entry) else FakeResponse(entry)

        monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
        return requested

    return install


IDX_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


@dataclasses.dataclass
class IdxFiles:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    contents: dict[str, bytes]  # file name (as written) -> bytes
    folder: Path


@pytest.fixture
def make_idx_dataset(monkeypatch: pytest.MonkeyPatch, isolated: Path) -> Callable[..., IdxFiles]:
    """Write tiny MNIST-format files for ``dataset`` and point the checksum table at them.

    ``write=False`` only prepares the bytes (for download tests); ``compress=False``
    writes the uncompressed copies (names without .gz).
    """

    def make(
        dataset: str = "mnist",
        *,
        n_train: int = 20,
        n_test: int = 10,
        compress: bool = True,
        write: bool = True,
        root: Path | None = None,
    ) -> IdxFiles:
        rng = np.random.default_rng(1)
        x_train = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
        y_train = (np.arange(n_train) % 10).astype(np.uint8)
        x_test = rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
        y_test = (np.arange(n_test) % 10).astype(np.uint8)
        arrays = (x_train, y_train, x_test, y_test)
        folder = (root if root is not None else isolated) / dataset
        contents: dict[str, bytes] = {}
        table = []
        for remote, array in zip(sources.REMOTE_FILES[dataset], arrays, strict=True):
            raw = idx_bytes(array)
            packed = gzip.compress(raw, mtime=0)
            table.append(
                dataclasses.replace(remote, sha256=sha256(packed), plain_sha256=sha256(raw))
            )
            if compress:
                contents[remote.filename] = packed
            else:
                contents[remote.filename.removesuffix(".gz")] = raw
        monkeypatch.setitem(sources.REMOTE_FILES, dataset, tuple(table))
        if write:
            folder.mkdir(parents=True, exist_ok=True)
            for name, data in contents.items():
                (folder / name).write_bytes(data)
        return IdxFiles(x_train, y_train, x_test, y_test, contents, folder)

    return make


def cifar_batch(n: int, seed: int, *, label_offset: int = 0) -> dict[bytes, Any]:
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"training batch",
        b"labels": [int(v) for v in (np.arange(n) + label_offset) % 10],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(n)],
    }


CIFAR_META = {
    b"num_cases_per_batch": 10000,
    b"label_names": [name.encode() for name in CIFAR10_CLASSES],
    b"num_vis": 3072,
}


def cifar_tar(members: dict[str, bytes]) -> bytes:
    """A .tar.gz with ``members`` under ``cifar-10-batches-py/``."""
    stream = io.BytesIO()
    with tarfile.open(fileobj=stream, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return stream.getvalue()


@dataclasses.dataclass
class CifarArchive:
    batches: dict[str, dict[bytes, Any]]
    data: bytes
    path: Path


@pytest.fixture
def make_cifar_archive(
    monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> Callable[..., CifarArchive]:
    """Write a tiny ``cifar-10-python.tar.gz`` in the real format into the cache.

    ``dumps`` pickles each member (default: Python 2 style, as the real files);
    ``replace`` swaps the bytes of chosen members (e.g. a malicious pickle).
    """

    def make(
        *,
        per_batch: int = 4,
        dumps: Callable[[Any], bytes] = py2_pickle,
        replace: dict[str, bytes] | None = None,
        write: bool = True,
    ) -> CifarArchive:
        batches = {
            f"data_batch_{i}": cifar_batch(per_batch, i, label_offset=i) for i in range(1, 6)
        }
        batches["test_batch"] = cifar_batch(per_batch + 1, 99)
        members = {name: dumps(batch) for name, batch in batches.items()}
        members["batches.meta"] = dumps(CIFAR_META)
        members.update(replace or {})
        data = cifar_tar(members)
        (remote,) = sources.REMOTE_FILES["cifar10"]
        monkeypatch.setitem(
            sources.REMOTE_FILES, "cifar10", (dataclasses.replace(remote, sha256=sha256(data)),)
        )
        path = isolated / "cifar10" / remote.filename
        if write:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return CifarArchive(batches, data, path)

    return make


@pytest.fixture
def fmt() -> SimpleNamespace:
    """The real-format writers, for tests that build their own files."""
    return SimpleNamespace(
        sha256=sha256,
        idx_bytes=idx_bytes,
        py2_pickle=py2_pickle,
        cifar_batch=cifar_batch,
        cifar_meta=CIFAR_META,
        cifar_tar=cifar_tar,
        FakeResponse=FakeResponse,
    )
