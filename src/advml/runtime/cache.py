"""An on-disk store of finished steps, so long jobs resume where they stopped.

Each entry is a JSON file of plain numbers and an optional ``.npz`` of arrays, written
atomically (a temporary file, then a rename), so an interrupted job never leaves a
half-written entry that would be mistaken for a finished one. The JSON file, written
last, records a checksum of both; an entry damaged afterwards (a disk error, a copy
cut short, a hand edit) is detected on reading, logged, and computed again.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from advml.runtime.files import atomic_write
from advml.runtime.plain import plain

__all__ = ["ResultCache", "fingerprint"]


def fingerprint(obj: Any) -> str:
    """A short stable hash of plain data (dicts, lists, numbers, strings, arrays)."""
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()[:16]


def _feed(h: Any, obj: Any) -> None:
    if isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        h.update(f"nd{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.tobytes())
    elif isinstance(obj, dict):
        h.update(b"{")
        for k in sorted(obj, key=str):
            _feed(h, str(k))
            _feed(h, obj[k])
        h.update(b"}")
    elif isinstance(obj, list | tuple):
        h.update(b"[")
        for v in obj:
            _feed(h, v)
        h.update(b"]")
    else:
        h.update(json.dumps(obj, default=str).encode())


class ResultCache:
    """Finished steps stored under ``folder`` by key.

    A damaged entry (a truncated ``.npz``, a JSON file edited or emptied, a checksum
    that does not match) is detected on reading, logged as a warning and reported as
    not finished, so the step is computed again and its files replaced; a resume never
    stops on a broken file.

    Parameters
    ----------
    folder : path
        Created when missing.
    log : logging.Logger, optional
        Where damaged entries are reported (the audit passes the logger that writes
        ``OUT/audit.log``); default ``advml.runtime.cache``.
    """

    def __init__(
        self, folder: str | os.PathLike[str], *, log: logging.Logger | None = None
    ) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.log = log or logging.getLogger(__name__)

    def _paths(self, key: str) -> tuple[Path, Path]:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)
        return self.folder / f"{safe}.json", self.folder / f"{safe}.npz"

    def has(self, key: str) -> bool:
        return self.get(key) is not None

    def get(self, key: str) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        """The stored numbers and arrays for ``key``, or None if the step never finished
        or its files are damaged (then logged: the step is computed again)."""
        meta_path, arr_path = self._paths(key)
        if not meta_path.exists():
            return None
        try:
            return self._read(meta_path, arr_path)
        except _Damaged as why:
            self.log.warning("step %s: stored result damaged (%s); it is computed again", key, why)
            return None

    def _read(
        self, meta_path: Path, arr_path: Path
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise _Damaged(f"{meta_path.name} is not readable JSON: {err}") from None
        if not isinstance(meta, dict) or not isinstance(meta.get(_ARRAYS), bool):
            raise _Damaged(f"{meta_path.name} lacks the completion record {_ARRAYS!r}")
        digest = meta.pop(_CHECK, None)
        has_arrays = meta.pop(_ARRAYS)
        arrays: dict[str, np.ndarray] = {}
        if has_arrays:
            try:
                raw = arr_path.read_bytes()
                with np.load(io.BytesIO(raw), allow_pickle=False) as data:
                    arrays = {k: data[k] for k in data.files}
            except Exception as err:
                raise _Damaged(f"{arr_path.name} is not readable: {err}") from None
        else:
            raw = b""
        # Entries written before checksums existed have none; they are read as before.
        if digest is not None and digest != _digest(meta, raw):
            raise _Damaged(f"{meta_path.name} or {arr_path.name} does not match its checksum")
        return meta, arrays

    def put(
        self, key: str, meta: dict[str, Any], arrays: dict[str, np.ndarray] | None = None
    ) -> None:
        """Store a finished step; the JSON file is written last and marks completion.

        It records a checksum of the numbers and of the ``.npz`` bytes, so that a
        damaged entry is recognised on reading.
        """
        meta_path, arr_path = self._paths(key)
        raw = b""
        if arrays:
            buffer = io.BytesIO()
            np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
            raw = buffer.getvalue()
            atomic_write(arr_path, raw)
        data = plain(meta)
        payload = {**data, _ARRAYS: bool(arrays), _CHECK: _digest(data, raw)}
        atomic_write(meta_path, json.dumps(payload, indent=1))


_ARRAYS = "_has_arrays"
_CHECK = "_sha256"


class _Damaged(Exception):
    """A stored step that cannot be trusted; the message says why."""


def _digest(meta: dict[str, Any], raw: bytes) -> str:
    h = hashlib.sha256(json.dumps(meta, sort_keys=True).encode("utf-8"))
    h.update(hashlib.sha256(raw).digest())
    return h.hexdigest()
