"""Images in and out of the web demo: uploads decoded and checked, PNG data URLs out.

Uploads are untrusted bytes. Their type is recognised from the content (the file's
first bytes), never from its name or the declared content type; PNG and JPEG are
decoded with Pillow after a check of their pixel count (a small file can declare a
huge image), ``.npz`` archives are read with ``allow_pickle=False`` so nothing in them
is executed. Every failure raises :class:`UploadError` with an HTTP status and a message
that says what was wrong and what is accepted.
"""

from __future__ import annotations

import base64
import io
import zipfile

import numpy as np
import torch
from torch.nn import functional as F

__all__ = [
    "MAX_PIXELS",
    "UploadError",
    "decode_upload",
    "perturbation_png",
    "png_data_url",
    "resize_to",
    "sniff_type",
]

MAX_PIXELS = 4096 * 4096
"""Largest decoded image accepted (width x height); larger ones are refused (413)."""

_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
_ZIP = b"PK\x03\x04"


class UploadError(ValueError):
    """An upload that cannot be used; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, *, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def sniff_type(data: bytes) -> str:
    """``"png"``, ``"jpeg"`` or ``"npz"`` from the first bytes of ``data``.

    Raises
    ------
    UploadError
        (415) for anything else.
    """
    if data.startswith(_PNG):
        return "png"
    if data.startswith(_JPEG):
        return "jpeg"
    if data.startswith(_ZIP):
        return "npz"
    raise UploadError(
        "unsupported file type: upload a PNG or JPEG image, or an .npz archive holding "
        "one array (recognised from the file's content, not its name)",
        status=415,
    )


def resize_to(x: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
    """Images ``(n, c, h, w)`` resized (area/bilinear) and channel-matched to ``input_shape``.

    Colour becomes grey by averaging the channels; grey becomes colour by repeating it.
    """
    c, h, w = input_shape
    t = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))
    if t.shape[1] != c:
        t = t.mean(1, keepdim=True) if c == 1 else t.mean(1, keepdim=True).expand(-1, c, -1, -1)
    if tuple(t.shape[2:]) != (h, w):
        shrink = t.shape[2] >= h and t.shape[3] >= w
        t = (
            F.interpolate(t, size=(h, w), mode="area")
            if shrink
            else F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)
        )
    return t.contiguous().numpy()


def _decode_image(
    data: bytes,
    kind: str,
    input_shape: tuple[int, ...],
    bounds: tuple[float, float],
    invert: bool,
) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    label = kind.upper()
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise UploadError(
                f"the {label} is {width}x{height} pixels; at most {MAX_PIXELS} pixels are "
                f"accepted (it is resized to {input_shape[2]}x{input_shape[1]} anyway)",
                status=413,
            )
        image.load()
        grey = input_shape[0] == 1
        pixels = np.asarray(image.convert("L" if grey else "RGB"), dtype=np.float32) / 255.0
    except UploadError:
        raise
    except UnidentifiedImageError:
        raise UploadError(f"the file starts like a {label} but is not a valid {label}") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise UploadError(f"the {label} could not be decoded: {err}") from None
    except Image.DecompressionBombError as err:
        raise UploadError(f"the {label} is too large to decode: {err}", status=413) from None
    pixels = pixels[None, None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)[None]
    if invert:
        pixels = 1.0 - pixels
    low, high = bounds
    return resize_to(pixels, input_shape) * (high - low) + low


def _decode_npz(
    data: bytes, input_shape: tuple[int, ...], bounds: tuple[float, float]
) -> np.ndarray:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            keys = list(archive.files)
            if not keys:
                raise UploadError("the .npz archive holds no array; put the image under 'x'")
            key = "x" if "x" in keys else keys[0]
            if len(keys) > 1 and key != "x":
                raise UploadError(
                    f"the .npz archive holds several arrays ({', '.join(keys)}); name the image 'x'"
                )
            arr = archive[key]
    except UploadError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        # numpy raises ValueError for object arrays when allow_pickle=False.
        raise UploadError(f"the .npz archive could not be read: {err}") from None
    if arr.dtype.kind not in "fiu":
        raise UploadError(
            f"the .npz array '{key}' has dtype {arr.dtype}; expected numbers (float, or "
            f"uint8 pixels 0-255)"
        )
    shape = tuple(arr.shape)
    accepted = [input_shape, (1, *input_shape)]
    if input_shape[0] == 1 and len(input_shape) == 3:
        accepted.append(input_shape[1:])
    if shape not in accepted:
        raise UploadError(
            f"the .npz array '{key}' has shape {shape}; this model takes one input of shape "
            f"{input_shape} (also accepted: {', '.join(str(s) for s in accepted[1:])})"
        )
    x = arr.astype(np.float32).reshape(1, *input_shape)
    if not np.isfinite(x).all():
        raise UploadError(f"the .npz array '{key}' contains NaN or infinite values")
    low, high = bounds
    if arr.dtype.kind in "iu" and low == 0.0 and high == 1.0:
        if x.min() < 0 or x.max() > 255:
            raise UploadError(f"the .npz array '{key}' holds integers outside 0-255")
        x = x / 255.0
    elif x.min() < low - 1e-6 or x.max() > high + 1e-6:
        raise UploadError(
            f"the .npz array '{key}' has values in [{x.min():g}, {x.max():g}], outside the "
            f"model's input bounds [{low:g}, {high:g}]"
        )
    return x


def decode_upload(
    data: bytes,
    *,
    input_shape: tuple[int, ...],
    bounds: tuple[float, float],
    invert: bool = False,
) -> tuple[np.ndarray, str]:
    """One model input ``(1, *input_shape)`` from uploaded bytes, and the file's kind.

    Parameters
    ----------
    data : bytes
        The uploaded file: PNG, JPEG or ``.npz``.
    input_shape : tuple of int
        The model's input shape. Images are converted to its channels and resized to
        its height and width; an ``.npz`` array must already have it.
    bounds : (float, float)
        The model's input range; image pixels 0-255 are scaled onto it.
    invert : bool
        For images: swap dark and light (MNIST digits are light on dark).

    Raises
    ------
    UploadError
        415 for an unknown type, 413 for an image with too many pixels, 422 for a file
        that cannot be decoded or does not fit the model.
    """
    if not data:
        raise UploadError("the upload is empty; send a PNG, JPEG or .npz file as the body")
    kind = sniff_type(data)
    if kind == "npz":
        return _decode_npz(data, input_shape, bounds), kind
    if len(input_shape) != 3:
        raise UploadError(
            f"this model takes inputs of shape {input_shape}, not images; upload an .npz "
            f"array of that shape",
            status=415,
        )
    return _decode_image(data, kind, input_shape, bounds, invert), kind


def _png_bytes(rgb_or_grey: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb_or_grey).save(buffer, format="PNG")
    return buffer.getvalue()


def png_data_url(x: np.ndarray, bounds: tuple[float, float]) -> str:
    """A ``data:image/png`` URL of one image ``(c, h, w)`` (or a vector) at native size."""
    low, high = bounds
    u = np.clip((np.asarray(x, dtype=np.float32) - low) / (high - low), 0.0, 1.0)
    if u.ndim == 3:
        u = u[0] if u.shape[0] == 1 else u[:3].transpose(1, 2, 0)
    elif u.ndim == 1:
        u = u[None, :]
    pixels = np.round(u * 255).astype(np.uint8)
    return "data:image/png;base64," + base64.b64encode(_png_bytes(pixels)).decode("ascii")


def perturbation_png(delta: np.ndarray) -> tuple[str, float]:
    """The perturbation magnified: red where a pixel went up, blue where it went down.

    The largest change is shown at full colour; the factor returned is that
    magnification (1 / max |delta|, 1 when nothing changed). Channels are summed, so a
    colour perturbation shows as one signed map.
    """
    d = np.asarray(delta, dtype=np.float32)
    if d.ndim == 3:
        d = d.sum(0)
    elif d.ndim == 1:
        d = d[None, :]
    peak = float(np.abs(d).max())
    factor = 1.0 / peak if peak > 0 else 1.0
    s = np.clip(d * factor, -1.0, 1.0)
    rgb = np.ones((*s.shape, 3), dtype=np.float32)
    up, down = np.clip(s, 0, 1), np.clip(-s, 0, 1)
    rgb[..., 1] -= up + down  # white -> red (up) or blue (down)
    rgb[..., 2] -= up
    rgb[..., 0] -= down
    pixels = np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    url = "data:image/png;base64," + base64.b64encode(_png_bytes(pixels)).decode("ascii")
    return url, factor
