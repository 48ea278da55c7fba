"""The user's own data: ``.npz`` archives and CSV tables, turned into a :class:`Dataset`.

Both loaders keep a test split the file provides, or else make one: stratified by class,
``test_fraction`` of the samples, seeded by ``seed`` (the same seed gives the same split).
Labels that are non-negative integers are used as class indices; any other labels
(strings, negative integers) are mapped to ``0 .. k-1`` in sorted order, and the original
values become ``class_names``.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import math
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from advml.data._prepare import encode_labels, infer_bounds, minmax_scale, split_train_test
from advml.data.dataset import Dataset, check_data
from advml.errors import UntrustedFileError
from advml.validation import check_bounds, check_in_bounds, check_not_empty, check_number

__all__ = ["load_csv", "load_npz"]

PathLike = str | os.PathLike[str]


def load_npz(
    path: PathLike,
    *,
    bounds: tuple[float, float] | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    name: str | None = None,
) -> Dataset:
    """Load a dataset saved with :func:`numpy.savez`.

    The archive holds ``x`` and ``y`` (or ``x_train`` and ``y_train``) and, optionally,
    ``x_test`` and ``y_test``. Without a test split one is made (see the module notes).
    It is read with ``allow_pickle=False``: arrays of Python objects are refused.

    ``x`` has one sample per row: ``(n, d)`` for tabular data, ``(n, C, H, W)`` for
    images. Grayscale images stored as ``(n, H, W)`` get a channel axis, and
    channels-last images ``(n, H, W, C)`` with ``C`` in 1, 3 or 4 are transposed to
    channels-first, as the rest of advml expects.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.npz`` file.
    bounds : (float, float) or None, default None
        The valid input range. ``None`` infers it as the data's (min, max); give it
        when known (e.g. ``(0, 255)`` for raw pixels) so attacks respect the true range.
    test_fraction : float, default 0.2
        Share of the samples held out for testing, in (0, 1); ignored when the file has
        a test split.
    seed : int, default 0
        Seed of the split.
    name : str or None, default None
        The dataset's name; the file's stem when ``None``.

    Returns
    -------
    Dataset

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    UntrustedFileError
        When the archive holds object arrays (loading them would unpickle).
    ValueError
        When arrays are missing, empty, of mismatched lengths or wrong shapes, hold NaN or
        infinite values or values outside ``bounds``; the message names the array.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "toy.npz")
    >>> rng = np.random.default_rng(0)
    >>> np.savez(f, x=rng.random((50, 4)), y=np.arange(50) % 2)
    >>> ds = load_npz(f, bounds=(0, 1))
    >>> ds.n_train, ds.n_test, ds.input_shape
    (40, 10, (4,))
    """
    path = _existing_file(path)
    _check_split_settings(test_fraction, seed)
    arrays = _read_npz(path)
    where = f"in {path.name}"
    x_key = "x" if "x" in arrays else "x_train"
    y_key = "y" if "y" in arrays else "y_train"
    if x_key not in arrays or y_key not in arrays:
        raise ValueError(
            f"{path} must hold arrays 'x' and 'y' (or 'x_train' and 'y_train'), optionally "
            f"'x_test' and 'y_test'; it holds {sorted(arrays)}"
        )
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise ValueError(f"{path} holds only one of 'x_test' and 'y_test'; give both or neither")
    parts = [(x_key, y_key)] + ([("x_test", "y_test")] if "x_test" in arrays else [])
    xs, ys = [], []
    for xk, yk in parts:
        x = _features(arrays[xk], f"{xk} {where}")
        y = np.asarray(arrays[yk])
        check_not_empty(f"{yk} {where}", y)
        if y.ndim != 1:
            raise ValueError(f"{yk} {where} must be 1-d (one label per sample), got {y.shape}")
        if len(y) != len(x):
            raise ValueError(f"{yk} {where} has {len(y)} labels for {len(x)} samples in {xk}")
        xs.append(_channels_first(x, f"{xk} {where}"))
        ys.append(y)
    if len(xs) == 2 and xs[0].shape[1:] != xs[1].shape[1:]:
        raise ValueError(
            f"x_test {where} has samples of shape {xs[1].shape[1:]}, but {x_key} has "
            f"{xs[0].shape[1:]}"
        )
    y_all, class_names = encode_labels(np.concatenate(ys), name=f"y {where}")
    ys = [y_all[: len(ys[0])], y_all[len(ys[0]) :]]
    bounds = _resolve_bounds(bounds, xs, f"x {where}")
    for (xk, yk), x, y in zip(parts, xs, ys, strict=False):
        check_data(
            x,
            y,
            input_shape=x.shape[1:],
            n_classes=len(class_names),
            bounds=bounds,
            name_x=f"{xk} {where}",
            name_y=f"{yk} {where}",
        )
    if len(xs) == 2:
        x_train, x_test, y_train, y_test = xs[0], xs[1], ys[0], ys[1]
        split = f"the file's split, {len(y_train)} train / {len(y_test)} test"
    else:
        x_train, x_test, y_train, y_test = split_train_test(
            xs[0], ys[0], test_fraction=test_fraction, seed=seed
        )
        split = _split_text(len(y_train), len(y_test), test_fraction, seed)
    return Dataset(
        name=name or path.stem,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        input_shape=tuple(x_train.shape[1:]),
        n_classes=len(class_names),
        bounds=bounds,
        class_names=class_names,
        description=f"{path.name} (npz); {split}; bounds {bounds}",
    )


def load_csv(
    path: PathLike,
    *,
    label_column: str | int = -1,
    bounds: tuple[float, float] | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    name: str | None = None,
    scale: bool = False,
    header: bool | None = None,
    delimiter: str = ",",
) -> Dataset:
    """Load a tabular dataset from a CSV file: one sample per row, one label column.

    Every column but the label column is a numeric feature. Labels may be anything:
    non-negative integers are class indices, other values (e.g. ``"benign"``) are mapped
    to indices in sorted order and kept as ``class_names``.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file.
    label_column : int or str, default -1
        The label column: an index (negative counts from the end) or, for a file with a
        header, the column's name.
    bounds : (float, float) or None, default None
        The valid feature range; ``None`` infers the data's (min, max). Not allowed with
        ``scale=True``.
    test_fraction : float, default 0.2
        Share of the rows held out for testing, in (0, 1).
    seed : int, default 0
        Seed of the stratified split.
    name : str or None, default None
        The dataset's name; the file's stem when ``None``.
    scale : bool, default False
        Min-max scale every feature to [0, 1] with the training split's min and max
        (test values are clipped to [0, 1]); bounds become ``(0.0, 1.0)``.
    header : bool or None, default None
        Whether the first row names the columns; ``None`` detects it (a first row with a
        non-empty, non-numeric cell where the second row is numeric; an empty cell is a
        missing value, not a column name).
    delimiter : str, default ","
        The field separator.

    Returns
    -------
    Dataset
        With ``input_shape == (n_features,)``.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When the file is empty, rows have different lengths, a feature is missing or not
        a number (the message gives the line and column), ``label_column`` does not exist,
        labels are fractional, or values fall outside ``bounds``.

    Examples
    --------
    >>> import os, tempfile
    >>> f = os.path.join(tempfile.mkdtemp(), "toy.csv")
    >>> rows = [f"{i % 7},{i % 5},{'yes' if i % 2 else 'no'}" for i in range(40)]
    >>> _ = open(f, "w").write("a,b,answer\\n" + "\\n".join(rows))
    >>> ds = load_csv(f, label_column="answer", scale=True)
    >>> ds.class_names, ds.input_shape, ds.bounds
    (('no', 'yes'), (2,), (0.0, 1.0))
    """
    path = _existing_file(path)
    _check_split_settings(test_fraction, seed)
    if not isinstance(scale, bool):
        raise TypeError(f"scale must be True or False, got {scale!r}")
    if scale and bounds is not None:
        raise ValueError(
            "pass either bounds or scale=True, not both: scale=True scales the features "
            "to bounds (0.0, 1.0)"
        )
    if header is not None and not isinstance(header, bool):
        raise TypeError(f"header must be True, False or None, got {header!r}")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise ValueError(f"delimiter must be a single character, got {delimiter!r}")

    with _csv_rows(path, delimiter) as rows:
        first = next(rows, None)
        if first is None:
            raise ValueError(f"{path} is empty; give a header (optional) and labelled rows")
        second = next(rows, None)
        if header is None:
            header = _looks_like_header([first] if second is None else [first, second])
        columns = first if header else [str(i) for i in range(len(first))]
        first_line = 2 if header else 1
        head = ([] if header else [first]) + ([] if second is None else [second])
        if not head:
            raise ValueError(f"{path} has no data rows; add at least two labelled samples")
        if len(columns) < 2:
            raise ValueError(f"{path} has a single column; it needs features and a label column")
        label_index = _label_index(label_column, columns, bool(header), path)
        feature_index = [j for j in range(len(columns)) if j != label_index]
        x, raw_labels = _parse_rows(
            itertools.chain(head, rows), columns, feature_index, label_index, first_line, path
        )
    body_rows = len(raw_labels)
    labels: np.ndarray
    try:
        labels = np.array([float(v) for v in raw_labels])
    except ValueError:
        labels = np.array(raw_labels)
    where = f"in {path.name}"
    y, class_names = encode_labels(labels, name=f"label_column {columns[label_index]!r} {where}")
    if bounds is not None:
        bounds = check_bounds("bounds", bounds)
        check_in_bounds(f"features {where}", x, bounds)

    x_train, x_test, y_train, y_test = split_train_test(
        x, y, test_fraction=test_fraction, seed=seed
    )
    if scale:
        x_train, x_test = minmax_scale(x_train, x_test)
        bounds = (0.0, 1.0)
        scaling = "features min-max scaled to [0, 1] with the train split's min/max"
    else:
        bounds = _resolve_bounds(bounds, [x], f"features {where}")
        scaling = f"unscaled, bounds {bounds}"
    label_name = columns[label_index]
    return Dataset(
        name=name or path.stem,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        input_shape=(len(feature_index),),
        n_classes=len(class_names),
        bounds=bounds,
        class_names=class_names,
        description=(
            f"{path.name} (csv, {body_rows} rows, {len(feature_index)} features, label "
            f"column {label_name!r}); "
            f"{_split_text(len(y_train), len(y_test), test_fraction, seed)}; {scaling}"
        ),
    )


def _existing_file(path: PathLike) -> Path:
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise FileNotFoundError(f"path {str(resolved)!r} does not exist or is not a file")
    return resolved


def _check_split_settings(test_fraction: float, seed: int) -> None:
    check_number(
        "test_fraction", test_fraction, low=0, high=1, low_inclusive=False, high_inclusive=False
    )
    check_number("seed", seed, low=0, integer=True)


def _split_text(n_train: int, n_test: int, test_fraction: float, seed: int) -> str:
    return (
        f"stratified split, test_fraction {test_fraction:g}, seed {seed}: "
        f"{n_train} train / {n_test} test"
    )


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        loaded = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise ValueError(f"{path} is not a readable .npz archive ({err})") from None
    except ValueError as err:
        raise ValueError(f"{path} is not a readable .npz archive ({err})") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError(
            f"{path} holds a single array; save x and y together with np.savez(path, x=x, y=y)"
        )
    with loaded:
        arrays = {}
        for key in loaded.files:
            try:
                arrays[key] = loaded[key]
            except ValueError as err:
                if "allow_pickle" in str(err):
                    raise UntrustedFileError(
                        f"array {key!r} in {path} holds Python objects, which can only be "
                        "loaded by unpickling (that can run code from the file); save it as "
                        "a numeric or string array, e.g. np.asarray(values, dtype=float)"
                    ) from None
                raise ValueError(f"array {key!r} in {path} cannot be read ({err})") from None
    return arrays


def _features(value: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(value)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got dtype {x.dtype}")
    if x.ndim < 2:
        raise ValueError(
            f"{name} must have one row per sample, shape (n, ...), got {x.shape}; "
            f"for a single feature use x[:, None]"
        )
    check_not_empty(name, x)
    return x.astype(np.float32)


def _channels_first(x: np.ndarray, name: str) -> np.ndarray:
    """Images as ``(n, C, H, W)``: add the channel axis or move it to the front."""
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4 and x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return x


def _resolve_bounds(bounds: Any, arrays: list[np.ndarray], name: str) -> tuple[float, float]:
    if bounds is None:
        return infer_bounds(*arrays, name=name)
    return check_bounds("bounds", bounds)


_CHUNK_ROWS = 65_536
"""Rows parsed into one float block at a time: the file is never held as Python strings."""


@contextlib.contextmanager
def _csv_rows(path: Path, delimiter: str) -> Iterator[Iterator[list[str]]]:
    """The file's non-empty rows, stripped, one at a time (the file stays open inside)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as stream:
            yield (
                [cell.strip() for cell in row]
                for row in csv.reader(stream, delimiter=delimiter)
                if any(cell.strip() for cell in row)
            )
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text ({err}); is it really a CSV file?") from None


