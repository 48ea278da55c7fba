"""The web demo's time limit: every request's work stops at its limit, whatever the model.

A request's computation runs as a :class:`Job`: it has a time limit, counted from the
moment the model starts working for it, and it can be cancelled from another thread.
The demo queries its model only through :class:`LimitedModel`, which checks the running
job before every query (``logits``, ``predict_labels``, ``predict_proba``, ``predict``)
and raises :class:`RequestTimeout` once the job is past its deadline or cancelled. An
attack therefore stops at its next model query whatever the model is (a torch module, a
scikit-learn estimator, a remote API behind a callable), and the worker is free for the
next request. One query itself cannot be interrupted (Python cannot stop a thread), so
its duration is the most a computation overruns its limit.

:class:`ModelSlot` lets one request at a time use the model; the others wait a bounded
time and are then refused with :class:`ServerBusy` (HTTP 503 with ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from advml.models.base import Classifier

__all__ = ["Clock", "Job", "LimitedModel", "ModelSlot", "RequestTimeout", "ServerBusy"]

Clock = Callable[[], float]
"""Seconds on a monotonic clock (``time.monotonic`` unless a test injects another)."""


class RequestTimeout(RuntimeError):
    """A computation ran past its time limit (or was cancelled) and was stopped.

    Deliberately not an :class:`~advml.errors.AdvmlError` nor a ``ValueError``: no
    attack or adapter catches it, so it unwinds the whole computation.
    """


class ServerBusy(RuntimeError):
    """The model stayed busy with other requests for as long as a request may wait.

    Attributes
    ----------
    retry_after : int
        Whole seconds after which the model should be free (the ``Retry-After`` header).
    """

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


class Job:
    """One request's computation: its time limit and a way to cancel it.

    Parameters
    ----------
    limit : float
        Seconds the computation may run once started.
    clock : callable, optional
        The clock the deadline is read on (``time.monotonic`` by default; tests inject
        one they advance themselves, so that no test depends on the machine's speed).
    """

    def __init__(self, limit: float, clock: Clock = time.monotonic) -> None:
        self.limit = float(limit)
        self.clock = clock
        self.deadline: float | None = None
        self._cancelled = threading.Event()

    @property
    def started(self) -> bool:
        return self.deadline is not None

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def start(self) -> None:
        """Start the clock (the model begins working for this request)."""
        self.deadline = self.clock() + self.limit

    def cancel(self) -> None:
        """Stop the computation at its next model query (safe from any thread)."""
        self._cancelled.set()

    def remaining(self) -> float:
        """Seconds left before the deadline (the whole limit if not started)."""
        if self.deadline is None:
            return self.limit
        return max(0.0, self.deadline - self.clock())

    def overdue(self, grace: float = 0.0) -> bool:
        """Started, and more than ``grace`` seconds past the deadline."""
        return self.deadline is not None and self.clock() > self.deadline + grace

    def check(self) -> None:
        """Raise :class:`RequestTimeout` when cancelled or past the deadline."""
        if self._cancelled.is_set():
            raise RequestTimeout("the computation was stopped: it ran past the time limit")
        if self.deadline is not None and self.clock() > self.deadline:
            self._cancelled.set()
            raise RequestTimeout("the computation ran past its time limit")


class LimitedModel:
    """A :class:`~advml.models.base.Classifier` that checks a job before every query.

    Everything else is the wrapped model's: its shape, bounds, capabilities, query
    count and answers. ``predict_proba`` and ``predict`` are checked once per call (the
    demo calls them on one input); an attack's ``logits`` and ``predict_labels`` calls
    are checked one by one.

    Parameters
    ----------
    model : Classifier
        Any advml adapter.
    current_job : callable
        Returns the job running now on this thread's behalf, or ``None`` (no limit).
    """

    def __init__(self, model: Classifier, current_job: Callable[[], Job | None]) -> None:
        self.inner = model
        self._current_job = current_job

    def _check(self) -> None:
        job = self._current_job()
        if job is not None:
            job.check()

    # -- what the model is ------------------------------------------------------------
    @property
    def n_classes(self) -> int:
        return self.inner.n_classes

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.inner.input_shape

    @property
    def bounds(self) -> tuple[float, float]:
        return self.inner.bounds

    @property
    def device(self) -> torch.device:
        return self.inner.device

    @property
    def has_gradients(self) -> bool:
        return bool(getattr(self.inner, "has_gradients", False))

    @property
    def has_scores(self) -> bool:
        return bool(getattr(self.inner, "has_scores", True))

    @property
    def query_count(self) -> int:
        return self.inner.query_count

    @property
    def query_budget(self) -> int | None:
        return getattr(self.inner, "query_budget", None)

    @property
    def queries_left(self) -> int | None:
        # The wrapped model's budget is this one's: attacks size their batches to it.
        return getattr(self.inner, "queries_left", None)

    def as_tensor(self, x: np.ndarray | Tensor, *, name: str = "x") -> Tensor:
        return self.inner.as_tensor(x, name=name)

    def evaluating(self) -> contextlib.AbstractContextManager[None]:
        return self.inner.evaluating()

    # -- the queries, each checked ----------------------------------------------------
    def logits(self, x: Tensor) -> Tensor:
        self._check()
        return self.inner.logits(x)

    def predict_labels(self, x: Tensor) -> Tensor:
        self._check()
        return self.inner.predict_labels(x)

    def predict_proba(self, x: Any, *, batch_size: int | None = None) -> Any:
        self._check()
        return self.inner.predict_proba(x, batch_size=batch_size)

    def predict(self, x: Any, *, batch_size: int | None = None) -> Any:
        self._check()
        return self.inner.predict(x, batch_size=batch_size)

    def fingerprint(self) -> str:
        return self.inner.fingerprint()  # the limit does not change the answers

    def describe(self) -> str:
        return self.inner.describe()

    def __repr__(self) -> str:
        return f"LimitedModel({self.inner!r})"


class ModelSlot:
    """One request at a time on the model; the others wait in order, for a bounded time.

    Use from the event loop only. The slot is held until the computation on the worker
    has really ended (not merely until its request was answered), so a request that
    arrives while a stopped computation is still finishing its last query is told the
    model is busy instead of being queued behind it unseen.

    Parameters
    ----------
    max_wait : float
        Seconds a request may wait for the model; 0 refuses at once when it is busy.
    max_waiting : int
        Requests that may wait at once; more are refused at once.
    """

    def __init__(self, *, max_wait: float, max_waiting: int = 8) -> None:
        self.max_wait = float(max_wait)
        self.max_waiting = int(max_waiting)
        self.busy = False
        self.job: Job | None = None
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def waiting(self) -> int:
        """Requests waiting for the model now."""
        return sum(not w.done() for w in self._waiters)

    def retry_after(self, limit: float) -> int:
        """Seconds until the model should be free: the running job's rest, then the queue's."""
        running = self.job.remaining() if self.job is not None else 0.0
        return math.ceil(running + len(self._waiters) * limit) or 1

    async def acquire(self, limit: float) -> None:
        """Take the slot, waiting at most ``max_wait`` s; :class:`ServerBusy` otherwise."""
        if not self.busy and not self._waiters:
            self.busy = True
            return
        if self.max_wait <= 0 or len(self._waiters) >= self.max_waiting:
            raise ServerBusy("another request is using the model", self.retry_after(limit))
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.max_wait)
        except asyncio.TimeoutError:
            if waiter.done() and not waiter.cancelled():
                return  # handed over just as the wait ran out: the slot is ours
            waiter.cancel()
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
            raise ServerBusy(
                f"the model stayed busy with other requests for {self.max_wait:g} s",
                self.retry_after(limit),
            ) from None
        except asyncio.CancelledError:  # the client went away while waiting
            if waiter.done() and not waiter.cancelled():
                self.release()
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Hand the slot to the next waiter, or free it."""
        self.job = None
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.busy = False
