"""Steps shared by the dataset loaders: splitting, label encoding, scaling, bounds."""

from __future__ import annotations

import logging
import warnings

import numpy as np

from advml.data.dataset import Dataset

__all__ = [
    "encode_labels",
    "infer_bounds",
    "minmax_scale",
    "official_pixels",
    "official_pixels_dataset",
    "split_train_test",
]

logger = logging.getLogger("advml.data")


def split_train_test(
    x: np.ndarray, y: np.ndarray, *, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split into ``(x_train, x_test, y_train, y_test)``, stratified by ``y`` when possible.

    Uses :func:`sklearn.model_selection.train_test_split` with ``random_state=seed``, so
    the split is the same on every run and machine. Stratification needs at least two
    samples of every class and room for every class in both parts; without that the
    split is a plain random one and a warning says so.
    """
    from sklearn.model_selection import train_test_split

    n = len(y)
    n_test = int(np.ceil(test_fraction * n))
    if n_test < 1 or n_test >= n:
        raise ValueError(
            f"test_fraction={test_fraction} of {n} samples leaves {n_test} test and "
            f"{n - n_test} training samples; both need at least one (give more data or "
            "another test_fraction)"
        )
    _, counts = np.unique(y, return_counts=True)
    stratify = y if counts.min() >= 2 and len(counts) <= min(n_test, n - n_test) else None
    if stratify is None:
        warnings.warn(
            "the train/test split is random, not stratified: some class has fewer than two "
            "samples or there are more classes than test samples",
            stacklevel=3,
        )
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=n_test, random_state=int(seed), stratify=stratify
    )
    return x_train, x_test, y_train, y_test


def encode_labels(values: np.ndarray, *, name: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Class indices and class names for a 1-d array of labels.

    Non-negative integers (or integral floats) are already class indices and are kept:
    ``n_classes = max + 1`` and the names are ``"0", "1", ...``. Any other labels
    (strings, negative integers) are mapped to ``0 .. k-1`` in sorted order and the
    original values become the class names.

    Raises
    ------
    ValueError
        When the labels are fractional numbers, NaN, hold a single class, or imply more
        classes (``max + 1``) than there are labelled samples.
    """
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"{name} must be 1-d, got shape {values.shape}")
    if values.size == 0:
        raise ValueError(f"{name} is empty: give at least one labelled sample")
    if values.dtype.kind in "biuf":
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            raise ValueError(f"{name} contains NaN or infinite labels; drop those samples")
        if values.dtype.kind == "f" and not np.all(np.mod(values, 1) == 0):
            bad = values[np.mod(values, 1) != 0][0]
            raise ValueError(
                f"{name} must hold class labels, got the non-integer value {bad:g}; "
                "regression targets cannot be used as classes"
            )
        if values.dtype.kind == "f" and np.abs(values).max() >= 2**62:
            raise ValueError(f"{name} holds labels too large to be class indices")
        ints = values.astype(np.int64)
        if ints.min() >= 0:
            n_classes = int(ints.max()) + 1
            if n_classes > values.size:
                # Checked before any per-class object exists: a label of 10**9 in a tiny
                # file would otherwise build 10**9 class names.
                raise ValueError(
                    f"{name} has labels up to {n_classes - 1}, so {n_classes} classes, but "
                    f"only {values.size} labelled samples: most classes could have none. "
                    "Use labels 0..k-1 (for codes such as 10, 20, 1000000: "
                    "np.unique(y, return_inverse=True)[1])"
                )
            if n_classes < 2:
                raise ValueError(f"{name} holds a single class; a classifier needs at least 2")
            return ints, tuple(str(i) for i in range(n_classes))
        values = ints
    else:
        values = values.astype(str)
    classes, y = np.unique(values, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(
            f"{name} holds a single class ({classes[0]!s}); a classifier needs at least 2"
        )
    logger.info(
        "%s: mapped %d label values to class indices 0..%d", name, len(classes), len(classes) - 1
    )
    return y.astype(np.int64).reshape(-1), tuple(str(c) for c in classes)


def minmax_scale(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale each feature to [0, 1] with the training split's min and max.

    Test values outside the training range are clipped, so both splits stay in bounds.
    A feature that is constant in training maps to 0.
    """
    low = train.min(axis=0)
    span = train.max(axis=0) - low
    scale = np.where(span > 0, span, 1.0)
    train = np.clip((train - low) / scale, 0.0, 1.0)
    test = np.clip((test - low) / scale, 0.0, 1.0)
    return train.astype(np.float32), test.astype(np.float32)


def infer_bounds(*arrays: np.ndarray, name: str = "x") -> tuple[float, float]:
    """``(min, max)`` over all ``arrays``; an error when they are constant."""
    low = min(float(np.min(a)) for a in arrays)
    high = max(float(np.max(a)) for a in arrays)
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(f"{name} contains NaN or infinite values; clean or drop those samples")
    if low >= high:
        raise ValueError(
            f"{name} is constant ({low:g}), so its bounds cannot be inferred; "
            "pass bounds=(min, max)"
        )
    return low, high


def official_pixels(source: str, n_train: int, n_test: int) -> str:
    """The description of images on their publisher's split, pixels divided by 255."""
    return f"{source}; official split, {n_train} train / {n_test} test; pixels / 255 -> [0, 1]"


def official_pixels_dataset(
    name: str,
    source: str,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    class_names: tuple[str, ...],
) -> Dataset:
    """A :class:`Dataset` of images on their publisher's split, already divided by 255.

    ``train`` and ``test`` are ``(x, y)`` with ``x`` of shape ``(n, *input_shape)`` in
    [0, 1]; ``source`` opens the description (see :func:`official_pixels`).
    """
    (x_train, y_train), (x_test, y_test) = train, test
    return Dataset(
        name=name,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        input_shape=tuple(x_train.shape[1:]),
        n_classes=len(class_names),
        bounds=(0.0, 1.0),
        class_names=class_names,
        description=official_pixels(source, len(y_train), len(y_test)),
    )
