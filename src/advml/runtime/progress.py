"""Progress bars for long work; quiet when asked or when output is not a terminal."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

__all__ = ["progress"]

T = TypeVar("T")


def progress(
    iterable: Iterable[T],
    *,
    desc: str,
    total: int | None = None,
    enabled: bool = True,
    leave: bool = False,
) -> tqdm[T]:
    """Wrap ``iterable`` in a tqdm bar; ``ADVML_QUIET=1`` silences every bar."""
    disable = (not enabled) or os.environ.get("ADVML_QUIET", "") not in ("", "0")
    return tqdm(iterable, desc=desc, total=total, disable=disable, leave=leave, dynamic_ncols=True)
