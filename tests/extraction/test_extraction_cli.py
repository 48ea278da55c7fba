"""``advml extract`` end to end on the digits reference MLP and a saved logistic regression."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sklearn.linear_model import LogisticRegression

from advml.cli import main
from advml.data import load_dataset
from advml.models import SklearnClassifier, load_model, save_model


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["extract", "--list"]) == 0
    out = capsys.readouterr().out
    assert "copycat" in out and "equation_solving" in out


def test_copycat_behind_a_defence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "extract",
        "--dataset",
        "digits",
        "--queries",
        "80",
        "--set",
        "rounds=2",
        "--set",
        "epochs=2",
        "--set",
        "min_steps=10",
        "--defence",
        "rounding",
        "--defence-set",
        "decimals=1",
        "--n-random",
        "200",
        "--transfer-eps",
        "0.2",
        "--out",
        str(tmp_path / "stolen.pt"),
        "--json",
        str(tmp_path / "r.json"),
        "--quiet",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "queries                 80" in out and "rounded to 1 decimals" in out
    numbers: dict[str, Any] = json.loads((tmp_path / "r.json").read_text())
    assert numbers["extraction"]["queries"] == 80 and "transfer" in numbers
    assert load_model(tmp_path / "stolen.pt").input_shape == (1, 8, 8)


def _equation_solving_argv(tmp_path: Path, *extra: str) -> list[str]:
    """``advml extract`` by equation solving of a logistic regression saved in ``tmp_path``."""
    ds = load_dataset("breast-cancer")
    est = LogisticRegression(max_iter=5000).fit(ds.x_train, ds.y_train)
    save_model(SklearnClassifier(est, bounds=(0.0, 1.0)), tmp_path / "lr.skops")
    return [
        "extract",
        "--dataset",
        "breast-cancer",
        "--model",
        str(tmp_path / "lr.skops"),
        "--attack",
        "equation_solving",
        "--quiet",
        *extra,
    ]


def test_equation_solving_on_a_saved_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_equation_solving_argv(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "queries                 31" in out and "agreement (test)        100.0%" in out


def test_labels_only_refused_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_equation_solving_argv(tmp_path, "--defence", "labels_only")) == 2
    assert "equation solving is impossible" in capsys.readouterr().err
