"""CIFAR-10 from the official Python archive, unpickled without running code from it.

``cifar-10-python.tar.gz`` (Krizhevsky, "Learning Multiple Layers of Features from Tiny
Images", 2009) holds ``cifar-10-batches-py/data_batch_1`` .. ``data_batch_5`` (the 50,000
training images), ``test_batch`` (the 10,000 test images) and ``batches.meta`` (the class
names). Each is a Python 2 pickle of a dict: ``b"data"`` a ``uint8`` array of shape
``(n, 3072)`` (1024 red, 1024 green, 1024 blue values per image, each a row-major 32x32
plane), ``b"labels"`` a list of ints, and in the meta file ``b"label_names"``.

Pickle runs whatever functions a file names, so a doctored archive could run code on load.
The files are therefore read with a restricted unpickler that resolves only the three
numpy globals an array needs (``_reconstruct``, ``ndarray``, ``dtype``) and refuses any
other with :class:`~advml.errors.UntrustedFileError`. ``trust=True`` uses plain pickle,
for files the caller made or vouches for.

The split is the official one (50,000 train / 10,000 test); pixels 0..255 are divided by
255, giving ``float32`` images of shape ``(3, 32, 32)`` in [0, 1].
"""

from __future__ import annotations

import importlib
import pickle
import tarfile
from pathlib import Path
from typing import IO, Any

import numpy as np

from advml.data._prepare import official_pixels_dataset
from advml.data.dataset import Dataset
from advml.errors import UntrustedFileError
from advml.validation import check_bool

__all__ = ["CIFAR10_CLASSES", "load_cifar10", "load_pickle"]

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

_FOLDER = "cifar-10-batches-py"
_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST = "test_batch"
_META = "batches.meta"


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """The globals a pickled numpy array needs, under the module names numpy 1 and 2
    write (the real CIFAR files, from numpy 1 under Python 2, use ``numpy.core``)."""
    try:
        multiarray = importlib.import_module("numpy._core.multiarray")
    except ImportError:  # numpy < 2
        multiarray = importlib.import_module("numpy.core.multiarray")
    reconstruct = multiarray._reconstruct
    return {
        ("numpy.core.multiarray", "_reconstruct"): reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }


class _NumpyArraysUnpickler(pickle.Unpickler):
    """An unpickler that builds plain containers and numpy arrays, and nothing else."""

    def __init__(self, file: IO[bytes], *, source: str) -> None:
        # encoding="bytes": the files are Python 2 pickles whose str values (dict keys,
        # class names, raw array data) must stay bytes.
        super().__init__(file, encoding="bytes")
        self._source = source
        self._allowed = _numpy_globals()

    def find_class(self, module: str, name: str) -> Any:
        found = self._allowed.get((module, name))
        if found is None:
            allowed = ", ".join(f"{m}.{n}" for m, n in self._allowed)
            raise UntrustedFileError(
                f"{self._source} asks to load the Python global '{module}.{name}'; a CIFAR "
                f"batch needs only {allowed}. Unpickling it could run code from the file, "
                "so it was refused. If you made this file yourself or trust where it came "
                "from, load it with trust=True."
            )
        return found


def load_pickle(stream: IO[bytes], *, source: str, trust: bool = False) -> Any:
    """Unpickle one CIFAR-style file: numpy arrays and plain containers only, unless
    ``trust`` is True.

    Raises
    ------
    UntrustedFileError
        When the pickle names any global other than numpy's array reconstruction and
        ``trust`` is False. Nothing from the file is run.
    ValueError
        When the stream is not a valid pickle.
    """
    check_bool("trust", trust)  # a truthy string must not switch plain pickle on
    try:
        if trust:
            # The caller vouched for the file: plain pickle, which runs what it names.
            return pickle.load(stream, encoding="bytes")
        return _NumpyArraysUnpickler(stream, source=source).load()
    except UntrustedFileError:
        raise
    except (
        pickle.UnpicklingError,
        EOFError,
        OSError,
        tarfile.TarError,
        ValueError,
        TypeError,
        AttributeError,
    ) as err:
        raise ValueError(f"{source} is not a valid CIFAR pickle ({err})") from None


