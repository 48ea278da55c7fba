"""The advml command: each subcommand end to end on small inputs, and its errors."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from advml.cli import main


def test_help_explains_every_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "advml.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("audit", "attack", "train", "datasets"):
        assert command in out
    out = subprocess.run(
        [sys.executable, "-m", "advml.cli", "audit", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--trust-model-file" in out and "resumes" in out


def test_datasets_lists_embedded_and_downloadable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("digits", "mnist-5k", "breast-cancer", "mnist", "fashion-mnist", "cifar10"):
        assert name in out
    assert "embedded" in out and "download" in out


def test_attack_writes_consistent_npz(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "adv.npz"
    code = main(
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
            "30",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    with np.load(out) as data:
        x, x_adv, y, y_adv, success = (data[k] for k in ("x", "x_adv", "y", "y_adv", "success"))
    assert x.shape == x_adv.shape == (30, 1, 8, 8)
    assert np.abs(x_adv - x).max() <= 0.1 + 1e-6
    assert np.array_equal(success, y_adv != y)
    text = capsys.readouterr().out
    assert "PGD(eps=0.1, steps=5)" in text
    assert f"{float((y_adv == y).mean()):.1%}" in text


def test_targeted_attack_from_the_cli(model_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "adv.npz"
    assert (
        main(
            [
                "attack",
                "--dataset",
                "digits",
                "--model",
                str(model_file),
                "--eps",
                "0.3",
                "--target",
                "3",
                "--n-samples",
                "20",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    with np.load(out) as data:
        assert (data["y_adv"] == 3).mean() >= 0.8


def test_audit_from_the_cli_with_a_model_file(
    quick_audit_argv: Callable[..., list[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "audit"
    code = main(quick_audit_argv(out, "--dataset", "digits"))
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["model"]["source"] == "file"
    assert [p["eps"] for p in report["sections"]["evasion"]["attacks"][0]["points"]] == [0, 0.1]
    assert "integrity · Evasion" in capsys.readouterr().out


def test_lists_sections_and_attacks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "--list-sections"]) == 0
    assert "evasion" in capsys.readouterr().out
    assert main(["attack", "--list"]) == 0
    out = capsys.readouterr().out
    assert "pgd" in out and "fgsm" in out and "needs gradients+scores" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["attack", "--attack", "nope"], "unknown evasion component 'nope'"),
        (["attack", "--set", "steps=0"], "steps must be >= 1"),
        (["attack", "--dataset", "imagenet"], "imagenet"),
        (["audit", "--eps", "-1", "--quick"], "eps must be >= 0"),
    ],
)
def test_errors_name_the_problem_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--quiet"]) == 2
    assert message in capsys.readouterr().err


def test_pickle_model_file_needs_explicit_trust(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pkl"

    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (Path.touch, (marker,))

    path.write_bytes(pickle.dumps(Evil()))
    code = main(["audit", "--quick", "--model", str(path), "--out", str(tmp_path / "o"), "--quiet"])
    assert code == 2
    assert "--trust-model-file" in capsys.readouterr().err
    assert not marker.exists()
