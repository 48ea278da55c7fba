"""Parquet tables, read in batches, and per-feature bounds from the data or from a file."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from advml.data._prepare import encode_labels, split_train_test
from advml.data.dataset import Dataset
from advml.validation import check_feature_bounds, check_number

__all__ = ["data_feature_bounds", "load_parquet", "read_bounds"]

MAX_TABLE_BYTES = 4 * 2**30
"""Largest float32 feature array :func:`load_parquet` allocates unless told more."""


def load_parquet(
    path: str | os.PathLike[str],
    *,
    label_column: str,
    bounds: Any = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    limit: int | None = None,
    name: str | None = None,
    batch_rows: int = 65_536,
    max_bytes: int = MAX_TABLE_BYTES,
) -> Dataset:
    """Load a tabular dataset from a Parquet file: numeric features and a label column.

    The schema is checked first (every column but the label must be numeric: integer,
    float or boolean), the array's size is checked against ``max_bytes`` before it is
    allocated, and rows are then read ``batch_rows`` at a time into it.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.parquet`` file.
    label_column : str
        The label column's name; labels may be integers or strings (mapped to classes
        in sorted order, kept as ``class_names``).
    bounds : None, "data", (low, high) or (array, array), default None
        ``None`` or ``"data"``: each feature's own min and max over the file, with a
        warning (the true valid range is usually wider; give it when known).
        A pair of numbers, or per-feature arrays (one value per feature).
    test_fraction, seed : float, int
        The stratified, seeded split.
    limit : int or None, default None
        At most this many rows per split (stratified, seeded).
    name : str or None
        The dataset's name; the file's stem when ``None``.
    batch_rows : int, default 65536
        Rows read per batch.
    max_bytes : int, default 4 GiB
        Largest feature array allocated; above it the load is refused with the size.

    Raises
    ------
    ValueError
        When ``label_column`` is missing (the message lists the columns), a feature
        column is not numeric (the message names every such column), a value is NaN or
        infinite, or the table is too large for ``max_bytes``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"path {str(file)!r} does not exist or is not a file")
    check_number("batch_rows", batch_rows, low=1, integer=True)
    try:
        reader = pq.ParquetFile(file)
    except (pa.ArrowException, OSError) as err:
        raise ValueError(f"{file} is not a readable Parquet file ({err})") from None
    schema = reader.schema_arrow
    columns = list(schema.names)
    if not isinstance(label_column, str) or label_column not in columns:
        raise ValueError(
            f"label_column={label_column!r} is not a column of {file}; its columns are "
            f"{columns} (give --label-column NAME)"
        )
    features = [c for c in columns if c != label_column]
    if not features:
        raise ValueError(f"{file} has only the label column; it needs feature columns")
    numeric = (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean)
    bad = [
        f"{c!r} ({schema.field(c).type})"
        for c in features
        if not any(t(schema.field(c).type) for t in numeric)
    ]
    if bad:
        raise ValueError(
            f"{file}: feature column(s) {', '.join(bad)} are not numeric; features must be "
            "numbers: encode categories (e.g. one-hot) or drop those columns, or choose the "
            "label column with --label-column"
        )
    n = int(reader.metadata.num_rows)
    if n == 0:
        raise ValueError(f"{file} has no rows; add at least two labelled samples")
    need = n * len(features) * 4
    if need > max_bytes:
        raise ValueError(
            f"{file}: {n} rows x {len(features)} features need {need / 2**30:.1f} GiB as "
            f"float32, more than max_bytes={max_bytes / 2**30:.1f} GiB; raise max_bytes or "
            "read a subset of the rows"
        )
    x = np.empty((n, len(features)), dtype=np.float32)
    labels: list[Any] = []
    row = 0
    for batch in reader.iter_batches(batch_size=batch_rows, columns=[*features, label_column]):
        k = batch.num_rows
        for j, c in enumerate(features):
            col = batch.column(c)
            if col.null_count:
                raise ValueError(
                    f"{file}: feature column {c!r} has missing values (rows {row}..{row + k}); "
                    "fill in or drop them"
                )
            x[row : row + k, j] = col.to_numpy(zero_copy_only=False)
        label = batch.column(label_column)
        if label.null_count:
            raise ValueError(f"{file}: the label column {label_column!r} has missing values")
        labels.extend(label.to_pylist())
        row += k
    if not np.isfinite(x).all():
        j = int(np.flatnonzero(~np.isfinite(x).all(0))[0])
        raise ValueError(
            f"{file}: feature column {features[j]!r} holds NaN or infinite values; clean or "
            "drop those rows"
        )
    y, class_names = encode_labels(
        np.asarray(labels), name=f"label_column {label_column!r} in {file.name}"
    )
    low, high, how = _bounds_for(bounds, x, (len(features),), file.name)
    x_train, x_test, y_train, y_test = split_train_test(
        x, y, test_fraction=test_fraction, seed=seed
    )
    ds = Dataset(
        name=name or file.stem,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        input_shape=(len(features),),
        n_classes=len(class_names),
        bounds=(float(np.min(low)), float(np.max(high))),
        class_names=class_names,
        description=(
            f"{file.name} (parquet, {n} rows, {len(features)} features, label column "
            f"{label_column!r}); stratified split, test_fraction {test_fraction:g}, seed "
            f"{seed}: {len(y_train)} train / {len(y_test)} test; {how}"
        ),
        feature_bounds=(low, high),
    )
    return ds.limited(limit, seed=seed)


