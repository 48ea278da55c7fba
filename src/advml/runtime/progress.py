"""Progress bars for long work; quiet when asked or when output is not a terminal."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

__all__ = ["QueryProgress", "counter", "progress", "quiet"]

T = TypeVar("T")


def quiet() -> bool:
    """Whether ``ADVML_QUIET`` (set by the CLI's ``--quiet``) asks for silence."""
    return os.environ.get("ADVML_QUIET", "") not in ("", "0")


def progress(
    iterable: Iterable[T],
    *,
    desc: str,
    total: int | None = None,
    enabled: bool = True,
    leave: bool = False,
) -> tqdm[T]:
    """Wrap ``iterable`` in a tqdm bar; ``ADVML_QUIET=1`` silences every bar."""
    disable = (not enabled) or quiet()
    return tqdm(iterable, desc=desc, total=total, disable=disable, leave=leave, dynamic_ncols=True)


def counter(
    total: int, *, desc: str, unit: str = "it", enabled: bool = True, leave: bool = False
) -> tqdm[Any]:
    """A bar advanced by hand (``bar.update(n)``) over ``total`` units of work.

    For loops whose unit of work (a training batch, a query) lives deeper than the loop
    that owns the bar. tqdm draws the bar when it is made, so a command shows it at once
    and its ETA after the first unit, however long the whole run.
    """
    disable = (not enabled) or quiet()
    return tqdm(total=total, desc=desc, unit=unit, disable=disable, leave=leave, dynamic_ncols=True)


class QueryProgress:
    """A bar over a model's queries while an attack runs, for attacks with no loop of
    their own to hook: a background thread reads ``model.query_count`` twice a second
    (an int read; the attack never waits on the bar).

    Use as a context manager::

        with QueryProgress(model, total=n * steps, desc="pgd"):
            attack.generate(model, x, y)

    ``total`` may be None (unknown: the bar shows the count and rate, no ETA).
    """

    def __init__(
        self,
        model: Any,
        *,
        total: int | None,
        desc: str,
        enabled: bool = True,
        interval: float = 0.5,
    ) -> None:
        self.model = model
        self.interval = interval
        self.bar = tqdm(
            total=total,
            desc=desc,
            unit="query",
            disable=(not enabled) or quiet(),
            leave=False,
            dynamic_ncols=True,
        )
        self._start = int(getattr(model, "query_count", 0))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _sync(self) -> None:
        done = int(getattr(self.model, "query_count", 0)) - self._start
        if done > self.bar.n:
            self.bar.update(done - self.bar.n)

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self._sync()

    def __enter__(self) -> QueryProgress:
        if not self.bar.disable:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.bar.close()
