"""``advml train``, ``advml membership`` and ``advml invert`` read ``--dataset`` as the
user's files (a CSV table, an image folder) with the data flags, like the other commands."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits, load_wine

from advml.cli import main
from advml.data import load_data
from advml.models import load_model
from advml.models.torch import TorchClassifier


@pytest.fixture(scope="module")
def wine_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """wine as a CSV table: 13 raw features, label column 'y' (not the last)."""
    data = load_wine()
    path = tmp_path_factory.mktemp("wine") / "wine.csv"
    header = ",".join(["y"] + [f"f{i}" for i in range(13)])
    rows = [
        ",".join([str(c), *(f"{v:.6g}" for v in row)])
        for row, c in zip(data.data, data.target, strict=True)
    ]
    path.write_text(header + "\n" + "\n".join(rows))
    return path


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three class folders ('zero', 'one', 'two') of 8x8 grayscale PNGs of the digits."""
    root = tmp_path_factory.mktemp("folder") / "digits"
    digits = load_digits()
    for label, name in enumerate(("zero", "one", "two")):
        (root / name).mkdir(parents=True)
        images = digits.images[digits.target == label][:40]
        for i, image in enumerate(images):
            pixels = np.round(image * 255 / 16).astype(np.uint8)
            Image.fromarray(pixels, mode="L").save(root / name / f"{i}.png")
    return root


def _quiet(argv: list[str]) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the table's bounds-from-data warning
        return main([*argv, "--quiet"])


def _data(flags: list[str]) -> dict[str, str]:
    return dict(zip(flags[::2], flags[1::2], strict=True))


CASES = {
    "csv": lambda csv, folder: ["--dataset", str(csv), "--label-column", "y"],
    "folder": lambda csv, folder: ["--dataset", str(folder)],
}


@pytest.mark.parametrize("kind", list(CASES))
def test_train_membership_invert_on_the_users_files(
    kind: str,
    wine_csv: Path,
    digit_folder: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    flags = CASES[kind](wine_csv, digit_folder)
    given = _data(flags)
    ds = (
        load_data(given["--dataset"], label_column=given.get("--label-column"), seed=0)
        if kind == "folder"
        else None
    )
    model_file = tmp_path / "model.pt"
    assert _quiet(["train", *flags, "--architecture", "mlp", "--out", str(model_file)]) == 0
    out = capsys.readouterr().out
    name = "wine" if kind == "csv" else "digits"
    assert f"mlp on {name}: test accuracy" in out
    model = load_model(model_file)
    assert isinstance(model, TorchClassifier)
    if kind == "csv":
        assert model.input_shape == (13,) and model.n_classes == 3
        # The file keeps the envelope of the table's per-feature ranges (commands
        # given the table again adopt each feature's own range: adopt_data_bounds).
        assert model.bounds == pytest.approx((0.13, 1680.0), rel=1e-6)
    else:
        assert ds is not None
        assert model.input_shape == (1, 8, 8) and model.n_classes == 3
        assert ds.class_names == ("one", "two", "zero")

    report = tmp_path / "membership.json"
    argv = ["membership", *flags, "--model", str(model_file), "--n-eval", "20"]
    assert _quiet([*argv, "--attacks", "loss_threshold", "--json", str(report)]) == 0
    numbers = json.loads(report.read_text())
    assert numbers["n_members"] == 20 and numbers["n_non_members"] == 20
    assert f"on {name}" in capsys.readouterr().out
    # Without --model the target is trained here on the same files.
    argv = ["membership", *flags, "--target-size", "30", "--epochs", "3"]
    assert _quiet([*argv, "--attacks", "loss_threshold"]) == 0
    assert "loss_threshold" in capsys.readouterr().out

    inverted = tmp_path / "invert.json"
    argv = ["invert", *flags, "--model", str(model_file), "--steps", "5", "--classes", "0,2"]
    assert _quiet([*argv, "--json", str(inverted)]) == 0
    text = capsys.readouterr().out
    assert f"on {name}" in text
    assert ("n/a (not images)" in text) == (kind == "csv")
    assert json.loads(inverted.read_text())["inversion"]["classes"] == [0, 2]


def test_folder_class_order_and_limit_reach_the_commands(
    digit_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--classes orders an image folder's classes for membership; for invert (whose
    --classes picks the classes to reconstruct) --model-classes does; --limit samples."""
    model_file = tmp_path / "model.pt"
    argv = ["train", "--dataset", str(digit_folder), "--classes", "zero,one,two"]
    assert _quiet([*argv, "--limit", "60", "--out", str(model_file)]) == 0
    assert "mlp on digits" in capsys.readouterr().out
    argv = ["invert", "--dataset", str(digit_folder), "--model", str(model_file)]
    argv += ["--model-classes", "zero,one,two", "--classes", "1", "--steps", "3"]
    assert _quiet(argv) == 0
    assert "against" in capsys.readouterr().out
    code = _quiet(["membership", "--dataset", str(tmp_path / "nope.csv"), "--n-eval", "5"])
    assert code == 2
    assert "nope.csv' does not exist" in capsys.readouterr().err


def test_reference_models_of_two_tables_of_one_name_are_not_confused(
    wine_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two different tables named data.csv: ``advml train`` trains each, not one read back
    from the cache of reference models (as a folder called 'digits' is not the built-in
    digits: the folder test above)."""
    lines = wine_csv.read_text().splitlines()
    first, second = tmp_path / "a" / "data.csv", tmp_path / "b" / "data.csv"
    for path, rows in ((first, lines[1:101]), (second, lines[80:])):
        path.parent.mkdir()
        path.write_text("\n".join([lines[0], *rows]))
    weights = []
    for path in (first, second):
        out = path.parent / "m.pt"
        argv = ["train", "--dataset", str(path), "--label-column", "y", "--out", str(out)]
        assert _quiet(argv) == 0
        model = load_model(out)
        assert isinstance(model, TorchClassifier)
        weights.append(next(iter(model.module.state_dict().values())).clone())
    # Trained on different rows: not the first table's model read back from the cache.
    assert not bool((weights[0] == weights[1]).all())
