"""``advml attack --executor process|ray``: the attack's inputs in shards on a pool or on
Ray, and the saved .npz identical to a local run's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from advml.cli import main

KEYS = ("x", "x_adv", "y", "y_adv", "success", "queries")


def attack(model_file: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "attack",
            "--dataset",
            "digits",
            "--model",
            str(model_file),
            "--attack",
            "pgd",
            "--eps",
            "0.1",
            "--set",
            "steps=5",
            "--n-samples",
            "300",  # two blocks of randomness: two shards at --shard-size 256
            "--out",
            str(out),
            "--quiet",
            *extra,
        ]
    )


def assert_same_npz(a: Path, b: Path) -> None:
    with np.load(a) as left, np.load(b) as right:
        assert sorted(left.files) == sorted(right.files)
        for key in KEYS:
            np.testing.assert_array_equal(left[key], right[key], err_msg=key)


@pytest.mark.parametrize("executor", ["process", pytest.param("ray", marks=pytest.mark.slow)])
def test_sharded_attack_saves_what_a_local_run_saves(
    executor: str, model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if executor == "ray":
        ray = pytest.importorskip("ray")
        if ray.is_initialized():
            ray.shutdown()
    local, spread = tmp_path / "local.npz", tmp_path / f"{executor}.npz"
    assert attack(model_file, local) == 0
    code = attack(
        model_file, spread, "--executor", executor, "--workers", "2", "--shard-size", "256"
    )
    if executor == "ray":
        ray.shutdown()
    assert code == 0
    assert_same_npz(local, spread)
    with np.load(local) as data:
        assert data["x"].shape[0] == 300 and 0.0 < data["success"].mean() <= 1.0


def test_sharding_flags_are_checked_before_work(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "a.npz"
    assert attack(model_file, out, "--executor", "process", "--query-budget", "100") == 2
    assert "--query-budget" in capsys.readouterr().err
    assert attack(model_file, out, "--ray-address", "auto") == 2
    assert "--ray-address needs --executor ray" in capsys.readouterr().err
    assert attack(model_file, out, "--executor", "process", "--shard-size", "0") == 2
    assert "--shard-size" in capsys.readouterr().err
    assert not out.exists()
