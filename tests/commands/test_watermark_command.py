"""``advml watermark embed|verify|attack`` from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from advml.cli import main
from advml.data import load_dataset
from advml.models import TorchClassifier, load_model, save_model, train
from advml.models.architectures import build
from advml.watermark import load_key, verify


def _train_mlp(seed: int) -> TorchClassifier:
    """A digits MLP trained on advml's own digits split (what the CLI evaluates on)."""
    import torch

    ds = load_dataset("digits")
    torch.manual_seed(seed)
    module = build("mlp", input_shape=ds.input_shape, n_classes=ds.n_classes)
    model = TorchClassifier(module, input_shape=ds.input_shape, n_classes=ds.n_classes)
    train(model, ds.x_train, ds.y_train, epochs=10, seed=seed, show_progress=False)
    return model


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The owner's model, an independently trained one, and the owner's Uchida embedding."""
    folder = tmp_path_factory.mktemp("watermark-cli")
    owner, other = folder / "owner.pt", folder / "other.pt"
    save_model(_train_mlp(0), owner)
    save_model(_train_mlp(7), other)
    return {"owner": owner, "other": other, "folder": folder}


@pytest.fixture(scope="module")
def embedded(models: dict[str, Path]) -> dict[str, Any]:
    """``advml watermark embed --scheme uchida`` run once for the module."""
    folder = models["folder"]
    marked, key = folder / "marked.pt", folder / "owner.key.npz"
    code = main(
        [
            "watermark", "embed", "--scheme", "uchida", "--key", "owner secret",
            "--dataset", "digits", "--model", str(models["owner"]),
            "--out-model", str(marked), "--out-key", str(key), "--quiet",
        ]
    )  # fmt: skip
    return {"code": code, "marked": marked, "key": key}


def test_embed_writes_a_verified_model_and_the_key(
    embedded: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert embedded["code"] == 0
    assert embedded["marked"].is_file() and embedded["key"].is_file()
    key = load_key(embedded["key"])
    assert key.scheme == "uchida" and key.secret == "owner secret" and key.size == 64
    model = load_model(embedded["marked"])
    assert verify(model, key).bit_error_rate == 0.0


def test_verify_claims_the_marked_model(
    embedded: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["watermark", "verify", "--dataset", "digits", "--key", str(embedded["key"])]
    capsys.readouterr()
    assert main([*argv, "--model", str(embedded["marked"])]) == 0
    text = capsys.readouterr().out
    assert "VERIFIED" in text and "64 of 64" in text
    assert main([*argv, "--model", str(embedded["marked"]), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["verified"] is True and data["matches"] == 64
    assert data["chance_probability"] == pytest.approx(2.0**-64)


def test_verify_does_not_claim_an_independent_model(
    embedded: dict[str, Any], models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["watermark", "verify", "--dataset", "digits", "--key", str(embedded["key"])]
    for suspect in ("other", "owner"):  # the owner's model *before* embedding is not marked
        capsys.readouterr()
        assert main([*argv, "--model", str(models[suspect]), "--json"]) == 1
        data = json.loads(capsys.readouterr().out)
        assert data["verified"] is False and data["chance_probability"] > 0.01
        assert 16 <= data["matches"] <= 48


def test_attack_prints_the_robustness_table(
    embedded: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "table.json"
    code = main(
        [
            "watermark", "attack", "--dataset", "digits", "--model", str(embedded["marked"]),
            "--key", str(embedded["key"]), "--attacks", "prune,ftll,preprocess",
            "--json", str(out), "--quiet",
        ]
    )  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "watermark scheme: uchida" in text
    for label in ("none", "prune(", "ftll(", "preprocess("):
        assert label in text
    rows = json.loads(out.read_text())
    assert [r["attack"].split("(")[0] for r in rows] == ["none", "prune", "ftll", "preprocess"]
    assert rows[0]["detected"] is True
    # Pruning half of every layer and re-training the head leave the fc2 signature intact;
    # preprocessing inputs cannot change weights, so white-box verification does not apply.
    assert rows[1]["detected"] is True and rows[2]["detected"] is True
    assert rows[3]["detected"] is None and "weights" in rows[3]["note"]
    assert f"preprocess(): {rows[3]['note']}" in text  # the reason is printed too


def test_trigger_set_round_trip_through_the_cli(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marked, key = tmp_path / "adi.pt", tmp_path / "adi.key.npz"
    code = main(
        [
            "watermark", "embed", "--scheme", "adi", "--set", "n_triggers=40",
            "--set", "epochs=8", "--key", "7", "--dataset", "digits",
            "--model", str(models["owner"]), "--out-model", str(marked),
            "--out-key", str(key), "--quiet",
        ]
    )  # fmt: skip
    assert code == 0
    assert "Adi(n_triggers=40, epochs=8)" in capsys.readouterr().out
    argv = ["watermark", "verify", "--dataset", "digits", "--key", str(key), "--json"]
    assert main([*argv, "--model", str(marked)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["verified"] and data["queries"] == 40 and data["chance_probability"] < 1e-6
    assert main([*argv, "--model", str(models["other"])]) == 1
    assert json.loads(capsys.readouterr().out)["chance_probability"] > 0.01


def test_lists_schemes_and_attacks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["watermark", "embed", "--list"]) == 0
    text = capsys.readouterr().out
    for name in ("uchida", "adi", "content", "noise", "unrelated", "frontier"):
        assert name in text
    assert main(["watermark", "attack", "--key", "unused", "--list"]) == 0
    text = capsys.readouterr().out
    for name in ("ftll", "ftal", "rtll", "rtal", "prune", "fine_prune", "distill", "copycat"):
        assert name in text


def test_bad_input_is_named_and_exits_2(
    models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = ["--dataset", "digits", "--model", str(models["owner"])]
    capsys.readouterr()
    assert main(["watermark", "embed", "--scheme", "nope", *model]) == 2
    err = capsys.readouterr().err
    assert err.startswith("advml watermark: error:") and "'nope'" in err

    assert main(["watermark", "embed", "--scheme", "adi", "--set", "n_triggers=0", *model]) == 2
    assert "n_triggers" in capsys.readouterr().err

    missing = tmp_path / "no-such.key.npz"
    assert main(["watermark", "verify", "--key", str(missing), *model]) == 2
    err = capsys.readouterr().err
    assert err.startswith("advml watermark: error:") and str(missing) in err

    corrupt = tmp_path / "corrupt.key.npz"
    corrupt.write_bytes(b"this is not a key")
    for action in ("verify", "attack"):
        assert main(["watermark", action, "--key", str(corrupt), *model]) == 2
        err = capsys.readouterr().err
        assert err.startswith("advml watermark: error:")
        assert "not a readable watermark key" in err

    other_npz = tmp_path / "arrays.npz"
    np.savez(other_npz, a=np.zeros(3))
    assert main(["watermark", "verify", "--key", str(other_npz), *model]) == 2
    assert "not an advml watermark key" in capsys.readouterr().err

    assert main(["watermark", "attack", "--key", str(corrupt), "--attacks", "nope", *model]) == 2
    assert "'nope'" in capsys.readouterr().err
    code = main(["watermark", "attack", "--key", str(corrupt), "--attacker-fraction", "2", *model])
    assert code == 2
    assert "--attacker-fraction" in capsys.readouterr().err


def test_verify_on_a_model_of_another_architecture_says_why(
    embedded: dict[str, Any], models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    # The Uchida key reads the MLP's 'fc2'; a CNN has no such layer. Not verified, exit 1,
    # with the reason, never a traceback.
    torch.manual_seed(0)
    cnn = models["folder"] / "cnn.pt"
    module = build("cnn", input_shape=(1, 8, 8), n_classes=10)
    save_model(TorchClassifier(module, input_shape=(1, 8, 8), n_classes=10), cnn)
    argv = ["watermark", "verify", "--dataset", "digits", "--key", str(embedded["key"])]
    capsys.readouterr()
    assert main([*argv, "--model", str(cnn)]) == 1
    text = capsys.readouterr().out
    assert "not verified" in text and "reason" in text and "'fc2'" in text
    assert "matches" not in text  # nothing was read, so no match count is shown
    assert main([*argv, "--model", str(cnn), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["verified"] is False and data["applicable"] is True
    assert "'fc2'" in data["reason"] and data["chance_probability"] == 1.0
