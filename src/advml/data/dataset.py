"""The dataset every part of advml works on, and the check that keeps it consistent.

A :class:`Dataset` holds a fixed train/test split of a classification problem with its
inputs in known bounds. It is checked once when it is built (shapes, dtypes, finite values,
bounds, labels), so code that receives one can rely on it without checking again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from advml.validation import (
    check_bounds,
    check_feature_bounds,
    check_finite,
    check_in_bounds,
    check_in_feature_bounds,
    check_input_shape,
    check_labels,
    check_not_empty,
    check_number,
)

__all__ = ["Dataset", "DatasetInfo", "check_data"]


def check_data(
    x: Any,
    y: Any,
    *,
    input_shape: tuple[int, ...],
    n_classes: int,
    bounds: tuple[float, float],
    name_x: str = "x",
    name_y: str = "y",
) -> None:
    """Raise ``ValueError`` unless ``(x, y)`` is a valid labelled batch.

    Parameters
    ----------
    x : numpy.ndarray or torch.Tensor, shape (n, *input_shape)
        Inputs; real-valued, finite and within ``bounds``.
    y : numpy.ndarray or torch.Tensor, shape (n,)
        Integer class indices in ``[0, n_classes)``, one per row of ``x``.
    input_shape : tuple of int
        The shape of one input, e.g. ``(1, 28, 28)`` or ``(30,)``.
    n_classes : int
        The number of classes, >= 2.
    bounds : (float, float)
        The smallest and largest valid input value.
    name_x, name_y : str, default "x", "y"
        The names the error messages use for ``x`` and ``y``.

    Raises
    ------
    ValueError
        When ``x`` or ``y`` is empty, has the wrong shape, holds NaN or infinite values or
        values outside ``bounds``, when the lengths differ, or when a label is not a class
        index in ``[0, n_classes)``. The message names the offending parameter.
    TypeError
        When ``x`` or ``y`` is not an array or holds non-numeric values.

    Examples
    --------
    >>> import numpy as np
    >>> check_data(np.zeros((2, 3)), np.array([0, 1]), input_shape=(3,), n_classes=2,
    ...            bounds=(0.0, 1.0))
    """
    check_number("n_classes", n_classes, low=2, integer=True)
    bounds = check_bounds("bounds", bounds)
    x = _as_array(name_x, x)
    y = _as_array(name_y, y)
    if not _is_real(x):
        raise TypeError(f"{name_x} must hold real numbers, got dtype {x.dtype}")
    if not _is_real(y):
        raise TypeError(f"{name_y} must hold integer class indices, got dtype {y.dtype}")
    check_not_empty(name_x, x)
    check_not_empty(name_y, y)
    check_input_shape(name_x, x, tuple(int(d) for d in input_shape))
    check_finite(name_x, x)
    check_in_bounds(name_x, x, bounds)
    check_labels(name_y, y, int(n_classes), n_samples=int(x.shape[0]))


def _as_array(name: str, value: Any) -> np.ndarray | torch.Tensor:
    if isinstance(value, np.ndarray | torch.Tensor):
        return value
    if isinstance(value, list | tuple):
        try:
            return np.asarray(value)
        except ValueError:
            raise ValueError(f"{name} is ragged: its rows have different shapes") from None
    raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(value).__name__}")


def _is_real(a: np.ndarray | torch.Tensor) -> bool:
    if isinstance(a, torch.Tensor):
        return not (a.is_complex() or a.dtype == torch.bool)
    return bool(np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating))


@dataclass(frozen=True, eq=False)
class Dataset:
    """A classification dataset with a fixed train/test split and known input bounds.

    Building one checks it: ``x_train``/``x_test`` are converted to ``float32`` and
    ``y_train``/``y_test`` to ``int64`` (copies are made only where the dtype differs),
    and both splits must pass :func:`check_data`.

    Parameters
    ----------
    name : str
        Short name, e.g. ``"digits"``.
    x_train : numpy.ndarray, shape (n_train, *input_shape), float32
        Training inputs, within ``bounds``.
    y_train : numpy.ndarray, shape (n_train,), int64
        Training labels in ``[0, n_classes)``.
    x_test : numpy.ndarray, shape (n_test, *input_shape), float32
        Test inputs, within ``bounds``.
    y_test : numpy.ndarray, shape (n_test,), int64
        Test labels in ``[0, n_classes)``.
    input_shape : tuple of int
        Shape of one input. Images are channels-first, ``(channels, height, width)``,
        e.g. ``(1, 28, 28)``; tabular data is ``(n_features,)``.
    n_classes : int
        Number of classes, >= 2.
    bounds : (float, float)
        Smallest and largest valid input value; ``(0.0, 1.0)`` for every built-in dataset.
    class_names : tuple of str
        One name per class, in label order.
    description : str
        One line: source, split and scaling.
    feature_bounds : (numpy.ndarray, numpy.ndarray) or None, default None
        Per-feature (or, for images, per-channel ``(C,)``) low and high values, when
        features have different valid ranges (raw tabular features). ``bounds`` is then
        set to their envelope (smallest low, largest high), and the arrays are kept as
        ``float32`` of ``input_shape``; ``None`` when one ``bounds`` pair holds for all.
        Pass :attr:`model_bounds` as ``bounds=`` to a model adapter.

    Examples
    --------
    >>> from advml.data import load_dataset
    >>> ds = load_dataset("digits")
    >>> ds.x_train.shape, ds.n_classes, ds.is_image
    ((1437, 1, 8, 8), 10, True)
    >>> small = ds.subset(n_train=100, n_test=50)
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    input_shape: tuple[int, ...]
    n_classes: int
    bounds: tuple[float, float]
    class_names: tuple[str, ...]
    description: str
    feature_bounds: tuple[np.ndarray, np.ndarray] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        check_number("n_classes", self.n_classes, low=2, integer=True)
        shape = tuple(int(d) for d in self.input_shape)
        if not shape or any(d < 1 for d in shape):
            raise ValueError(f"input_shape must be a tuple of positive sizes, got {shape!r}")
        bounds = check_bounds("bounds", self.bounds)
        per_feature = None
        if self.feature_bounds is not None:
            bounds, per_feature = check_feature_bounds("feature_bounds", self.feature_bounds, shape)
        object.__setattr__(self, "feature_bounds", per_feature)
        names = tuple(str(c) for c in self.class_names)
        if len(names) != int(self.n_classes):
            raise ValueError(
                f"class_names has {len(names)} names for n_classes={self.n_classes}; "
                "give one name per class"
            )
        object.__setattr__(self, "input_shape", shape)
        object.__setattr__(self, "n_classes", int(self.n_classes))
        object.__setattr__(self, "bounds", bounds)
        object.__setattr__(self, "class_names", names)
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            check_data(
                x,
                y,
                input_shape=shape,
                n_classes=self.n_classes,
                bounds=bounds,
                name_x=f"x_{split}",
                name_y=f"y_{split}",
            )
            if per_feature is not None:
                check_in_feature_bounds(f"x_{split}", x, *per_feature)
            object.__setattr__(self, f"x_{split}", _to_numpy(x).astype(np.float32, copy=False))
            object.__setattr__(self, f"y_{split}", _to_numpy(y).astype(np.int64, copy=False))

    @property
    def is_image(self) -> bool:
        """Whether inputs are channels-first images (``len(input_shape) == 3``)."""
        return len(self.input_shape) == 3

    @property
    def model_bounds(self) -> tuple[float, float] | tuple[np.ndarray, np.ndarray]:
        """What to pass as ``bounds=`` to a model adapter: :attr:`feature_bounds` when
        the features have their own ranges, else :attr:`bounds`."""
        return self.bounds if self.feature_bounds is None else self.feature_bounds

    def limited(self, n: int | None, seed: int = 0) -> Dataset:
        """At most ``n`` samples in each split, drawn as :meth:`subset` does (stratified
        by class, seeded); the dataset itself when ``n`` is None or both splits are
        already that small. What ``--limit N`` does."""
        if n is None:
            return self
        check_number("limit", n, low=1, integer=True)
        if self.n_train <= n and self.n_test <= n:
            return self
        return self.subset(
            n_train=min(int(n), self.n_train), n_test=min(int(n), self.n_test), seed=seed
        )

    @property
    def n_train(self) -> int:
        """Number of training samples."""
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        """Number of test samples."""
        return int(self.x_test.shape[0])

    def subset(
        self, n_train: int | None = None, n_test: int | None = None, seed: int = 0
    ) -> Dataset:
        """A smaller dataset drawn from this one, with class proportions kept.

        Each split is sampled without replacement; every class gets a share of the samples
        proportional to its share of the split (largest remainder rounding), so a small
        subset of a balanced dataset stays balanced. The samples keep their order.

        Parameters
        ----------
        n_train, n_test : int or None, default None
            How many training / test samples to keep, between 1 and the split's size;
            ``None`` keeps the whole split.
        seed : int, default 0
            The same seed gives the same subset.

        Returns
        -------
        Dataset
            A new dataset (arrays are copies); this one is left unchanged.

        Raises
        ------
        ValueError
            When ``n_train`` or ``n_test`` is < 1 or larger than the split.
        """
        check_number("seed", seed, low=0, integer=True)
        rng = np.random.default_rng(int(seed))
        picked = {}
        for split, n in (("train", n_train), ("test", n_test)):
            y = getattr(self, f"y_{split}")
            if n is None:
                picked[split] = np.arange(len(y))
                continue
            check_number(f"n_{split}", n, low=1, high=len(y), integer=True)
            picked[split] = _stratified_sample(y, int(n), rng)
        if n_train is None and n_test is None:
            note = ""
        else:
            note = (
                f"; subset of {len(picked['train'])} train / {len(picked['test'])} test "
                f"(seed {seed})"
            )
        return dataclasses.replace(
            self,
            x_train=self.x_train[picked["train"]],
            y_train=self.y_train[picked["train"]],
            x_test=self.x_test[picked["test"]],
            y_test=self.y_test[picked["test"]],
            description=self.description + note,
        )

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, n_train={self.n_train}, n_test={self.n_test}, "
            f"input_shape={self.input_shape}, n_classes={self.n_classes}, "
            f"bounds={self.bounds}"
            + (", per-feature bounds" if self.feature_bounds is not None else "")
            + ")"
        )


