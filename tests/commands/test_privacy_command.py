"""``advml membership`` and ``advml invert`` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from advml.cli import main
from advml.models import TorchClassifier, save_model

PNG = b"\x89PNG\r\n\x1a\n"
FAST = ["--dataset", "digits", "--quiet", "--seed", "1"]


@pytest.fixture
def model_file(tmp_path: Path, digits_mlp: TorchClassifier) -> Path:
    path = tmp_path / "digits-mlp.pt"
    save_model(digits_mlp, path)
    return path


@pytest.mark.slow
def test_membership_trains_an_overfit_target_and_reports_every_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    roc, out = tmp_path / "roc.png", tmp_path / "m.json"
    code = main(
        [
            "membership", *FAST, "--target-size", "150",
            "--attacks", "loss_threshold,label_only", "--set", "calibration=population",
            "--set", "n_perturbations=5", "--roc", str(roc), "--json", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "150 members, 150 non-members" in text and "TPR@0.1%" in text
    assert roc.read_bytes().startswith(PNG)
    numbers = json.loads(out.read_text())
    assert numbers["target"]["train_accuracy"] == 1.0  # overfit, as asked
    loss = numbers["attacks"]["loss_threshold"]
    for key in ("auc", "tpr_at_0.1%_fpr", "tpr_at_1%_fpr", "balanced_accuracy", "advantage"):
        assert 0.0 <= loss[key] <= 1.0
    # A target at 100% training accuracy and about 90% on the others leaks: the members'
    # loss is lower, so the attack beats guessing (seeded; measured 0.58 here).
    assert loss["auc"] > 0.52
    assert loss["advantage"] == pytest.approx(2 * loss["balanced_accuracy"] - 1)
    assert loss["queries"] == 300 + (1797 - 300)  # candidates + the population calibration
    # label_only asks 1 + 5 queries per record.
    assert numbers["attacks"]["label_only"]["queries"] == 6 * 1797
    assert set(numbers["roc"]) == {"loss_threshold", "label_only"}


def test_a_labels_only_api_skips_the_score_attacks_and_runs_label_only(
    model_file: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "m.json"
    code = main(
        [
            "membership", *FAST, "--model", str(model_file), "--n-eval", "60",
            "--access", "labels", "--attacks", "loss_threshold,label_only",
            "--set", "calibration=population", "--set", "n_perturbations=4", "--json", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "loss_threshold        skipped: LossThreshold needs the model's scores" in text
    assert "labels only" in text
    numbers = json.loads(out.read_text())
    assert "skipped" in numbers["attacks"]["loss_threshold"]
    # Counted through the CallableClassifier: (60 + 60 candidates + the other 300 test
    # records, the attacker's population) x (1 + 4 perturbations).
    assert numbers["attacks"]["label_only"]["queries"] == 5 * (120 + 300)


def test_output_defence_and_scores_api_are_attacked_as_a_black_box(
    model_file: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "m.json"
    code = main(
        [
            "membership", *FAST, "--model", str(model_file), "--n-eval", "50",
            "--access", "scores", "--defence", "rounding", "--defence-set", "decimals=1",
            "--attacks", "confidence_threshold", "--set", "calibration=population",
            "--json", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    assert (
        "CallableClassifier behind probabilities rounded to 1 decimals" in capsys.readouterr().out
    )
    # 50 + 50 candidates and the other 310 test records for the calibration, all counted.
    assert json.loads(out.read_text())["attacks"]["confidence_threshold"]["queries"] == 410


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--attacks", "nope"], "--attacks"),
        (["--set", "colour=blue"], "colour"),
        (["--target-size", "1"], "--target-size"),
        (["--target-size", "5000"], "--target-size"),
        (["--shadows", "1", "--attacks", "lira"], "--shadows"),
        (["--set", "calibration=sometimes", "--attacks", "loss_threshold"], "calibration"),
    ],
)
def test_membership_bad_options_are_named(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["membership", *FAST, *argv]) == 2
    assert named in capsys.readouterr().err


def test_membership_lists_attacks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["membership", "--list"]) == 0
    text = capsys.readouterr().out
    assert "lira" in text and "label_only" in text and "needs labels" in text


def test_invert_reconstructs_every_class_the_judge_recognises_most(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grid, out = tmp_path / "inv.png", tmp_path / "inv.json"
    code = main(
        [
            "invert", *FAST, "--model", str(model_file), "--steps", "60",
            "--out", str(grid), "--json", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "judge recognises" in text and "white-box" in text
    assert grid.read_bytes().startswith(PNG)
    numbers = json.loads(out.read_text())
    assert len(numbers["per_class"]) == 10
    # Measured 100% with 60-200 steps on this model; the target is 80%.
    assert numbers["evaluation"]["recognition_rate"] >= 0.8
    assert numbers["inversion"]["queries"] == 10 * 61  # one per class per step, plus the last


def test_invert_through_a_scores_api_uses_counted_queries(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "inv.json"
    code = main(
        [
            "invert", *FAST, "--model", str(model_file), "--access", "scores",
            "--classes", "0,1", "--steps", "5", "--set", "n_directions=3", "--json", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    assert "zeroth-order" in capsys.readouterr().out
    # 2 classes x 5 steps x (2 x 3 directions), plus one final look at the 2 images.
    assert json.loads(out.read_text())["inversion"]["queries"] == 2 * 5 * 6 + 2


def test_invert_refuses_a_labels_only_api_and_bad_classes(
    model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["invert", *FAST, "--model", str(model_file), "--access", "labels"]) == 2
    assert "labels only" in capsys.readouterr().err
    assert main(["invert", *FAST, "--model", str(model_file), "--classes", "0,12"]) == 2
    assert "target_class" in capsys.readouterr().err
    assert main(["invert", *FAST, "--model", str(model_file), "--classes", "a"]) == 2
    assert "--classes" in capsys.readouterr().err
