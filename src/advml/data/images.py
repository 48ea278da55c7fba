"""The user's own images: a folder with one sub-folder of PNG/JPEG files per class.

::

    photos/                    photos/
      cat/  a.png b.jpg ...      train/ cat/ ... dog/ ...
      dog/  c.png ...            test/  cat/ ... dog/ ...

Each image is decoded one at a time, converted to grayscale or RGB (the channels of
``input_shape``), resized to its height and width and scaled to ``bounds``, straight
into one preallocated ``float32`` array: memory holds the dataset at its final size plus
one decoded image, never every image at full size. JPEG files are decoded at a reduced
scale when that still covers the target size (Pillow's ``draft``). The declared size of
every image is checked before it is decoded, and the dataset's size before the array is
allocated.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from advml.data._prepare import split_train_test
from advml.data.dataset import Dataset
from advml.validation import check_bounds, check_number

__all__ = ["IMAGE_SUFFIXES", "load_image_folder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
"""File endings read as images; other files in a class folder (notes, .DS_Store) are
skipped."""

MAX_IMAGE_PIXELS = 50_000_000
"""Largest declared width x height accepted (a 7000 x 7000 photo): above it a file is
refused before decoding, as a likely decompression bomb or a mistake."""

MAX_DATASET_BYTES = 4 * 2**30
"""Largest float32 array the loader allocates (4 GiB) unless ``max_bytes`` says more."""


def load_image_folder(
    path: str | os.PathLike[str],
    *,
    input_shape: Sequence[int] | None = None,
    classes: Sequence[str] | None = None,
    bounds: tuple[float, float] = (0.0, 1.0),
    test_fraction: float = 0.2,
    seed: int = 0,
    limit: int | None = None,
    name: str | None = None,
    max_bytes: int = MAX_DATASET_BYTES,
) -> Dataset:
    """Load an image-classification dataset from a folder of class folders.

    Parameters
    ----------
    path : str or os.PathLike
        The folder: one sub-folder per class holding the images, or ``train/`` and
        ``test/`` sub-folders that each hold the class folders (the split is then the
        folder's).
    input_shape : (C, H, W) or None, default None
        Shape every image is converted to: ``C`` is 1 (grayscale) or 3 (RGB). ``None``
        takes the first image's size and mode (grayscale stays 1 channel, anything else
        becomes RGB).
    classes : sequence of str or None, default None
        The class folders in label order; ``None`` sorts the folder names. Every name
        must be a folder, and every folder must be named.
    bounds : (float, float), default (0.0, 1.0)
        Pixel value 0 maps to ``low`` and 255 to ``high``.
    test_fraction : float, default 0.2
        Share of each class held out for testing (stratified, seeded) when the folder
        has no ``train/``/``test/`` split.
    seed : int, default 0
        Seed of the split and of ``limit``'s sample.
    limit : int or None, default None
        Read at most this many images per split, a stratified, seeded sample of the
        files (only those are decoded).
    name : str or None, default None
        The dataset's name; the folder's name when ``None``.
    max_bytes : int, default 4 GiB
        Largest array the images may fill; above it the load is refused before
        allocating, with the size it needs (use ``limit`` or a smaller ``input_shape``).

    Returns
    -------
    Dataset
        Channels-first ``float32`` images in ``bounds``; ``class_names`` are the folder
        names.

    Raises
    ------
    FileNotFoundError
        When ``path`` is not a folder.
    ValueError
        When there are fewer than two class folders, a class folder has no image, a
        ``classes`` name is not a folder (or a folder is not named), a file cannot be
        decoded (the message names the file), an image declares more than
        ``MAX_IMAGE_PIXELS`` pixels, or the images would need more than ``max_bytes``.

    Examples
    --------
    >>> import os, tempfile
    >>> from PIL import Image
    >>> root = tempfile.mkdtemp()
    >>> for k, c in enumerate(["cat", "dog"]):
    ...     os.makedirs(os.path.join(root, c))
    ...     for i in range(5):
    ...         Image.new("L", (12, 10), 40 * k + i).save(os.path.join(root, c, f"{i}.png"))
    >>> ds = load_image_folder(root, input_shape=(1, 8, 8))
    >>> ds.class_names, ds.input_shape, ds.n_train + ds.n_test
    (('cat', 'dog'), (1, 8, 8), 10)
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist or is not a folder")
    bounds = check_bounds("bounds", bounds)
    check_number(
        "test_fraction", test_fraction, low=0, high=1, low_inclusive=False, high_inclusive=False
    )
    check_number("seed", seed, low=0, integer=True)
    if limit is not None:
        check_number("limit", limit, low=1, integer=True)
    check_number("max_bytes", max_bytes, low=1, integer=True)
    split_folders = (root / "train").is_dir() and (root / "test").is_dir()
    parts = [root / "train", root / "test"] if split_folders else [root]
    names = _class_names(parts[0], classes)
    listed = [_list_files(part, names) for part in parts]
    rng = np.random.default_rng(seed)
    if limit is not None:
        listed = [_stratified_files(files, labels, limit, rng) for files, labels in listed]
    first = listed[0][0][0]
    shape = _target_shape(input_shape, first)
    n_total = sum(len(files) for files, _ in listed)
    need = n_total * math.prod(shape) * 4
    if need > max_bytes:
        raise ValueError(
            f"{root}: {n_total} images of shape {shape} need {need / 2**30:.1f} GiB as "
            f"float32, more than max_bytes={max_bytes / 2**30:.1f} GiB; read a sample with "
            f"limit= (--limit N), a smaller input_shape, or raise max_bytes"
        )
    arrays = [(_decode_all(files, shape, bounds), labels) for files, labels in listed]
    if split_folders:
        (x_train, y_train), (x_test, y_test) = arrays
        split = f"the folder's train/ and test/ split, {len(y_train)} / {len(y_test)} images"
    else:
        x, y = arrays[0]
        x_train, x_test, y_train, y_test = split_train_test(
            x, y, test_fraction=test_fraction, seed=seed
        )
        split = (
            f"stratified split, test_fraction {test_fraction:g}, seed {seed}: "
            f"{len(y_train)} train / {len(y_test)} test"
        )
    sample = f"; a stratified sample of at most {limit} files per split" if limit else ""
    return Dataset(
        name=name or root.name,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        input_shape=shape,
        n_classes=len(names),
        bounds=bounds,
        class_names=tuple(names),
        description=(
            f"{root.name}/ (image folder, {len(names)} classes, resized to {shape}, pixels "
            f"scaled to {bounds}); {split}{sample}"
        ),
    )


