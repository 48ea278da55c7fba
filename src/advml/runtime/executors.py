"""Executors: run independent, seeded tasks in this process, a process pool or on Ray.

Every long job advml can spread out (shadow / reference models of LiRA and RMIA, one task
per model) is a list of **tasks**: pure functions of fingerprinted inputs, settings and a
seed. An :class:`Executor` runs ``fn(task)`` for each and hands the results back **in
submission order**, so the numbers computed from them do not depend on which executor ran
them, nor on how many workers it had:

======================  ==============================================================
``local`` (default)     in this process, one task after the other
``process``             a pool of ``workers`` processes on this machine (``spawn``
                        start method: safe with torch, which forking would break);
                        each worker uses ``threads_per_worker`` torch threads
``ray``                 Ray (``ray.init(address=...)``): ``"auto"`` joins a running
                        cluster, ``"ray://host:port"`` a remote one through Ray Client,
                        ``None`` starts a local Ray with ``workers`` CPUs on demand
======================  ==============================================================

The function (and everything it captures: the training data, the target's recipe) is
serialised once per :meth:`Executor.map` call, with cloudpickle, so closures work. On
Ray it goes through the object store once (``ray.put``) and each task receives a
reference, not a copy of the arrays; in a process pool its bytes go down the pipe with
each task (a memory copy on one machine) and each worker decodes them once. Tasks
themselves should be small (an index, a seed, a mask). A task that asks for a GPU
(``num_gpus``) is scheduled by Ray on a GPU worker.

:func:`cached_map` adds the audit's step cache: each finished task is stored as it
arrives, so a run killed anywhere (a worker, the driver) resumes with only the
unfinished tasks. A Ray worker that dies mid-task (``kill -9``, a node lost) costs only
that task: Ray runs it again (``max_retries``).

Examples
--------
>>> from advml.runtime.executors import make_executor
>>> with make_executor("process", workers=2) as ex:  # doctest: +SKIP
...     squares = list(ex.map(pow2, range(8)))
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np

from advml.errors import AdvmlError
from advml.runtime.cache import ResultCache
from advml.runtime.progress import progress

__all__ = [
    "EXECUTORS",
    "Executor",
    "ExecutorName",
    "ExecutorUnavailableError",
    "LocalExecutor",
    "ProcessExecutor",
    "RayExecutor",
    "TaskCache",
    "cached_map",
    "make_executor",
]

log = logging.getLogger(__name__)

ExecutorName = Literal["local", "process", "ray"]


class ExecutorUnavailableError(AdvmlError, RuntimeError):
    """The executor cannot start: Ray is not installed, or no cluster answers at the
    address. The message says what to install or check."""


EXECUTORS: tuple[ExecutorName, ...] = ("local", "process", "ray")


class Executor:
    """Runs ``fn`` over independent tasks; subclasses implement :meth:`map_unordered`.

    Parameters
    ----------
    workers : int
        Tasks run at once (>= 1). ``local`` always runs one.
    """

    name: str = "executor"

    def __init__(self, *, workers: int = 1) -> None:
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
        self.workers = workers

    def map_unordered(
        self, fn: Callable[[Any], Any], tasks: Sequence[Any]
    ) -> Iterator[tuple[int, Any]]:
        """``(index, fn(tasks[index]))`` pairs as the tasks finish, in any order."""
        raise NotImplementedError

    def map(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[Any]:
        """``fn(task)`` for each task, yielded **in submission order** (a result that
        finished early waits for those before it)."""
        tasks = list(tasks)
        done: dict[int, Any] = {}
        following = 0
        for index, result in self.map_unordered(fn, tasks):
            done[index] = result
            while following in done:
                yield done.pop(following)
                following += 1

    def describe(self) -> dict[str, Any]:
        """What ran the work, for reports: executor name and workers."""
        return {"executor": self.name, "workers": self.workers}

    def close(self) -> None:
        """Release the workers (a process pool); Ray stays up for the next call."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class LocalExecutor(Executor):
    """Every task in this process, one after the other (the default)."""

    name = "local"

    def __init__(self, *, workers: int = 1) -> None:
        super().__init__(workers=1)

    def map_unordered(
        self, fn: Callable[[Any], Any], tasks: Sequence[Any]
    ) -> Iterator[tuple[int, Any]]:
        for index, task in enumerate(tasks):
            yield index, fn(task)