def _field(batch: Any, key: str, source: str) -> Any:
    if not isinstance(batch, dict):
        raise ValueError(f"{source} holds a {type(batch).__name__}, expected a dict")
    for k in (key.encode(), key):
        if k in batch:
            return batch[k]
    raise ValueError(f"{source} has no {key!r} entry; its keys are {sorted(map(str, batch))}")


def _read_batch(batch: Any, source: str) -> tuple[np.ndarray, np.ndarray]:
    data = _field(batch, "data", source)
    labels = np.asarray(_field(batch, "labels", source))
    if not (
        isinstance(data, np.ndarray)
        and data.dtype == np.uint8
        and data.ndim == 2
        and data.shape[1] == 3 * 32 * 32
    ):
        shape = getattr(data, "shape", None)
        raise ValueError(
            f"{source}: 'data' must be a uint8 array of shape (n, 3072), got "
            f"{type(data).__name__} {getattr(data, 'dtype', '')} {shape}"
        )
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != len(data):
        raise ValueError(
            f"{source}: 'labels' must be {len(data)} integers, got {labels.dtype} {labels.shape}"
        )
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _to_unit(images: np.ndarray) -> np.ndarray:
    out = images.astype(np.float32)
    out /= np.float32(255.0)
    return out


def _class_names(meta: Any, source: str) -> tuple[str, ...]:
    names = _field(meta, "label_names", source)
    decoded = tuple(n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names)
    if len(decoded) != len(CIFAR10_CLASSES):
        raise ValueError(f"{source}: expected 10 label_names, got {len(decoded)}")
    return decoded


def load_cifar10(archive: Path, *, trust: bool = False) -> Dataset:
    """A :class:`Dataset` from ``cifar-10-python.tar.gz`` (read in place, not extracted).

    Parameters
    ----------
    archive : Path
        The official archive, or a tar file with the same members.
    trust : bool, default False
        Unpickle with plain :mod:`pickle` (runs any code the files name).

    Raises
    ------
    UntrustedFileError
        When a batch names a global beyond numpy's array reconstruction and ``trust`` is
        False.
    ValueError
        When a member is missing or does not hold a CIFAR batch.
    """
    check_bool("trust", trust)

    def read(tar: tarfile.TarFile, member_name: str) -> Any:
        name = f"{_FOLDER}/{member_name}"
        source = f"{archive}:{name}"
        try:
            member = tar.getmember(name)
        except KeyError:
            raise ValueError(
                f"{archive} has no member {name}; it is not the CIFAR-10 python archive"
            ) from None
        stream = tar.extractfile(member) if member.isfile() else None
        if stream is None:
            raise ValueError(f"{source} is not a regular file")
        with stream:
            return load_pickle(stream, source=source, trust=trust)

    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError) as err:
        raise ValueError(f"{archive} is not a readable tar archive ({err})") from None
    with tar:
        train = [_read_batch(read(tar, n), f"{archive}:{n}") for n in _TRAIN]
        test_images, y_test = _read_batch(read(tar, _TEST), f"{archive}:{_TEST}")
        class_names = _class_names(read(tar, _META), f"{archive}:{_META}")
    # Concatenate the uint8 batches first: one float32 copy of the images, not two.
    x_train = _to_unit(np.concatenate([x for x, _ in train]))
    y_train = np.concatenate([y for _, y in train])
    x_test = _to_unit(test_images)
    del train
    return official_pixels_dataset(
        "cifar10",
        "CIFAR-10 python archive (Krizhevsky 2009)",
        (x_train, y_train),
        (x_test, y_test),
        class_names,
    )