def _class_names(folder: Path, classes: Sequence[str] | None) -> list[str]:
    found = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if classes is None:
        if len(found) < 2:
            raise ValueError(
                f"{folder} holds {len(found)} class folder(s) ({found}); an image dataset "
                "needs one sub-folder per class, at least two"
            )
        return found
    names = [str(c) for c in classes]
    if len(set(names)) != len(names) or len(names) < 2:
        raise ValueError(f"classes must name at least two different folders, got {names}")
    missing = [c for c in names if c not in found]
    extra = [c for c in found if c not in names]
    if missing or extra:
        raise ValueError(
            f"classes {names} do not match the class folders of {folder} ({found}): "
            + (f"no folder for {missing}" if missing else "")
            + ("; " if missing and extra else "")
            + (f"folders {extra} are not listed" if extra else "")
        )
    return names


def _list_files(folder: Path, names: list[str]) -> tuple[list[Path], np.ndarray]:
    files: list[Path] = []
    labels: list[int] = []
    for k, cls in enumerate(names):
        sub = folder / cls
        if not sub.is_dir():
            raise ValueError(f"{folder} has no class folder {cls!r}; every split needs it")
        images = sorted(
            p
            for p in sub.iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        )
        if not images:
            raise ValueError(
                f"class folder {str(sub)!r} holds no image ({', '.join(IMAGE_SUFFIXES)}); "
                "add images or remove the folder"
            )
        files += images
        labels += [k] * len(images)
    return files, np.asarray(labels, dtype=np.int64)


def _stratified_files(
    files: list[Path], labels: np.ndarray, limit: int, rng: np.random.Generator
) -> tuple[list[Path], np.ndarray]:
    if len(files) <= limit:
        return files, labels
    from advml.data.dataset import _stratified_sample

    keep = _stratified_sample(labels, limit, rng)
    return [files[i] for i in keep], labels[keep]


def _open(path: Path):  # type: ignore[no-untyped-def]
    """The image at ``path``, opened lazily (only the header read) and size-checked."""
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(path)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"image {str(path)!r} cannot be read ({err}); fix or remove it") from None
    width, height = img.size
    if width * height > MAX_IMAGE_PIXELS:
        img.close()
        raise ValueError(
            f"image {str(path)!r} declares {width} x {height} pixels, more than "
            f"{MAX_IMAGE_PIXELS:,}; refused before decoding (resize it first)"
        )
    return img


def _target_shape(input_shape: Sequence[int] | None, first: Path) -> tuple[int, int, int]:
    if input_shape is None:
        with _open(first) as img:
            channels = 1 if img.mode in ("1", "L", "I", "I;16", "F") else 3
            return channels, img.size[1], img.size[0]
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise ValueError(f"input_shape must be (C, H, W), got {input_shape!r}") from None
    if len(shape) != 3 or shape[0] not in (1, 3) or min(shape) < 1:
        raise ValueError(
            f"input_shape must be (C, H, W) with C 1 (grayscale) or 3 (RGB) for an image "
            f"folder, got {input_shape!r}"
        )
    return shape[0], shape[1], shape[2]


def _decode_all(
    files: list[Path], shape: tuple[int, int, int], bounds: tuple[float, float]
) -> np.ndarray:
    from PIL import Image

    channels, height, width = shape
    mode = "L" if channels == 1 else "RGB"
    low, high = bounds
    out = np.empty((len(files), channels, height, width), dtype=np.float32)
    for i, path in enumerate(files):
        with _open(path) as img:
            try:
                img.draft(mode, (width, height))  # JPEG: decode at a reduced scale
                pixels = img.convert(mode)
                if pixels.size != (width, height):
                    pixels = pixels.resize((width, height), Image.Resampling.BILINEAR)
                a = np.asarray(pixels, dtype=np.float32)
            except (OSError, SyntaxError, ValueError) as err:
                raise ValueError(
                    f"image {str(path)!r} cannot be decoded ({err}); fix or remove it"
                ) from None
        a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
        out[i] = low + (a / 255.0) * (high - low)
    return out
