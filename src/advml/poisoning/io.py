"""Poisoned data on disk: the ``.npz`` that ``advml poison`` writes and ``advml defend`` reads.

The file holds arrays only (``allow_pickle=False``) and a JSON ``meta`` string: nothing in
it is executed. Every field is checked on reading, and a bad one is named with the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from advml import registry
from advml.poisoning.base import PoisonedData
from advml.poisoning.triggers import Trigger
from advml.runtime.plain import plain

__all__ = ["load_poisoned", "save_poisoned"]

_ARRAYS = ("x", "y", "y_original", "indices")


def save_poisoned(data: PoisonedData, path: str | Path, *, dataset: str = "") -> Path:
    """Write ``data`` to ``path`` (.npz), readable by :func:`load_poisoned`."""
    meta = {
        "attack": data.attack,
        "dataset": dataset,
        "target": data.target,
        "mode": data.mode,
        "n_classes": data.n_classes,
        "bounds": list(data.bounds),
        "trigger": None
        if data.trigger is None
        else {"name": data.trigger.name, **plain(data.trigger.get_params())},
    }
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        x=data.x,
        y=data.y,
        y_original=data.y_original,
        indices=data.indices,
        meta=np.array(json.dumps(meta)),
    )
    return out


def load_poisoned(path: str | Path) -> PoisonedData:
    """The :class:`PoisonedData` written by :func:`save_poisoned` (``advml poison``).

    Raises ValueError naming the file and the field when the file is not such a file:
    missing arrays, ``meta`` that is not JSON, a trigger without its ``name``, indices
    outside the training set, labels outside the classes.
    """
    where = f"poisoned data {path}"
    try:
        with np.load(path, allow_pickle=False) as f:
            files = set(f.files)
            arrays = {k: np.asarray(f[k]) for k in (*_ARRAYS, "meta") if k in files}
    except (OSError, EOFError, ValueError) as err:
        # ValueError: numpy's words for a file that is not an .npz (it takes it for a pickle).
        raise ValueError(f"{where} cannot be read as an .npz file of arrays ({err})") from None
    missing = {*_ARRAYS, "meta"} - set(arrays)
    if missing:
        raise ValueError(f"{where} is not written by 'advml poison': no {sorted(missing)}")
    meta_text = str(arrays.pop("meta"))
    try:
        meta = json.loads(meta_text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: field 'meta' is not JSON ({err.msg})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{where}: field 'meta' must be a JSON object")
    for key in ("n_classes", "bounds", "mode", "target", "attack"):
        if key not in meta:
            raise ValueError(f"{where}: field 'meta' has no {key!r}")
    n_classes = _int(meta["n_classes"], f"{where}: meta 'n_classes'", low=1)
    bounds = meta["bounds"]
    if not (isinstance(bounds, list) and len(bounds) == 2):
        raise ValueError(f"{where}: meta 'bounds' must be [low, high], got {bounds!r}")
    x, y = arrays["x"], arrays["y"]
    n = len(x)
    for key in ("y", "y_original"):
        a = arrays[key]
        if a.shape != (n,) or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{where}: field {key!r} must hold {n} integer labels")
        if n and (a.min() < 0 or a.max() >= n_classes):
            raise ValueError(f"{where}: field {key!r} has labels outside 0..{n_classes - 1}")
    idx = arrays["indices"]
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"{where}: field 'indices' must be a 1-d integer array")
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(
            f"{where}: field 'indices' holds {int(idx.min())}..{int(idx.max())}, outside "
            f"the {n} training samples (0..{n - 1})"
        )
    return PoisonedData(
        x=x,
        y=y,
        indices=idx,
        trigger=_trigger(meta.get("trigger"), where),
        target=meta["target"],
        mode=meta["mode"],
        n_classes=n_classes,
        bounds=(float(bounds[0]), float(bounds[1])),
        y_original=arrays["y_original"],
        attack=str(meta["attack"]),
    )


def _int(value: Any, what: str, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{what} must be an integer >= {low}, got {value!r}")
    return value


def _trigger(spec: Any, where: str) -> Trigger | None:
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: meta 'trigger' must be an object or null, got {spec!r}")
    if "name" not in spec:
        raise ValueError(
            f"{where}: meta 'trigger' has no 'name' (one of: "
            f"{', '.join(registry.available('trigger'))})"
        )
    settings = {k: v for k, v in spec.items() if k != "name"}
    try:
        trigger = registry.create("trigger", spec["name"], **settings)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{where}: meta 'trigger' is not a valid trigger: {err}") from None
    return trigger