def _parse_rows(
    rows: Iterator[list[str]],
    columns: list[str],
    feature_index: list[int],
    label_index: int,
    first_line: int,
    path: Path,
) -> tuple[np.ndarray, list[str]]:
    """Features as float64 (parsed in blocks of ``_CHUNK_ROWS``) and the raw labels."""
    blocks: list[np.ndarray] = []
    block = np.empty((_CHUNK_ROWS, len(feature_index)), dtype=np.float64)
    filled = 0
    labels: list[str] = []
    for i, row in enumerate(rows):
        line = first_line + i
        if len(row) != len(columns):
            raise ValueError(f"{path} line {line} has {len(row)} fields, expected {len(columns)}")
        for k, j in enumerate(feature_index):
            value = _number(row[j], path, line, columns[j])
            if not math.isfinite(value):
                raise ValueError(
                    f"{path} line {line}: feature column {columns[j]!r} holds {row[j]!r}; "
                    "clean or drop rows with NaN or infinite values"
                )
            block[filled, k] = value
        if row[label_index] == "":
            raise ValueError(
                f"{path} line {line}: the label (column {columns[label_index]!r}) is empty; "
                "drop unlabelled rows"
            )
        labels.append(row[label_index])
        filled += 1
        if filled == _CHUNK_ROWS:
            blocks.append(block)
            block = np.empty_like(block)
            filled = 0
    blocks.append(block[:filled])
    return np.concatenate(blocks), labels


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _is_name(cell: str) -> bool:
    """A cell that can name a column: text that is not a number. An empty cell cannot
    give a header away: it is a missing value as often as an unnamed column."""
    return cell != "" and not _is_number(cell)


