"""The owner's watermark key: what the owner keeps secret, and its safe file format.

A :class:`WatermarkKey` holds everything verification needs: the scheme's name and
settings, the owner's secret, the material derived from it (a projection matrix and a
signature, or trigger inputs and their assigned labels) and, once calibrated, the
empirical null from independently trained reference models.

Keys are saved as one ``.npz`` file: the arrays as arrays and everything else as a JSON
document stored as bytes. :func:`load_key` reads it with ``allow_pickle=False``, so a key
file can never run code.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import secrets
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from advml.runtime.files import atomic_write, check_file_version
from advml.runtime.plain import plain

__all__ = ["WatermarkKey", "derive_rng", "derive_seed", "load_key", "new_secret", "save_key"]

KEY_FORMAT = "advml-watermark-key"
KEY_VERSION = 1
_META = "__meta__"


def new_secret() -> str:
    """A fresh 128-bit secret in hex, for an owner who gives none."""
    return secrets.token_hex(16)


def normalise_secret(key: int | str | None) -> str:
    """The owner's key as a non-empty string (a fresh random one for ``None``)."""
    if key is None:
        return new_secret()
    if isinstance(key, bool) or not isinstance(key, int | str | np.integer):
        raise TypeError(f"key must be an int, a string or None, got {type(key).__name__}")
    text = str(int(key)) if isinstance(key, int | np.integer) else key
    if not text:
        raise ValueError("key must not be empty; give a secret string or an int, or None")
    return text


def derive_seed(secret: str, purpose: str) -> int:
    """A 63-bit seed from the secret and what it is for (SHA-256; keys never collide)."""
    digest = hashlib.sha256(f"{purpose}\x00{secret}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def derive_rng(secret: str, purpose: str) -> np.random.Generator:
    """A numpy generator seeded from the secret and ``purpose``."""
    return np.random.default_rng(derive_seed(secret, purpose))


@dataclass(frozen=True)
class WatermarkKey:
    """Everything the owner keeps to prove ownership later.

    Attributes
    ----------
    scheme : str
        Registered name of the scheme that made it (``"uchida"``, ``"adi"``, ...).
    secret : str
        The owner's secret; the same secret and settings give the same key material.
    settings : dict
        The scheme's settings (plain JSON data).
    arrays : dict of str to numpy.ndarray
        The derived material: ``"projection"`` and ``"bits"`` (white-box), or
        ``"x"`` and ``"labels"`` (trigger sets), and optionally ``"null_agreement"``.
    meta : dict
        Plain data: the layer, the number of classes, the null's chance rate, ...
    """

    scheme: str
    secret: str
    settings: Mapping[str, Any]
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """Number of items verified: bits of the signature or inputs of the trigger set."""
        if "bits" in self.arrays:
            return int(self.arrays["bits"].shape[0])
        return int(self.arrays["labels"].shape[0])

    @property
    def calibrated(self) -> bool:
        """Whether an empirical null from reference models is stored."""
        return "null_agreement" in self.arrays

    def with_updates(
        self,
        *,
        arrays: Mapping[str, np.ndarray] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> WatermarkKey:
        """A new key with some arrays and meta entries added or replaced."""
        return replace(
            self,
            arrays={**self.arrays, **(arrays or {})},
            meta={**self.meta, **(meta or {})},
        )

    def same_material(self, other: WatermarkKey) -> bool:
        """Whether two keys hold the same scheme, settings, secret and arrays."""
        if (self.scheme, self.secret, dict(self.settings)) != (
            other.scheme,
            other.secret,
            dict(other.settings),
        ):
            return False
        if set(self.arrays) != set(other.arrays):
            return False
        return all(np.array_equal(self.arrays[k], other.arrays[k]) for k in self.arrays)


def save_key(key: WatermarkKey, path: str | os.PathLike[str]) -> pathlib.Path:
    """Write ``key`` to ``path`` (an ``.npz`` file; no pickle) atomically and return the path.

    The file holds the owner's secret: keep it private.
    """
    path = pathlib.Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"cannot save the key to {str(path)!r}: folder {str(path.parent)!r} does not exist"
        )
    meta = {
        "format": KEY_FORMAT,
        "version": KEY_VERSION,
        "scheme": key.scheme,
        "secret": key.secret,
        "settings": plain(dict(key.settings), where="settings"),
        "meta": plain(dict(key.meta), where="meta"),
    }
    arrays: dict[str, np.ndarray] = {}
    for name, value in key.arrays.items():
        arr = np.asarray(value)
        if arr.dtype == object:
            raise ValueError(f"key array {name!r} has dtype object; only numeric arrays are saved")
        arrays[name] = arr
    arrays[_META] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)

    def write(f: Any) -> None:
        np.savez_compressed(f, **arrays)  # type: ignore[arg-type]

    return atomic_write(path, write)


def load_key(path: str | os.PathLike[str]) -> WatermarkKey:
    """Read a key written by :func:`save_key` (never unpickles anything).

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a file.
    ValueError
        If the file is not an advml watermark key, is damaged, or was written by a
        newer advml.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"key file {str(path)!r} does not exist or is not a file")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: np.array(data[name]) for name in data.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise ValueError(
            f"{str(path)!r} is not a readable watermark key (.npz without pickled objects): {e}"
        ) from None
    raw = arrays.pop(_META, None)
    try:
        meta = json.loads(bytes(raw).decode("utf-8")) if raw is not None else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != KEY_FORMAT:
        raise ValueError(f"{str(path)!r} is an .npz file but not an advml watermark key")
    check_file_version(path, meta.get("version"), KEY_VERSION, "watermark key")
    for name, kind in (("scheme", str), ("secret", str), ("settings", dict), ("meta", dict)):
        if not isinstance(meta.get(name), kind):
            raise ValueError(f"{str(path)!r} is a damaged watermark key: field {name!r} is invalid")
    return WatermarkKey(
        scheme=meta["scheme"],
        secret=meta["secret"],
        settings=meta["settings"],
        arrays=arrays,
        meta=meta["meta"],
    )
