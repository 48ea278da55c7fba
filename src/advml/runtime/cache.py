"""An on-disk store of finished steps, so long jobs resume where they stopped.

Each entry is a JSON file of plain numbers and an optional ``.npz`` of arrays, written
atomically (a temporary file, then a rename), so an interrupted job never leaves a
half-written entry that would be mistaken for a finished one.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from advml.runtime.files import atomic_write

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

    Parameters
    ----------
    folder : path
        Created when missing.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def _paths(self, key: str) -> tuple[Path, Path]:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)
        return self.folder / f"{safe}.json", self.folder / f"{safe}.npz"

    def has(self, key: str) -> bool:
        return self._paths(key)[0].exists()

    def get(self, key: str) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        """The stored numbers and arrays for ``key``, or None if the step never finished."""
        meta_path, arr_path = self._paths(key)
        if not meta_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            arrays: dict[str, np.ndarray] = {}
            if meta.get("_has_arrays"):
                with np.load(arr_path, allow_pickle=False) as data:
                    arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError):
            return None  # unreadable: treat as not finished, the step runs again
        meta.pop("_has_arrays", None)
        return meta, arrays

    def put(
        self, key: str, meta: dict[str, Any], arrays: dict[str, np.ndarray] | None = None
    ) -> None:
        """Store a finished step; the JSON file is written last and marks completion."""
        meta_path, arr_path = self._paths(key)
        if arrays:
            atomic_write(arr_path, lambda f: np.savez_compressed(f, **arrays))  # type: ignore[arg-type]
        payload = json.dumps({**meta, "_has_arrays": bool(arrays)}, indent=1, default=_plain)
        atomic_write(meta_path, payload)


def _plain(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)
