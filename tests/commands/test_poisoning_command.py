"""``advml poison`` and ``advml defend`` from the command line (digits MLP, seconds)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from advml.cli import main
from advml.data import load_dataset
from advml.models import load_model
from advml.poisoning import evaluate_backdoor, load_poisoned


@pytest.fixture(scope="module")
def poisoned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``advml poison`` run once: BadNets pattern, all-to-one to 0, 10%, 10 epochs."""
    folder = tmp_path_factory.mktemp("poison-cli")
    model, data = folder / "poisoned.pt", folder / "poisoned.npz"
    code = main(
        [
            "poison", "--dataset", "digits", "--trigger", "pattern", "--trigger-set", "size=3",
            "--fraction", "0.1", "--target", "0", "--epochs", "10", "--quiet",
            "--out-model", str(model), "--out-data", str(data),
        ]
    )  # fmt: skip
    return {"code": code, "model": model, "data": data, "folder": folder}


def _percent(text: str, label: str) -> float:
    match = re.search(rf"{label}\s+([0-9.]+)%", text)
    assert match, f"no {label!r} in {text!r}"
    return float(match.group(1)) / 100


@pytest.mark.slow
def test_poison_saves_a_backdoored_model_and_the_data(
    poisoned: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert poisoned["code"] == 0
    data = load_poisoned(poisoned["data"])
    ds = load_dataset("digits")
    assert data.n_poisoned == round(0.1 * len(ds.y_train)) and data.target == 0
    assert (data.y[data.indices] == 0).all()
    np.testing.assert_array_equal(data.y_original, ds.y_train)
    model = load_model(poisoned["model"])
    ev = evaluate_backdoor(model, data, ds.x_test, ds.y_test)
    assert ev.attack_success >= 0.9 and ev.clean_accuracy >= 0.9


@pytest.mark.slow
def test_defend_fine_pruning_saves_a_repaired_model(
    poisoned: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    out = poisoned["folder"] / "repaired.pt"
    capsys.readouterr()
    code = main(
        [
            "defend", "--dataset", "digits", "--model", str(poisoned["model"]),
            "--data", str(poisoned["data"]), "--defence", "fine_pruning",
            "--out-model", str(out), "--quiet",
        ]
    )  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    before = text.split("after")[0]
    assert "clean validation inputs" in text  # says which data it used
    asr_before = _percent(before, "attack success")
    asr_after = _percent(text.split("after")[1], "attack success")
    assert asr_after < asr_before
    # The saved file has the pruning written into its weights: it answers like the
    # attack success printed for the in-memory repaired model.
    ds = load_dataset("digits")
    half = len(ds.y_test) // 2
    repaired = load_model(out)
    data = load_poisoned(poisoned["data"])
    ev = evaluate_backdoor(repaired, data, ds.x_test[half:], ds.y_test[half:])
    assert ev.attack_success == pytest.approx(asr_after, abs=0.006)


@pytest.mark.slow
@pytest.mark.parametrize("defence", ["activation_clustering", "strip"])
def test_defend_detectors_report(
    poisoned: dict[str, Any], capsys: pytest.CaptureFixture[str], defence: str
) -> None:
    capsys.readouterr()
    argv = [
        "defend", "--dataset", "digits", "--model", str(poisoned["model"]),
        "--data", str(poisoned["data"]), "--defence", defence, "--quiet",
    ]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    if defence == "strip":
        assert "triggered test inputs flagged" in text
    else:
        assert "F1" in text and "target class 0" in text


def test_help_explains(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("poison", "defend"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert "clean" in text and "example:" in text


def test_errors_name_the_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["poison", "--dataset", "digits", "--fraction", "1.5", "--quiet"]) == 2
    assert "fraction" in capsys.readouterr().err
    assert main(["defend", "--dataset", "digits", "--val-fraction", "0", "--quiet"]) == 2
    assert "val-fraction" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros(3))
    with pytest.raises(ValueError, match="advml poison"):
        load_poisoned(bad)