def _to_numpy(a: np.ndarray | torch.Tensor | list[Any] | tuple[Any, ...]) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def _stratified_sample(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n`` samples of ``y``, each class's share proportional to its frequency."""
    classes, counts = np.unique(y, return_counts=True)
    exact = counts * (n / len(y))
    quota = np.floor(exact).astype(np.int64)
    # Largest remainder: the samples left after flooring go to the largest fractions;
    # ties are broken at random so no class is favoured by its index.
    left = n - int(quota.sum())
    if left:
        order = np.lexsort((rng.random(len(classes)), -(exact - quota)))
        quota[order[:left]] += 1
    quota = np.minimum(quota, counts)
    chosen = [
        rng.permutation(np.flatnonzero(y == c))[:q] for c, q in zip(classes, quota, strict=True)
    ]
    return np.sort(np.concatenate(chosen))


@dataclass(frozen=True)
class DatasetInfo:
    """What :func:`~advml.data.list_datasets` says about one dataset, without loading it.

    Attributes
    ----------
    name : str
        The name :func:`~advml.data.load_dataset` takes.
    description : str
        One line: source, split and scaling.
    input_shape : tuple of int
        Shape of one input (channels-first for images).
    n_classes : int
        Number of classes.
    embedded : bool
        True when the data ships inside an installed package (works offline).
    files : tuple of str
        For a downloadable dataset, the files it needs under
        ``advml_home() / name``; empty for an embedded one.
    """

    name: str
    description: str
    input_shape: tuple[int, ...]
    n_classes: int
    embedded: bool
    files: tuple[str, ...] = ()