def _looks_like_header(rows: list[list[str]]) -> bool:
    first = rows[0]
    if len(rows) == 1:
        return any(_is_name(c) for c in first) and not any(_is_number(c) for c in first)
    # A header cell is a name above a number: with features numeric, any such column
    # gives the header away (the label column may hold text in every row).
    second = rows[1]
    return any(_is_name(a) and _is_number(b) for a, b in zip(first, second, strict=False))


def _label_index(label_column: str | int, columns: list[str], header: bool, path: Path) -> int:
    if isinstance(label_column, bool) or not isinstance(label_column, int | str):
        raise TypeError(
            f"label_column must be a column index or a column name, got {label_column!r}"
        )
    if isinstance(label_column, str):
        if not header:
            raise ValueError(
                f"label_column={label_column!r} is a name but {path} has no header row; "
                "pass the column's index instead, or header=True"
            )
        if label_column not in columns:
            raise ValueError(
                f"label_column={label_column!r} is not a column of {path}; "
                f"its columns are {columns}"
            )
        return columns.index(label_column)
    n = len(columns)
    if not -n <= label_column < n:
        raise ValueError(
            f"label_column={label_column} is out of range for {path}, which has {n} columns "
            f"(use 0..{n - 1} or -{n}..-1)"
        )
    return label_column % n


def _number(cell: str, path: Path, line: int, column: str) -> float:
    if cell == "":
        raise ValueError(
            f"{path} line {line}: feature column {column!r} is empty; fill in or drop "
            "missing values"
        )
    try:
        return float(cell)
    except ValueError:
        raise ValueError(
            f"{path} line {line}: feature column {column!r} holds {cell!r}, not a number; "
            "features must be numeric (encode categories first, or choose the label column "
            "with label_column=)"
        ) from None