def data_feature_bounds(x: np.ndarray, *, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Each feature's min and max over ``x`` (rows are samples), with a warning.

    A feature that is constant in the data gets a range of 1 around its value (a zero
    range has no relative eps), and the warning says so.
    """
    flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    low, high = flat.min(0), flat.max(0)
    constant = high <= low
    high = np.where(constant, low + 1.0, high)
    extra = (
        f"; {int(constant.sum())} constant feature(s) get the range [value, value + 1]"
        if constant.any()
        else ""
    )
    warnings.warn(
        f"{name}: bounds taken from the data's min and max per feature (the attacks stay "
        f"inside them and eps is relative to them){extra}; pass the true valid ranges with "
        "--bounds FILE (.npy/.json/.csv) or bounds= when they are known",
        UserWarning,
        stacklevel=3,
    )
    shape = np.shape(x)[1:]
    return low.reshape(shape).astype(np.float32), high.reshape(shape).astype(np.float32)


def _bounds_for(
    bounds: Any, x: np.ndarray, shape: tuple[int, ...], where: str
) -> tuple[np.ndarray, np.ndarray, str]:
    if bounds is None or (isinstance(bounds, str) and bounds == "data"):
        low, high = data_feature_bounds(x, name=where)
        return low, high, "per-feature bounds from the data's min/max"
    if isinstance(bounds, str | os.PathLike):
        bounds = read_bounds(bounds, shape)
    envelope, per_feature = check_feature_bounds("bounds", bounds, shape)
    if per_feature is None:
        lo = np.full(shape, envelope[0], dtype=np.float32)
        hi = np.full(shape, envelope[1], dtype=np.float32)
        return lo, hi, f"bounds {envelope}"
    return per_feature[0], per_feature[1], "per-feature bounds given"


def read_bounds(path: str | os.PathLike[str], input_shape: tuple[int, ...]) -> Any:
    """Per-feature (or per-channel) bounds from a file, checked against ``input_shape``.

    - ``.npy``: an array of shape ``(2, *input_shape)`` or ``(2, C)``: row 0 low, row 1
      high (read with ``allow_pickle=False``);
    - ``.json``: ``{"low": [...], "high": [...]}`` (numbers or nested lists) or
      ``[low, high]``;
    - ``.csv``: two rows (low, then high) or two columns named ``low`` and ``high`` (one
      row per feature), optionally with a header.

    Returns the ``(low, high)`` pair, validated by
    :func:`~advml.validation.check_feature_bounds`.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(
            f"bounds file {str(file)!r} does not exist; give --bounds LOW,HIGH or a .npy, "
            ".json or .csv file"
        )
    suffix = file.suffix.lower()
    try:
        if suffix == ".npy":
            a = np.load(file, allow_pickle=False)
            if a.shape[0] != 2:
                raise ValueError(f"its first axis must be 2 (low, high), got shape {a.shape}")
            low, high = a[0], a[1]
        elif suffix == ".json":
            data = json.loads(file.read_text(encoding="utf-8"))
            low, high = (data["low"], data["high"]) if isinstance(data, dict) else data
        elif suffix == ".csv":
            low, high = _csv_bounds(file)
        else:
            raise ValueError("the file must end in .npy, .json or .csv")
    except (ValueError, KeyError, TypeError, OSError) as err:
        raise ValueError(f"bounds file {file} cannot be read: {err}") from None
    check_feature_bounds(f"bounds file {file.name}", (low, high), input_shape)
    return np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)


def _csv_bounds(file: Path) -> tuple[list[float], list[float]]:
    import csv

    with file.open(newline="", encoding="utf-8-sig") as stream:
        rows = [[c.strip() for c in r] for r in csv.reader(stream) if any(c.strip() for c in r)]
    if rows and rows[0] and not _is_float(rows[0][0]):
        header, rows = [h.lower() for h in rows[0]], rows[1:]
        if "low" in header and "high" in header:
            i, j = header.index("low"), header.index("high")
            return [float(r[i]) for r in rows], [float(r[j]) for r in rows]
        rows = [r[1:] for r in rows]  # first column names the rows
    if len(rows) == 2:
        return [float(v) for v in rows[0]], [float(v) for v in rows[1]]
    if rows and all(len(r) == 2 for r in rows):
        return [float(r[0]) for r in rows], [float(r[1]) for r in rows]
    raise ValueError("expected two rows (low, high) or two columns low, high")


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
