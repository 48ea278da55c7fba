"""``advml attack --model FILE`` on each format gives the robust accuracy that the same
attack gives in Python on ``load_model(FILE)``; the flags reach the loader."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from advml import registry
from advml.cli import main
from advml.data import load_dataset
from advml.models import how_loaded, load_model

N = 24  # inputs attacked: enough for a few successes and failures, fast on 2 cores


@functools.cache
def _trained_net() -> nn.Module:
    """A small BatchNorm + GELU + residual network trained briefly on the digits."""

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(6, 6, 3, padding=1)
            self.bn = nn.BatchNorm2d(6)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(x + self.bn(self.conv(x)))

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.GELU(), Block(),
        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(6 * 16, 10),
    )  # fmt: skip
    ds = load_dataset("digits")
    x, y = torch.as_tensor(ds.x_train), torch.as_tensor(ds.y_train)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for step in range(60):
        idx = torch.arange(step * 64, step * 64 + 64) % x.shape[0]
        opt.zero_grad()
        nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
        opt.step()
    return net.eval()


def _write(fmt: str, folder: Path) -> tuple[Path, list[str]]:
    """The network in ``fmt``, and the extra flags the CLI needs for it."""
    net = _trained_net()
    x = torch.as_tensor(load_dataset("digits").x_test[:2])
    if fmt == "torchscript":
        path = folder / "net.ts"
        torch.jit.save(torch.jit.trace(net, x), str(path))
        return path, []
    if fmt == "export":
        path = folder / "net.pt2"
        dims = ({0: torch.export.Dim("batch")},)
        torch.export.save(torch.export.export(net, (x,), dynamic_shapes=dims), str(path))
        return path, []
    if fmt == "onnx":
        path = folder / "net.onnx"
        dims = ({0: torch.export.Dim("batch")},)
        torch.onnx.export(net, (x,), str(path), dynamic_shapes=dims, verbose=False)
        return path, []
    if fmt == "state_dict":
        # The user's code: the network's class in a module of the working folder.
        (folder / "clinets.py").write_text(
            "import torch\nfrom torch import nn\n\n"
            "class Block(nn.Module):\n"
            "    def __init__(self):\n"
            "        super().__init__()\n"
            "        self.conv = nn.Conv2d(6, 6, 3, padding=1)\n"
            "        self.bn = nn.BatchNorm2d(6)\n\n"
            "    def forward(self, x):\n"
            "        return torch.relu(x + self.bn(self.conv(x)))\n\n"
            "def make(width=6):\n"
            "    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width),\n"
            "        nn.GELU(), Block(), nn.AvgPool2d(2), nn.Flatten(),\n"
            "        nn.Linear(width * 16, 10))\n"
        )
        path = folder / "weights.pt"
        torch.save(net.state_dict(), path)
        return path, ["--model-factory", "clinets:make", "--model-kwargs", '{"width": 6}']
    raise AssertionError(fmt)


def _python_result(path: Path, attack_name: str, settings: dict, **load: object) -> np.ndarray:
    ds = load_dataset("digits")
    model = load_model(path, defaults={"input_shape": ds.input_shape, "classes": 10,
                                       "bounds": ds.bounds}, **load)  # fmt: skip
    sub = ds.subset(n_test=N, seed=0)
    if "seed" in registry.schema("evasion", attack_name):  # as the command does
        settings = {**settings, "seed": 0}
    attack = registry.create("evasion", attack_name, **settings)
    return np.asarray(attack.generate(model, sub.x_test, sub.y_test).y_adv)


@pytest.mark.parametrize("fmt", ["torchscript", "export", "onnx", "state_dict"])
def test_attack_command_matches_python(
    fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "clinets", raising=False)
    path, flags = _write(fmt, tmp_path)
    out = tmp_path / "adv.npz"
    code = main(
        ["attack", "--model", str(path), "--dataset", "digits", "--attack", "pgd", "--eps",
         "0.1", "--set", "steps=5", "--n-samples", str(N), "--out", str(out), "--quiet", *flags]
    )  # fmt: skip
    assert code == 0
    saved = np.load(out)
    factory = {"factory": "clinets:make", "factory_kwargs": {"width": 6}} if flags else {}
    y_adv = _python_result(path, "pgd", {"eps": 0.1, "steps": 5}, **factory)
    np.testing.assert_array_equal(saved["y_adv"], y_adv)
    robust = float((saved["y_adv"] == saved["y"]).mean())
    assert f"accuracy under attack {robust:.1%}" in capsys.readouterr().out
    assert 0 < robust < float((saved["y"] == saved["y"]).mean())  # the attack did something


def test_attack_command_on_a_booster_with_bounds_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    xgb = pytest.importorskip("xgboost")
    ds = load_dataset("digits")
    x = ds.x_train.reshape(len(ds.x_train), -1)
    booster = xgb.train(
        {"objective": "multi:softprob", "num_class": 10, "max_depth": 3},
        xgb.DMatrix(x, label=ds.y_train),
        10,
    )
    path = tmp_path / "trees.ubj"
    booster.save_model(str(path))
    out = tmp_path / "adv.npz"
    argv = [
        "attack",
        "--model",
        str(path),
        "--dataset",
        "digits",
        "--attack",
        "square",
        "--eps",
        "0.2",
        "--set",
        "max_queries=40",
        "--n-samples",
        str(N),
        "--out",
        str(out),
        "--bounds",
        "0,1",
    ]  # fmt: skip  (input shape: the dataset's)
    assert main(argv) == 0
    assert "xgboost -> BoosterClassifier (black-box (scores))" in capsys.readouterr().err
    y_adv = _python_result(
        path, "square", {"eps": 0.2, "max_queries": 40}, input_shape=(1, 8, 8), bounds=(0, 1)
    )
    np.testing.assert_array_equal(np.load(out)["y_adv"], y_adv)


def test_missing_factory_is_an_error_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "weights.pt"
    torch.save(_trained_net().state_dict(), path)
    code = main(["attack", "--model", str(path), "--dataset", "digits", "--n-samples", "4",
                 "--out", str(tmp_path / "a.npz")])  # fmt: skip
    assert code != 0
    assert "--model-factory" in capsys.readouterr().err


def test_audit_config_carries_the_model_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["audit", "--model", "net.onnx", "--input-shape", "1,8,8", "--classes", "10",
            "--bounds", "0,1", "--mean", "0.5", "--std", "0.25", "--model-factory", "m:f",
            "--model-kwargs", '{"a": 1}', "--print-config"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    for line in ("factory: m:f", "input_shape: [1, 8, 8]", "classes: 10", "bounds: [0.0, 1.0]",
                 "mean: [0.5]", "std: [0.25]", "kwargs: {a: 1}"):  # fmt: skip
        assert line in text
    from advml.audit.config_file import parse_config

    config = parse_config(text)
    assert config.model_input_shape == [1, 8, 8] and config.model_kwargs == {"a": 1}


def test_audit_reports_how_the_model_file_loaded(tmp_path: Path) -> None:
    from advml.audit import AuditConfig, run_audit

    path, _ = _write("torchscript", tmp_path)
    config = AuditConfig.quick(model=str(path), n_samples=12, sections=("evasion",),
                               attacks=("fgsm",), eps=(0.0, 0.1))  # fmt: skip
    report = run_audit(config).report
    loaded = report["model"]["loaded"]
    assert loaded["format"] == "torchscript" and loaded["access"] == "white-box"
    assert loaded["settings"]["input_shape"] == "(1, 8, 8) from dataset"
    assert how_loaded(load_model(path, input_shape=(1, 8, 8), bounds=(0, 1))) is not None


def test_bare_skops_gets_its_bounds_from_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import skops.io
    from sklearn.linear_model import LogisticRegression

    ds = load_dataset("digits")
    est = LogisticRegression(max_iter=300).fit(ds.x_train.reshape(len(ds.x_train), -1), ds.y_train)
    path = tmp_path / "bare.skops"
    skops.io.dump(est, path)
    argv = ["attack", "--model", str(path), "--dataset", "digits", "--attack", "fgsm",
            "--eps", "0.1", "--n-samples", str(N), "--out", str(tmp_path / "a.npz"),
            "--bounds", "0,1", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    y_adv = _python_result(path, "fgsm", {"eps": 0.1}, bounds=(0, 1))
    np.testing.assert_array_equal(np.load(tmp_path / "a.npz")["y_adv"], y_adv)
