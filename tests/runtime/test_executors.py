"""Executors: same results in task order from local, process and Ray; the step cache;
a killed worker costs only its task.

Ray runs as one local Ray with 2 CPUs for the whole module (started once: ~5 s).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from advml.cli import main
from advml.runtime.cache import ResultCache
from advml.runtime.executors import (
    LocalExecutor,
    ProcessExecutor,
    RayExecutor,
    TaskCache,
    cached_map,
    make_executor,
)

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def process_pool() -> Iterator[ProcessExecutor]:
    """A pool of 2 worker processes, started once for the module (spawn: each imports
    torch, seconds)."""
    with ProcessExecutor(workers=2) as pool:
        yield pool


@pytest.fixture(scope="module")
def local_ray() -> Iterator[RayExecutor]:
    """A local Ray with 2 CPUs, shared by the module and shut down after it."""
    if ray.is_initialized():
        ray.shutdown()
    executor = RayExecutor(workers=2)
    yield executor
    ray.shutdown()


def seeded_training(seed: int) -> np.ndarray:
    """A seeded task like a shadow model's: a few SGD steps of a small network."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 8, generator=gen)
    y = (x[:, 0] > 0).long()
    net = torch.nn.Linear(8, 2)
    with torch.no_grad():
        net.weight.copy_(torch.randn(2, 8, generator=gen) * 0.1)
        net.bias.zero_()
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    for _ in range(20):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return net.weight.detach().numpy().copy()


def test_map_returns_results_in_submission_order_from_every_executor(
    local_ray: RayExecutor, process_pool: ProcessExecutor
) -> None:
    seeds = list(range(6))
    expected = [seeded_training(s) for s in seeds]
    for executor in (LocalExecutor(), process_pool, local_ray):
        got = list(executor.map(seeded_training, seeds))
        # Same seed, same arithmetic, one torch thread per task: identical bits.
        assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))
        assert executor.describe()["executor"] == executor.name


def test_a_closure_and_its_captured_array_travel_to_the_workers(
    local_ray: RayExecutor, process_pool: ProcessExecutor
) -> None:
    data = np.arange(10_000, dtype=np.float64)  # captured once, not sent per task

    def task(i: int) -> float:
        return float(data[i::7].sum())

    expected = [task(i) for i in range(7)]
    assert list(process_pool.map(task, range(7))) == expected
    assert list(local_ray.map(task, range(7))) == expected


