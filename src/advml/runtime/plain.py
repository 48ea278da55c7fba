"""Settings and results as plain data: what JSON (and ``torch.load(weights_only=True)``)
holds.

Reports, cache entries, keys and model files all store settings that users wrote as
tuples, numpy scalars or arrays. :func:`plain` turns them into ``None``, ``bool``,
``int``, ``float``, ``str``, lists and dicts with string keys, in one place.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["plain"]


def plain(value: Any, *, where: str | None = None, finite: bool = False) -> Any:
    """``value`` as plain data: numbers, strings, ``None``, lists and string-keyed dicts.

    numpy scalars become Python numbers, tuples lists, and mappings and lists are
    converted all the way down; numpy arrays become lists too, except in strict mode.

    Parameters
    ----------
    value : object
        The data to convert.
    where : str, optional
        Strict mode, for files that must read back as they were written (model files,
        watermark keys): anything else (an object, a non-string key) raises a
        ``ValueError`` naming ``where`` and the path inside it. Without it, anything
        else becomes its ``str()`` and keys become strings as :func:`json.dumps` writes
        them (for reports and logs).
    finite : bool
        Write ``NaN`` and infinities as ``None`` (strict JSON has neither).

    Examples
    --------
    >>> plain({"eps": np.float64(0.5), "shape": (1, 28, 28), 3: [np.int64(2)]})
    {'eps': 0.5, 'shape': [1, 28, 28], '3': [2]}
    >>> plain({"layer": object()}, where="settings")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: settings['layer'] holds object; only numbers, strings, None, lists and ...
    """
    if isinstance(value, np.generic) or (isinstance(value, np.ndarray) and where is None):
        value = value.tolist()  # Python numbers, bools or nested lists of them
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return None if finite and not math.isfinite(value) else value
    if isinstance(value, list | tuple):
        return [
            plain(v, where=None if where is None else f"{where}[{i}]", finite=finite)
            for i, v in enumerate(value)
        ]
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            inner = None if where is None else f"{where}[{k!r}]"
            out[_key(k, where)] = plain(v, where=inner, finite=finite)
        return out
    if where is not None:
        raise ValueError(
            f"{where} holds {type(value).__name__}; only numbers, strings, None, lists and "
            f"dicts can be saved"
        )
    return str(value)


def _key(key: Any, where: str | None) -> str:
    if isinstance(key, str):
        return key
    if where is not None:
        raise ValueError(f"{where} keys must be strings, got {key!r}")
    if key is None or isinstance(key, bool | int | float):
        return json.dumps(key)  # as JSON writes the key: true, null, 1.5
    return str(key)