# -- process pool ---------------------------------------------------------------------------


def _dumps(obj: Any) -> bytes:
    """cloudpickle, so that closures and locally defined functions travel to workers.

    scikit-learn's joblib ships a copy of cloudpickle, so this works without Ray.
    """
    try:
        import cloudpickle
    except ImportError:  # pragma: no cover - the vendored copy is always there
        from joblib.externals import cloudpickle
    return bytes(cloudpickle.dumps(obj))


# Per worker process: functions already unpickled, by digest, so the data a function
# captures is decoded once per worker and map call, not once per task.
_WORKER_FUNCTIONS: dict[str, Callable[[Any], Any]] = {}


def _worker_init(threads: int) -> None:
    """Start of a pool worker: a fixed number of torch threads, so that workers do not
    oversubscribe the cores and each computes as a single-threaded run would."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


# A function whose pickle is larger than this (a network and its data) is written once to
# a private temporary file that each worker reads once, instead of travelling through
# the pool's pipe with every task (a 45 MB ResNet x 100 defence cells would be 4.5 GB).
_INLINE_PAYLOAD = 1 << 20


def _worker_run(digest: str, payload: bytes | str, task: Any) -> Any:
    """Run ``task`` with the map call's function: ``payload`` is its pickle, or the path
    of the file holding it."""
    fn = _WORKER_FUNCTIONS.get(digest)
    if fn is None:
        import pickle

        _WORKER_FUNCTIONS.clear()  # one map call's function at a time
        data = payload if isinstance(payload, bytes) else Path(payload).read_bytes()
        fn = pickle.loads(data)  # bytes this driver pickled a moment ago
        _WORKER_FUNCTIONS[digest] = fn
    return fn(task)


class ProcessExecutor(Executor):
    """A pool of ``workers`` processes on this machine (``spawn`` start method).

    Parameters
    ----------
    workers : int
        Processes (default: the machine's CPU count).
    threads_per_worker : int
        torch threads of each worker (default 1: the pool supplies the parallelism).
    retries : int
        A worker that dies (killed, out of memory) breaks the pool; the pool is started
        again and the unfinished tasks submitted again, at most this many times.
    """

    name = "process"

    def __init__(
        self, *, workers: int | None = None, threads_per_worker: int = 1, retries: int = 2
    ) -> None:
        super().__init__(workers=workers if workers is not None else (os.cpu_count() or 1))
        if not isinstance(threads_per_worker, int) or threads_per_worker < 1:
            raise ValueError(
                f"threads_per_worker must be an integer >= 1, got {threads_per_worker!r}"
            )
        self.threads_per_worker = threads_per_worker
        self.retries = retries
        self._pool: ProcessPoolExecutor | None = None

    def _start(self) -> ProcessPoolExecutor:
        if self._pool is None:
            import multiprocessing

            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_init,
                initargs=(self.threads_per_worker,),
            )
        return self._pool

    def map_unordered(
        self, fn: Callable[[Any], Any], tasks: Sequence[Any]
    ) -> Iterator[tuple[int, Any]]:
        import hashlib

        payload = _dumps(fn)
        digest = hashlib.sha256(payload).hexdigest()
        sent: bytes | str = payload
        if len(payload) > _INLINE_PAYLOAD:
            import tempfile

            handle, sent = tempfile.mkstemp(prefix="advml-task-", suffix=".pkl")  # mode 0600
            with os.fdopen(handle, "wb") as f:
                f.write(payload)
        try:
            yield from self._map(sent, digest, tasks)
        finally:
            if isinstance(sent, str):
                Path(sent).unlink(missing_ok=True)

    def _map(
        self, payload: bytes | str, digest: str, tasks: Sequence[Any]
    ) -> Iterator[tuple[int, Any]]:
        remaining = dict(enumerate(tasks))
        attempts = 0
        while remaining:
            pool = self._start()
            futures: dict[Future[Any], int] = {
                pool.submit(_worker_run, digest, payload, task): i for i, task in remaining.items()
            }
            try:
                pending = set(futures)
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        result = future.result()
                        index = futures[future]
                        del remaining[index]
                        yield index, result
            except BrokenProcessPool:
                attempts += 1
                self.close()
                if attempts > self.retries:
                    raise
                log.warning(
                    "a worker process died; %d unfinished tasks are submitted again", len(remaining)
                )
            finally:
                # A caller that stops early (an error, a closed generator) leaves no task
                # queued behind it: one that has not started would find no payload file.
                for future in futures:
                    future.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


# -- Ray ----------------------------------------------------------------------------------------


def _ray_run(fn: Callable[[Any], Any], task: Any, threads: int) -> Any:
    """The body of every Ray task (``fn`` arrives resolved from its object reference)."""
    import torch

    torch.set_num_threads(threads)
    return fn(task)


class RayExecutor(Executor):
    """Tasks on Ray: a cluster (``address``) or a local Ray started on demand.

    Parameters
    ----------
    address : str, optional
        ``"auto"`` (a running cluster this machine belongs to), ``"ray://host:port"``
        (Ray Client) or ``None``: join Ray if this process already started it, else start
        a local Ray with ``workers`` CPUs.
    workers : int
        CPUs of the local Ray started on demand; on a cluster, the tasks in flight at once
        (default: the cluster's CPUs).
    num_cpus : float
        CPUs each task asks for (default 1).
    num_gpus : float
        GPUs each task asks for (default 0; set e.g. 1 or 0.25 for GPU training).
    max_retries : int
        Times Ray runs a task again after its worker died (default 3).
    """

    name = "ray"

    def __init__(
        self,
        *,
        address: str | None = None,
        workers: int | None = None,
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
        max_retries: int = 3,
    ) -> None:
        ray = _import_ray()
        if address is not None and not (address == "auto" or ":" in address):
            raise ValueError(
                f"ray_address must be 'auto', 'ray://host:port' or 'host:port', got {address!r}"
            )
        if not ray.is_initialized():
            if address is None:
                # Workers of a local Ray import what this process imports (advml from a
                # source tree, the caller's own modules): they get its search path.
                path = os.pathsep.join(p for p in sys.path if p)
                # Ray runs its workers at niceness 15 by default, so that a cluster's
                # driver stays responsive; on the user's own machine the workers *are*
                # the job, and at 15 they yield to any other process: on 2 cores that
                # cost ~10 % of the speed-up (docs/scale.md). Started here, they run at
                # the driver's priority, as the process pool's do (the raylet reads the
                # variable when it starts; a user's own setting is kept).
                with _env(RAY_worker_niceness=os.environ.get("RAY_worker_niceness", "0")):
                    ray.init(
                        num_cpus=workers or os.cpu_count() or 1,
                        include_dashboard=False,
                        log_to_driver=False,
                        configure_logging=False,
                        runtime_env={"env_vars": {"PYTHONPATH": path}},
                    )
            else:
                try:
                    ray.init(address=address, log_to_driver=False)
                except Exception as err:  # Ray raises ConnectionError, RuntimeError, ...
                    raise ExecutorUnavailableError(
                        f"no Ray cluster answered at ray_address {address!r} ({err}). Start "
                        "one (`ray start --head`, `ray up cluster.yaml`), check the address, "
                        "or leave ray_address out for a local Ray"
                    ) from err
        cluster_cpus = int(ray.cluster_resources().get("CPU", 1))
        super().__init__(workers=workers or max(1, int(cluster_cpus // max(num_cpus, 1e-9))))
        self.address = address
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.max_retries = max_retries
        self._remote = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=max_retries)(
            _ray_run
        )

    def map_unordered(
        self, fn: Callable[[Any], Any], tasks: Sequence[Any]
    ) -> Iterator[tuple[int, Any]]:
        ray = _import_ray()
        # The function and the data it captures enter the object store once.
        fn_ref = ray.put(fn)
        threads = max(1, int(self.num_cpus))
        queue = list(enumerate(tasks))[::-1]
        in_flight: dict[Any, int] = {}
        # At most 2 x workers tasks submitted ahead: the driver holds few references and a
        # long run's results stream back as they finish.
        while queue or in_flight:
            while queue and len(in_flight) < 2 * self.workers:
                index, task = queue.pop()
                in_flight[self._remote.remote(fn_ref, task, threads)] = index
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                index = in_flight.pop(ref)
                yield index, ray.get(ref)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["ray_address"] = self.address or "local"
        if self.num_gpus:
            out["gpus_per_task"] = self.num_gpus
        return out


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    """Environment variables set for the duration of the block, then restored."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as err:
        raise ExecutorUnavailableError(
            "the 'ray' executor needs Ray: pip install 'advml[ray]' (or pip install ray)"
        ) from err
    return ray


def make_executor(
    name: str = "local",
    *,
    workers: int | None = None,
    ray_address: str | None = None,
    num_gpus: float = 0.0,
) -> Executor:
    """The executor called ``name`` ("local", "process" or "ray").

    Raises
    ------
    ValueError
        For an unknown name, ``workers < 1``, or a ``ray_address`` with another executor.
    """
    if name not in EXECUTORS:
        raise ValueError(f"executor must be one of {list(EXECUTORS)}, got {name!r}")
    if workers is not None and (
        not isinstance(workers, int) or isinstance(workers, bool) or workers < 1
    ):
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    if ray_address is not None and name != "ray":
        raise ValueError(f"ray_address is for executor='ray'; got executor={name!r}")
    if name == "local":
        return LocalExecutor()
    if name == "process":
        return ProcessExecutor(workers=workers)
    return RayExecutor(address=ray_address, workers=workers, num_gpus=num_gpus)


# -- the step cache ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskCache:
    """Where :func:`cached_map` stores finished tasks: a :class:`ResultCache` and a key
    prefix that fingerprints everything the tasks depend on (inputs, settings, seed)."""

    cache: ResultCache
    prefix: str

    def key(self, index: int) -> str:
        return f"{self.prefix}-task{index}"


Encoded = tuple[dict[str, Any], dict[str, np.ndarray]]


def cached_map(
    executor: Executor,
    fn: Callable[[Any], Any],
    tasks: Sequence[Any],
    *,
    cache: TaskCache | None = None,
    encode: Callable[[Any], Encoded] | None = None,
    decode: Callable[[dict[str, Any], dict[str, np.ndarray]], Any] | None = None,
    desc: str = "tasks",
    show_progress: bool = True,
) -> list[Any]:
    """``[fn(t) for t in tasks]`` through ``executor``, each result stored as it arrives.

    Tasks already in ``cache`` are read back and not run; the others run, and each is
    stored (``encode(result) -> (numbers, arrays)``) the moment it finishes, so a run
    killed at any point loses only the tasks in flight. Results come back in task order,
    whichever executor ran them.

    Parameters
    ----------
    cache, encode, decode
        All three, or none (no caching).
    """
    if (cache is None) != (encode is None) or (encode is None) != (decode is None):
        raise ValueError("cached_map needs cache, encode and decode together, or none of them")
    tasks = list(tasks)
    results: dict[int, Any] = {}
    if cache is not None and decode is not None:
        for i in range(len(tasks)):
            hit = cache.cache.get(cache.key(i))
            if hit is not None:
                results[i] = decode(*hit)
        if results:
            log.info("%s: %d of %d tasks read from the cache", desc, len(results), len(tasks))
    todo = [i for i in range(len(tasks)) if i not in results]
    start = time.perf_counter()
    bar = progress(
        executor.map_unordered(fn, [tasks[i] for i in todo]),
        desc=desc,
        total=len(todo),
        enabled=show_progress,
    )
    for j, result in bar:
        index = todo[j]
        if cache is not None and encode is not None:
            cache.cache.put(cache.key(index), *encode(result))
        results[index] = result
    log.debug(
        "%s: %d tasks in %.1f s on %s", desc, len(todo), time.perf_counter() - start, executor.name
    )
    return [results[i] for i in range(len(tasks))]
