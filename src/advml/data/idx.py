"""MNIST and Fashion-MNIST from their IDX files, read with nothing but gzip and numpy.

The IDX format (LeCun et al., "The MNIST database of handwritten digits") is a 4-byte
magic number, one big-endian uint32 per dimension, then the values in row-major order.
The magic number is two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16,
0x0C int32, 0x0D float32, 0x0E float64, all big-endian) and the number of dimensions.

Both datasets use their official split: the 60,000 ``train-*`` images for training and
the 10,000 ``t10k-*`` images for testing. Pixels 0..255 are divided by 255, giving
``float32`` images of shape ``(1, 28, 28)`` in [0, 1].
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from advml.data._prepare import official_pixels_dataset
from advml.data.dataset import Dataset

__all__ = ["FASHION_MNIST_CLASSES", "load_idx_dataset", "read_idx"]

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

_IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file, gzip-compressed or not, into an array of its shape and type.

    Parameters
    ----------
    path : str or Path
        The file. Compression is recognised from its first bytes, not its name.

    Returns
    -------
    numpy.ndarray
        Shape as stored in the header; dtype as the header's type code, converted to the
        machine's byte order.

    Raises
    ------
    ValueError
        When the file is not valid IDX: bad magic number, unknown type code, or a size
        that does not match the header (truncated or padded).
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise ValueError(f"{path} is a damaged gzip file ({err}); download it again") from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00":
        raise ValueError(
            f"{path} is not an IDX file: it starts with {raw[:4].hex() or 'nothing'}, "
            "expected 0000 then a type code and the number of dimensions"
        )
    code, ndim = raw[2], raw[3]
    if code not in _IDX_TYPES:
        raise ValueError(f"{path} has unknown IDX type code 0x{code:02x}")
    if ndim == 0:
        raise ValueError(f"{path} declares 0 dimensions; an IDX array needs at least one")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path} is truncated inside its header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_TYPES[code]
    count = int(np.prod(dims, dtype=np.int64))
    if len(raw) - header != count * dtype.itemsize:
        raise ValueError(
            f"{path} holds {len(raw) - header} bytes of data, but its header {dims} of "
            f"{dtype.name} needs {count * dtype.itemsize}; the file is truncated or damaged"
        )
    array = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=True)


def _images_and_labels(images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    x = read_idx(images)
    y = read_idx(labels)
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise ValueError(f"{images} holds an array of shape {x.shape}, expected (n, 28, 28)")
    if y.ndim != 1:
        raise ValueError(f"{labels} holds an array of shape {y.shape}, expected (n,)")
    if len(x) != len(y):
        raise ValueError(f"{images} has {len(x)} images but {labels} has {len(y)} labels")
    pixels = (x.astype(np.float32) / np.float32(255.0)).reshape(-1, 1, 28, 28)
    return pixels, y.astype(np.int64)


def load_idx_dataset(name: str, paths: Sequence[Path], class_names: tuple[str, ...]) -> Dataset:
    """A :class:`Dataset` from the four IDX files, in the order train images, train
    labels, test images, test labels."""
    train_images, train_labels, test_images, test_labels = paths
    x_train, y_train = _images_and_labels(train_images, train_labels)
    x_test, y_test = _images_and_labels(test_images, test_labels)
    source = "Fashion-MNIST (Zalando)" if name == "fashion-mnist" else "MNIST (LeCun et al.)"
    return official_pixels_dataset(
        name, f"{source} IDX files", (x_train, y_train), (x_test, y_test), class_names
    )
