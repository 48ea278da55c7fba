"""``advml adversarial-train`` from the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from advml.cli import main
from advml.data import load_dataset
from advml.models import TorchClassifier, load_model


def test_trains_saves_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "robust.pt"
    code = main(
        [
            "adversarial-train", "--method", "fgsm", "--eps", "0.1", "--epochs", "2",
            "--dataset", "digits", "--n-samples", "50", "--out", str(out), "--quiet",
        ]
    )  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "FGSMTraining(eps=0.1, epochs=2)" in text
    assert "accuracy under PGD-20" in text and str(out) in text
    model = load_model(out)
    assert isinstance(model, TorchClassifier)
    ds = load_dataset("digits")
    assert model.input_shape == ds.input_shape
    assert float((model.predict(ds.x_test) == ds.y_test).mean()) > 0.5


def test_lists_methods(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["adversarial-train", "--list"]) == 0
    text = capsys.readouterr().out
    for name in ("fgsm_training", "pgd_training", "trades", "standard"):
        assert name in text


def test_bad_method_and_setting_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "m.pt")
    code = main(["adversarial-train", "--method", "nope", "--dataset", "digits", "--out", out])
    assert code == 2
    assert "nope" in capsys.readouterr().err
    assert main(["adversarial-train", "--eps", "-1", "--dataset", "digits", "--out", out]) == 2
    assert "eps" in capsys.readouterr().err
    code = main(["adversarial-train", "--init", "model", "--dataset", "digits", "--out", out])
    assert code == 2
    assert "--init model" in capsys.readouterr().err
    (tmp_path / "taken").write_text("a file, not a folder")
    under_a_file = str(tmp_path / "taken" / "m.pt")
    assert main(["adversarial-train", "--dataset", "digits", "--out", under_a_file]) == 2
    assert "--out" in capsys.readouterr().err
