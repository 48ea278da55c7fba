"""``--dataset`` for every command: a built-in name or the user's own files.

:func:`load_data` recognises what it is given (a folder of class folders, a CSV or
Parquet table, an ``.npz`` archive, or a dataset name), applies the bounds the user
gives (a pair, per-feature arrays or a bounds file) or takes them from the data, and
draws a stratified, seeded sample with ``limit``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from advml.data.dataset import Dataset
from advml.data.images import load_image_folder
from advml.data.tables import data_feature_bounds, load_parquet, read_bounds
from advml.data.user import load_csv, load_npz
from advml.validation import check_feature_bounds

__all__ = ["apply_bounds", "load_data"]

TABLE_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def load_data(
    source: str | os.PathLike[str],
    *,
    label_column: str | int | None = None,
    input_shape: Sequence[int] | None = None,
    classes: Sequence[str] | None = None,
    bounds: Any = None,
    limit: int | None = None,
    seed: int = 0,
    test_fraction: float = 0.2,
) -> Dataset:
    """A :class:`Dataset` from a name or a path, as ``--dataset`` reads it.

    Parameters
    ----------
    source : str or os.PathLike
        A folder (image classes, see :func:`~advml.data.images.load_image_folder`), a
        ``.csv``/``.tsv`` or ``.parquet`` table, an ``.npz`` archive, or a built-in
        dataset name (``advml datasets``).
    label_column : str or int or None
        The label column of a table (name, or index for a CSV file); CSV defaults to
        the last column, Parquet needs it.
    input_shape : (C, H, W) or None
        Shape images are resized to (C 1: grayscale, 3: RGB); ``None``: the first
        image's.
    classes : sequence of str or None
        Class folders in label order (image folders); ``None``: sorted names.
    bounds : None, "data", (low, high), (array, array) or a file path
        ``None``: the format's default: pixels scaled to (0, 1) for image folders; each
        feature's own min/max over the data for tables (with a warning); the data's
        overall min/max for ``.npz``; a built-in dataset's own. ``"data"``: per-feature
        min/max for any format. A pair of numbers, per-feature (per-channel) arrays, or
        a ``.npy``/``.json``/``.csv`` file (:func:`~advml.data.tables.read_bounds`).
    limit : int or None
        At most this many samples per split, stratified by class and seeded (image
        folders and Parquet tables decode only the sampled rows or files).
    seed : int
        Seed of the split and the sample.
    test_fraction : float
        Share held out for testing when the source has no split of its own.

    Returns
    -------
    Dataset
    """
    if not isinstance(source, str | os.PathLike):
        raise TypeError(f"dataset must be a name or a path, got {type(source).__name__}")
    path = Path(source).expanduser()
    text = str(source)
    looks_like_path = (
        path.exists()
        or os.sep in text
        or path.suffix.lower()
        in (
            *TABLE_SUFFIXES,
            ".npz",
        )
    )
    if not looks_like_path:
        from advml.data.catalog import load_dataset

        return apply_bounds(load_dataset(text), bounds).limited(limit, seed=seed)
    if not path.exists():
        raise FileNotFoundError(
            f"--dataset {text!r} does not exist; give a dataset name (advml datasets), an "
            "image folder, a .csv/.parquet table or an .npz file"
        )
    if path.is_dir():
        pair = bounds if _is_pair_of_numbers(bounds) else (0.0, 1.0)
        ds = load_image_folder(
            path,
            input_shape=input_shape,
            classes=classes,
            bounds=pair,
            test_fraction=test_fraction,
            seed=seed,
            limit=limit,
        )
        return apply_bounds(ds, None if pair is bounds else bounds)
    kind = TABLE_SUFFIXES.get(path.suffix.lower())
    if kind == "parquet":
        if label_column is None:
            raise ValueError(
                f"{path.name} is a Parquet table: name its label column with --label-column"
            )
        if not isinstance(label_column, str):
            raise ValueError(
                f"label_column must be a column name for a Parquet table, got {label_column!r}"
            )
        return load_parquet(
            path,
            label_column=label_column,
            bounds=bounds,
            test_fraction=test_fraction,
            seed=seed,
            limit=limit,
        )
    if kind == "csv":
        ds = load_csv(
            path,
            label_column=-1 if label_column is None else label_column,
            test_fraction=test_fraction,
            seed=seed,
            delimiter="\t" if path.suffix.lower() == ".tsv" else ",",
        )
        return apply_bounds(ds, "data" if bounds is None else bounds).limited(limit, seed=seed)
    if path.suffix.lower() == ".npz":
        ds = load_npz(path, test_fraction=test_fraction, seed=seed)
        return apply_bounds(ds, bounds).limited(limit, seed=seed)
    raise ValueError(
        f"--dataset {text!r}: unknown file type {path.suffix!r}; give an image folder, a "
        ".csv/.tsv or .parquet table, or an .npz archive"
    )


def apply_bounds(ds: Dataset, bounds: Any) -> Dataset:
    """``ds`` with other bounds: ``None`` keeps its own, ``"data"`` takes each feature's
    min/max (with a warning), a pair, per-feature arrays or a bounds file sets them.

    The data must lie within the new bounds (checked by :class:`Dataset`).
    """
    if bounds is None:
        return ds
    if isinstance(bounds, str) and bounds == "data":
        x = np.concatenate([ds.x_train, ds.x_test])
        low, high = data_feature_bounds(x, name=ds.name)
        return _rebound(ds, (low, high), "per-feature bounds from the data's min/max")
    if isinstance(bounds, str | os.PathLike):
        bounds = read_bounds(bounds, ds.input_shape)
    envelope, per_feature = check_feature_bounds("bounds", bounds, ds.input_shape)
    if per_feature is None:
        return dataclasses.replace(
            ds,
            bounds=envelope,
            feature_bounds=None,
            description=f"{ds.description}; bounds {envelope}",
        )
    return _rebound(ds, per_feature, "per-feature bounds given")


def _rebound(ds: Dataset, per_feature: tuple[np.ndarray, np.ndarray], how: str) -> Dataset:
    envelope, arrays = check_feature_bounds("bounds", per_feature, ds.input_shape)
    return dataclasses.replace(
        ds,
        bounds=envelope,
        feature_bounds=arrays,
        description=f"{ds.description}; {how}",
    )


def _is_pair_of_numbers(bounds: Any) -> bool:
    if isinstance(bounds, str | os.PathLike) or bounds is None:
        return False
    try:
        low, high = bounds
    except (TypeError, ValueError):
        return False
    return bool(np.ndim(low) == 0 and np.ndim(high) == 0)
