"""The built-in datasets by name: what exists, and loading one.

Embedded datasets (``digits``, ``mnist-5k``, ``breast-cancer``) ship inside installed
packages and always load. Downloadable ones (``mnist``, ``fashion-mnist``, ``cifar10``,
``olivetti``)
are read from ``<root>/<name>/`` where ``root`` defaults to :func:`advml_home`
(``$ADVML_HOME`` or ``~/.cache/advml``); missing files are downloaded and verified
against the SHA-256 values in :data:`advml.data.sources.REMOTE_FILES`. See
``docs/datasets.md`` for the full table.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from advml.data import sources
from advml.data._prepare import official_pixels
from advml.data.cifar import load_cifar10
from advml.data.dataset import Dataset, DatasetInfo
from advml.data.download import advml_home, ensure_files
from advml.data.embedded import EMBEDDED, load_embedded
from advml.data.idx import FASHION_MNIST_CLASSES, load_idx_dataset
from advml.data.olivetti import load_olivetti

__all__ = ["list_datasets", "load_dataset"]


def _remote(
    name: str, description: str, input_shape: tuple[int, ...], n_classes: int
) -> DatasetInfo:
    """A downloadable dataset, needing the files :data:`sources.REMOTE_FILES` lists."""
    files = tuple(f.filename for f in sources.REMOTE_FILES[name])
    return DatasetInfo(name, description, input_shape, n_classes, embedded=False, files=files)


_DOWNLOADABLE: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        _remote(
            "mnist",
            official_pixels("MNIST handwritten digits (LeCun et al.), IDX files", 60000, 10000),
            (1, 28, 28),
            10,
        ),
        _remote(
            "fashion-mnist",
            official_pixels("Fashion-MNIST (Zalando), IDX files", 60000, 10000),
            (1, 28, 28),
            10,
        ),
        _remote(
            "cifar10",
            official_pixels("CIFAR-10 (Krizhevsky 2009), python archive", 50000, 10000),
            (3, 32, 32),
            10,
        ),
        _remote(
            "olivetti",
            "Olivetti faces (AT&T Laboratories Cambridge), olivettifaces.mat; 40 people "
            "x 10 images, first 7 of each train / last 3 test (280 / 120); min-max -> [0, 1]",
            (1, 64, 64),
            40,
        ),
    )
}

_READERS: dict[str, Callable[[Sequence[Path], bool], Dataset]] = {
    "mnist": lambda paths, trust: load_idx_dataset(
        "mnist", paths, tuple(str(i) for i in range(10))
    ),
    "fashion-mnist": lambda paths, trust: load_idx_dataset(
        "fashion-mnist", paths, FASHION_MNIST_CLASSES
    ),
    "cifar10": lambda paths, trust: load_cifar10(paths[0], trust=trust),
    "olivetti": lambda paths, trust: load_olivetti(paths[0]),
}

_ALIASES = {
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "cifar-10": "cifar10",
    "cifar_10": "cifar10",
    "mnist5k": "mnist-5k",
    "mnist_5k": "mnist-5k",
    "breast_cancer": "breast-cancer",
    "olivetti-faces": "olivetti",
    "olivetti_faces": "olivetti",
}


def list_datasets() -> list[DatasetInfo]:
    """Every built-in dataset, embedded ones first, without loading any.

    Returns
    -------
    list of DatasetInfo

    Examples
    --------
    >>> [d.name for d in list_datasets() if d.embedded]
    ['digits', 'mnist-5k', 'breast-cancer']
    """
    return [*EMBEDDED.values(), *_DOWNLOADABLE.values()]


def load_dataset(
    name: str,
    *,
    root: str | os.PathLike[str] | None = None,
    download: bool = True,
    trust: bool = False,
) -> Dataset:
    """Load a built-in dataset by name.

    Parameters
    ----------
    name : str
        One of ``list_datasets()``: ``"digits"``, ``"mnist-5k"``, ``"breast-cancer"``
        (embedded, offline), ``"mnist"``, ``"fashion-mnist"``, ``"cifar10"``
        (downloaded once, then cached). Case and ``_``/``-`` do not matter.
    root : str, os.PathLike or None, default None
        The cache folder; files are read from and downloaded to ``root / name``.
        ``None`` uses :func:`advml_home` (``$ADVML_HOME`` or ``~/.cache/advml``).
        Ignored for embedded datasets.
    download : bool, default True
        Download missing files. With False, a missing file raises at once.
    trust : bool, default False
        For ``cifar10``: unpickle the batches with plain :mod:`pickle`, which runs any
        code a file names. Leave False unless you made or vouch for the files; the default
        reader accepts numpy arrays only.

    Returns
    -------
    Dataset
        Images are ``float32`` channels-first in [0, 1]; see each dataset's
        ``description`` for its source, split and scaling.

    Raises
    ------
    ValueError
        When ``name`` is unknown, or a file's SHA-256 differs from the published one.
    DatasetUnavailableError
        When files are missing and cannot be downloaded (offline, or ``download=False``);
        the message says which files to place in which folder, with URLs and SHA-256.
    UntrustedFileError
        When a CIFAR-10 batch would run code on unpickling and ``trust`` is False.

    Examples
    --------
    >>> ds = load_dataset("breast-cancer")
    >>> ds.input_shape, ds.n_train, ds.n_test, ds.bounds
    ((30,), 455, 114, (0.0, 1.0))
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a dataset name (str), got {type(name).__name__}")
    for flag, value in (("download", download), ("trust", trust)):
        if not isinstance(value, bool):
            raise TypeError(f"{flag} must be True or False, got {value!r}")
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key in EMBEDDED:
        return load_embedded(key)
    if key not in _DOWNLOADABLE:
        known = [d.name for d in list_datasets()]
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"name={name!r} is not a built-in dataset{hint}. Available: {', '.join(known)}. "
            "For your own data use load_npz or load_csv."
        )
    if root is not None and not isinstance(root, str | os.PathLike):
        raise TypeError(f"root must be a folder path or None, got {type(root).__name__}")
    base = Path(root).expanduser() if root is not None else advml_home()
    paths = ensure_files(key, sources.REMOTE_FILES[key], base / key, download=download)
    return _READERS[key](paths, trust)
