"""Evasion attacks over shards of the evaluation set: the result of local, process and
Ray executors equals one whole run, input by input, for a randomised attack (PGD with a
random start) and a query attack (Square) on the digits MLP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from advml.cli import main
from advml.evasion import PGD, Square
from advml.evasion.base import RANDOM_BLOCK, AdversarialResult
from advml.evasion.shards import concatenate_results, generate_sharded, shard_bounds
from advml.models import TorchClassifier
from advml.runtime.executors import LocalExecutor, ProcessExecutor, RayExecutor

FIELDS = ("x_adv", "y", "y_adv", "success", "l0", "l2", "linf", "queries")


def assert_same(a: AdversarialResult, b: AdversarialResult) -> None:
    for name in FIELDS:
        np.testing.assert_array_equal(
            np.asarray(getattr(a, name)), np.asarray(getattr(b, name)), err_msg=name
        )
    assert (a.attack, a.targeted, dict(a.params)) == (b.attack, b.targeted, dict(b.params))


def test_shards_are_cut_at_block_edges() -> None:
    assert shard_bounds(600, 1) == [(0, 256), (256, 512), (512, 600)]
    assert shard_bounds(600, 300) == [(0, 512), (512, 600)]
    assert shard_bounds(100, 256) == [(0, 100)]
    with pytest.raises(ValueError, match="shard_size"):
        shard_bounds(10, 0)


def test_local_shards_equal_one_run_and_queries_add_up(
    digits_data: Any,
    digits_mlp: TorchClassifier,
) -> None:
    x, y = digits_data.x_test, digits_data.y_test
    attack = Square(eps=0.1, max_queries=30, seed=1)
    whole = attack.generate(digits_mlp, x, y)
    sharded = generate_sharded(attack, digits_mlp, x, y, shard_size=RANDOM_BLOCK)
    assert_same(whole, sharded)
    assert int(sharded.queries.sum()) == int(whole.queries.sum()) > 0
    # Without labels each shard attacks the model's own predictions, as one run does.
    assert_same(attack.generate(digits_mlp, x), generate_sharded(attack, digits_mlp, x))


def test_concatenate_needs_a_result() -> None:
    with pytest.raises(ValueError, match="at least one"):
        concatenate_results([], seconds=0.0)


@pytest.fixture(scope="module")
def executors() -> Iterator[dict[str, object]]:
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        ray.shutdown()
    pool = ProcessExecutor(workers=2)
    on_ray = RayExecutor(workers=2)
    yield {"local": LocalExecutor(), "process": pool, "ray": on_ray}
    pool.close()
    ray.shutdown()


@pytest.mark.slow
def test_every_executor_gives_the_result_of_one_run(
    executors: dict[str, object],
    digits_data: Any,
    digits_mlp: TorchClassifier,
) -> None:
    x = np.concatenate([digits_data.x_test, digits_data.x_test[:200]])  # 560: 3 shards
    y = np.concatenate([digits_data.y_test, digits_data.y_test[:200]])
    attack = PGD(eps=0.1, steps=10, random_start=True, seed=7)
    whole = attack.generate(digits_mlp, x, y)
    for name, executor in executors.items():
        assert isinstance(executor, LocalExecutor | ProcessExecutor | RayExecutor)
        result = generate_sharded(attack, digits_mlp, x, y, executor=executor, shard_size=256)
        assert_same(whole, result)
        assert result.n == x.shape[0], name


def _figures(report: Any) -> Any:
    """A report's figures without the wall times (which differ between runs)."""
    if isinstance(report, dict):
        return {k: _figures(v) for k, v in report.items() if "second" not in k}
    if isinstance(report, list):
        return [_figures(v) for v in report]
    return report


@pytest.mark.slow
def test_audit_evasion_figures_do_not_depend_on_the_executor(
    model_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``advml audit --quick`` restricted to the evasion section, PGD (random start) at
    two ε on 300 inputs (two shards) and the ensemble's APGD: the same section on local,
    process and Ray."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        ray.shutdown()
    import advml.evasion.shards as shards

    sharded: list[str] = []

    def spy(*args: Any, **kwargs: Any) -> AdversarialResult:
        sharded.append(kwargs["executor"].name)
        return generate_sharded(*args, **kwargs)

    monkeypatch.setattr(shards, "generate_sharded", spy)
    sections = {}
    for executor in ("local", "process", "ray"):
        out = tmp_path / executor
        argv = [
            "audit", "--quick", "--model", str(model_file), "--n-samples", "300",
            "--eps", "0,0.1", "--attacks", "pgd", "--sections", "evasion",
            "--out", str(out), "--quiet", "--executor", executor, "--workers", "2",
        ]  # fmt: skip
        assert main(argv) in (0, 3)
        report = json.loads((out / "report.json").read_text())
        assert report["config"]["executor"] == executor
        sections[executor] = report["sections"]["evasion"]
    ray.shutdown()
    # PGD at eps 0.1 (eps 0 too) and each ensemble member ran in shards off local only.
    assert "local" not in sharded and {"process", "ray"} <= set(sharded)
    local = sections["local"]
    assert local["attacks"][0]["name"] == "pgd" and local["attacks"][0]["points"][1]["eps"] == 0.1
    assert len(local["worst_case"] or {}) > 0
    assert _figures(sections["process"]) == _figures(local)
    assert _figures(sections["ray"]) == _figures(local)