def test_a_large_function_reaches_the_pool_through_one_file_removed_after(
    process_pool: ProcessExecutor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    import advml.runtime.executors as executors

    # Over the inline limit (1 MiB): written once to a private file, not sent per task.
    data = np.random.default_rng(0).random(300_000)  # 2.4 MB
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def task(i: int) -> float:
        return float(data[i::5].sum())

    assert len(executors._dumps(task)) > executors._INLINE_PAYLOAD
    seen: list[list[str]] = []

    def watch(i: int) -> float:
        return task(i)

    results = []
    for value in process_pool.map(watch, range(10)):
        seen.append(sorted(p.name for p in tmp_path.iterdir()))
        results.append(value)
    assert results == [task(i) for i in range(10)]
    assert seen[0] and seen[0][0].startswith("advml-task-")  # the file while the map ran
    assert not list(tmp_path.iterdir())  # and removed after it


def _niceness(_: int) -> int:
    import os

    return os.nice(0)


def test_local_ray_workers_run_at_the_drivers_priority(local_ray: RayExecutor) -> None:
    # Ray's default is niceness 15; the local Ray advml starts runs the job at the
    # driver's priority (as a process pool does), and leaves the driver's env as it was.
    import os

    assert list(local_ray.map(_niceness, [0, 1])) == [os.nice(0)] * 2
    assert "RAY_worker_niceness" not in os.environ


def test_cached_map_stores_each_task_and_a_rerun_runs_only_the_missing(tmp_path: Path) -> None:
    cache = TaskCache(ResultCache(tmp_path), "demo")
    calls: list[int] = []

    def task(i: int) -> np.ndarray:
        calls.append(i)
        if i == 2 and len(calls) == 3:  # the first run dies at task 2
            raise KeyboardInterrupt
        return np.full(3, float(i))

    codec: dict[str, Any] = {
        "encode": lambda r: ({}, {"v": r}),
        "decode": lambda meta, arrays: arrays["v"],
    }
    with pytest.raises(KeyboardInterrupt):
        cached_map(LocalExecutor(), task, range(4), cache=cache, show_progress=False, **codec)
    calls.clear()
    got = cached_map(LocalExecutor(), task, range(4), cache=cache, show_progress=False, **codec)
    assert calls == [2, 3]  # tasks 0 and 1 were read back
    assert [float(v[0]) for v in got] == [0.0, 1.0, 2.0, 3.0]


def test_bad_settings_name_the_parameter() -> None:
    with pytest.raises(ValueError, match="executor must be one of"):
        make_executor("dask")
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        make_executor("process", workers=0)
    with pytest.raises(ValueError, match="ray_address is for executor='ray'"):
        make_executor("local", ray_address="auto")
    with pytest.raises(ValueError, match="cache, encode and decode together"):
        cached_map(LocalExecutor(), abs, [1], cache=None, encode=lambda r: ({}, {}))


def test_a_killed_ray_worker_costs_only_its_task(local_ray: RayExecutor, tmp_path: Path) -> None:
    marks = tmp_path

    def task(i: int) -> np.ndarray:
        import uuid

        (marks / f"ran-{i}-{uuid.uuid4().hex}").touch()
        if i == 3 and not (marks / "killed").exists():
            (marks / "pid").write_text(str(os.getpid()))
            time.sleep(60)  # killed here
        return seeded_training(i)

    def killer() -> None:
        deadline = time.monotonic() + 60
        while not (marks / "pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        (marks / "killed").touch()
        os.kill(int((marks / "pid").read_text()), signal.SIGKILL)

    thread = threading.Thread(target=killer)
    thread.start()
    got = list(local_ray.map(task, range(6)))
    thread.join()
    assert (marks / "killed").exists()
    assert all(np.array_equal(g, seeded_training(i)) for i, g in enumerate(got))
    runs = [p.name.split("-")[1] for p in marks.glob("ran-*")]
    # Task 3 ran twice (killed, then retried by Ray); every other task once.
    assert sorted(runs) == ["0", "1", "2", "3", "3", "4", "5"]


def test_a_dead_process_worker_is_replaced_and_the_figures_kept(tmp_path: Path) -> None:
    marks = tmp_path

    def task(i: int) -> np.ndarray:
        if i == 1 and not (marks / "died").exists():
            (marks / "died").touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return seeded_training(i)

    with ProcessExecutor(workers=2) as process:
        got = list(process.map(task, range(4)))
    assert all(np.array_equal(g, seeded_training(i)) for i, g in enumerate(got))


def membership_numbers(tmp_path: Path, executor: str, capsys: Any) -> dict[str, Any]:
    out = tmp_path / f"{executor}.json"
    argv = ["membership", "--dataset", "digits", "--attacks", "loss_threshold,lira,rmia"]
    argv += ["--shadows", "2", "--target-size", "100", "--epochs", "5", "--quiet"]
    argv += ["--executor", executor, "--workers", "2", "--json", str(out)]
    assert main(argv) == 0
    workers = 1 if executor == "local" else 2  # local runs one task at a time
    assert f"executor: {executor}, {workers} worker(s)" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["run"]["executor"] == executor
    return {k: v for k, v in report.items() if k not in ("run",)}


@pytest.mark.parametrize(
    "executor", ["ray", pytest.param("process", marks=pytest.mark.slow)]
)  # process: its own pool of 2 spawned workers, each importing torch and advml
def test_membership_command_gives_the_same_numbers_on_every_executor(
    local_ray: RayExecutor, tmp_path: Path, capsys: Any, executor: str
) -> None:
    local = membership_numbers(tmp_path, "local", capsys)
    other = membership_numbers(tmp_path, executor, capsys)
    # The figures: identical (seconds differ, so they are left out).
    assert _figures(other) == _figures(local)


def _figures(report: Any) -> Any:
    if isinstance(report, dict):
        return {k: _figures(v) for k, v in report.items() if "second" not in k}
    if isinstance(report, list):
        return [_figures(v) for v in report]
    return report


@pytest.mark.slow
def test_audit_report_figures_do_not_depend_on_the_executor(
    local_ray: RayExecutor, tmp_path: Path
) -> None:
    """``advml audit --quick`` restricted to the membership section (the one whose tasks
    run on the executor), with the quick tier's RMIA on 2 reference models."""
    config = tmp_path / "config.yaml"
    config.write_text(
        "model: {architecture: mlp}\ndata: {dataset: digits, n_samples: 50}\n"
        "sections:\n  run: [membership]\n  settings: {membership: {rmia_references: 2, "
        "label_only_records: 20, hardening: {}}}\n"
    )
    sections = {}
    for executor in ("local", "process", "ray"):
        out = tmp_path / executor
        argv = ["audit", "--quick", "--config", str(config), "--out", str(out), "--quiet"]
        assert main([*argv, "--executor", executor, "--workers", "2"]) in (0, 3)
        report = json.loads((out / "report.json").read_text())
        section = report["sections"]["membership"]
        assert section["executor"]["executor"] == executor
        assert report["config"]["executor"] == executor
        sections[executor] = {k: v for k, v in section.items() if k != "executor"}
    assert any(a["name"] == "rmia" for a in sections["local"]["attacks"])
    assert _figures(sections["process"]) == _figures(sections["local"])
    assert _figures(sections["ray"]) == _figures(sections["local"])


def test_an_unreachable_cluster_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from advml.runtime.executors import ExecutorUnavailableError

    monkeypatch.setattr(ray, "is_initialized", lambda: False)

    def refuse(**kwargs: Any) -> None:
        raise ConnectionError("connection refused")

    monkeypatch.setattr(ray, "init", refuse)
    with pytest.raises(ExecutorUnavailableError, match="no Ray cluster answered at ray_address"):
        RayExecutor(address="ray://127.0.0.1:1")
