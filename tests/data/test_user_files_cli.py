"""``--dataset`` with the user's files from the command line: a CSV table of raw wine
features and an image folder, through ``advml attack`` and ``advml audit``."""

from __future__ import annotations

import json
from html import unescape
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_wine
from torch import nn

from advml.cli import main
from advml.models import TorchClassifier
from advml.models.architectures import build
from advml.models.io import save_model


@pytest.fixture(scope="module")
def wine_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """wine.csv (13 raw features, label column 'cultivar') and an MLP saved by advml."""
    root = tmp_path_factory.mktemp("wine")
    data = load_wine()
    x, y = data.data.astype(np.float32), data.target
    header = ",".join([f"f{i}" for i in range(13)] + ["cultivar"])
    rows = [",".join([*(f"{v:.6g}" for v in row), str(c)]) for row, c in zip(x, y, strict=True)]
    (root / "wine.csv").write_text(header + "\n" + "\n".join(rows))
    x = np.loadtxt(root / "wine.csv", delimiter=",", skiprows=1, dtype=np.float32)[:, :13]
    torch.manual_seed(0)
    net = build("mlp", input_shape=(13,), n_classes=3, hidden=(16,))
    mean, std = x.mean(0), x.std(0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    xt, yt = torch.tensor((x - mean) / std), torch.tensor(y)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    model = TorchClassifier(
        net,
        input_shape=(13,),
        n_classes=3,
        bounds=(float(x.min()), float(x.max())),
        preprocessing=(mean, std),
    )
    save_model(model, root / "wine.pt")
    return {"csv": root / "wine.csv", "model": root / "wine.pt", "x": x}  # type: ignore[dict-item]


def test_attack_on_a_csv_keeps_each_feature_in_its_range_and_relative_ball(
    wine_files, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "adv.npz"
    argv = ["attack", "--dataset", str(wine_files["csv"]), "--label-column", "cultivar"]
    argv += ["--model", str(wine_files["model"]), "--eps", "0.1", "--set", "steps=10"]
    with pytest.warns(UserWarning, match="min and max per feature"):
        code = main([*argv, "--n-samples", "30", "--out", str(out), "--quiet"])
    assert code == 0
    x_all = wine_files["x"]
    low, high = x_all.min(0), x_all.max(0)
    with np.load(out) as data:
        x, x_adv = data["x"], data["x_adv"]
    assert x.shape == (30, 13)
    assert (x_adv >= low - 1e-6).all() and (x_adv <= high + 1e-6).all()
    tol = 4 * np.finfo(np.float32).eps * np.maximum(np.abs(high), 1)
    assert (np.abs(x_adv - x) <= 0.1 * (high - low) + tol).all()
    assert np.abs(x_adv - x)[:, 12].max() > 1.0  # proline (278..1680) moves by up to 140
    assert "eps_scale='relative'" in capsys.readouterr().out


def test_audit_on_a_csv_states_eps_scale_limit_and_bounds(wine_files, tmp_path: Path) -> None:
    out = tmp_path / "audit"
    argv = ["audit", "--quick", "--dataset", str(wine_files["csv"]), "--label-column"]
    argv += ["cultivar", "--model", str(wine_files["model"]), "--sections", "evasion"]
    argv += ["--eps", "0,0.1", "--n-samples", "20", "--limit", "60", "--out", str(out)]
    with pytest.warns(UserWarning, match="min and max per feature"):
        assert main([*argv, "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    dataset = report["dataset"]
    assert dataset["limit"] == 60 and dataset["n_test"] <= 60 and dataset["n_train"] == 60
    assert dataset["eps_scale"] == "relative" and len(dataset["feature_bounds"][0]) == 13
    evasion = report["sections"]["evasion"]
    assert evasion["eps_scale"] == "relative"
    lo, hi = evasion["feature_range"]
    assert lo < 1 < 1000 < hi  # hue's range and proline's
    assert "of its range" in evasion["verdict"]["text"]
    assert report["config"]["eps_scale"] == "relative"
    html = unescape((out / "report.html").read_text())  # the page escapes the quote
    assert "bounds per feature; eps read as a fraction of each feature's range" in html


def test_attack_on_an_image_folder(tmp_path: Path) -> None:
    root = tmp_path / "pics"
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(12):
            pixels = rng.integers(0, 256, (20, 16), dtype=np.uint8)
            Image.fromarray(pixels).save(root / cls / f"{i}.png")
    torch.manual_seed(0)
    net = build("mlp", input_shape=(1, 8, 8), n_classes=2, hidden=(8,))
    model_file = save_model(
        TorchClassifier(net, input_shape=(1, 8, 8), n_classes=2), tmp_path / "m.pt"
    )
    out = tmp_path / "adv.npz"
    code = main(
        [
            "attack",
            "--dataset",
            str(root),
            "--input-shape",
            "1,8,8",
            "--limit",
            "10",
            "--model",
            str(model_file),
            "--attack",
            "fgsm",
            "--eps",
            "0.05",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    with np.load(out) as data:
        assert data["x"].shape[1:] == (1, 8, 8) and len(data["x"]) <= 10
        assert np.abs(data["x_adv"] - data["x"]).max() <= 0.05 + 1e-6


def test_bad_data_flags_exit_2_with_the_reason(
    wine_files, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["attack", "--dataset", str(wine_files["csv"]), "--model", str(wine_files["model"])]
    assert main([*argv, "--label-column", "nope", "--quiet"]) == 2
    assert "label_column='nope' is not a column" in capsys.readouterr().err
    assert main([*argv, "--bounds", "zero,one", "--quiet"]) == 2
    assert "--bounds 'zero,one' is neither LOW,HIGH" in capsys.readouterr().err


def test_audit_config_data_fields_round_trip_and_are_checked() -> None:
    from advml.audit import AuditConfig
    from advml.audit.config_file import config_to_yaml, parse_config

    config = AuditConfig(
        dataset="t.csv", label_column="y", limit=100, data_bounds=[[0, 1], [2, 3]]
    ).with_(eps_scale="absolute")
    again = parse_config(config_to_yaml(config))
    assert again.to_dict() == config.to_dict()
    with pytest.raises(ValueError, match="eps_scale must be one of 'relative', 'absolute'"):
        AuditConfig(eps_scale="percent")
    with pytest.raises(ValueError, match="limit must be >= 1"):
        AuditConfig(limit=0)
