"""Bad model files, data files, configs and Python-API inputs: one row per case.

Each row builds its input in ``tmp_path``, runs it through the ``advml`` entry point
(in-process, :func:`advml.cli.main`) or the Python API, and checks the exit code or the
exception type and that the message names the parameter, key or file (and the fix where
there is one). The security rows also check that a pickle that would create a marker
file when unpickled was not run.
"""

from __future__ import annotations

import io
import pickle
import resource
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from advml.audit import AuditConfig
from advml.audit.config_file import ConfigError, load_config
from advml.cli import main
from advml.data import load_csv, load_npz
from advml.data.cifar import load_pickle
from advml.evasion import PGD
from advml.models import TorchClassifier, build_architecture, load_model, save_model
from advml.models.checks import NonFiniteModelError


class _Marker:
    """Unpickling this calls ``Path.touch`` on the marker: code from the file runs."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


def _evil_pickle(tmp: Path) -> Path:
    path = tmp / "evil.pkl"
    path.write_bytes(pickle.dumps(_Marker(tmp / "MARKER")))
    return path


def _tiny_model(*, hidden: tuple[int, ...] = (8,)) -> TorchClassifier:
    torch.manual_seed(0)
    net = build_architecture("mlp", input_shape=(1, 8, 8), n_classes=10, hidden=hidden)
    return TorchClassifier(net, input_shape=(1, 8, 8), n_classes=10, bounds=(0.0, 1.0))


def _nan_model_file(tmp: Path) -> Path:
    model = _tiny_model()
    with torch.no_grad():
        model.module.fc1.weight[0, 0] = float("nan")
    return save_model(model, tmp / "nan.pt")


class _InfHead(torch.nn.Module):
    """A network defined outside advml, finite weights, whose logits overflow to inf."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1)) * 1e39 + 1e39


def _audit_inf_model(tmp: Path) -> Any:
    from advml.audit import run_audit
    from advml.data import load_dataset

    torch.manual_seed(0)
    model = TorchClassifier(_InfHead(), input_shape=(1, 8, 8), n_classes=10, bounds=(0.0, 1.0))
    config = AuditConfig.quick(sections=("evasion",), n_samples=20)
    return run_audit(config, model=model, dataset=load_dataset("digits"), show_progress=False)


def _config(tmp: Path, text: str) -> Path:
    path = tmp / "threat.yaml"
    path.write_text(text)
    return path


def _cli(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # argparse's own errors
        return int(e.code or 0)


@dataclass(frozen=True)
class Case:
    """Run ``act(tmp_path)``; expect exit code ``code`` (CLI) or exception ``raises``."""

    act: Callable[[Path], Any]
    names: tuple[str, ...]
    code: int | None = None
    raises: type[BaseException] | None = None
    marker_absent: bool = False


def _bomb_pt(tmp: Path) -> Path:
    """An advml .pt file whose architecture_kwargs claim two 60000-unit layers."""
    path = save_model(_tiny_model(), tmp / "small.pt")
    payload = torch.load(path, weights_only=True)
    payload["architecture_kwargs"]["hidden"] = [60000, 60000]
    bomb = tmp / "bomb.pt"
    torch.save(payload, bomb)
    return bomb


def _label_bomb_npz(tmp: Path) -> Path:
    rng = np.random.default_rng(0)
    y = np.arange(40) % 2
    y[0] = 10**9
    path = tmp / "bomb.npz"
    np.savez(path, x=rng.random((40, 3)), y=y)
    return path


def _csv_with_empty_first_cell(tmp: Path) -> Path:
    path = tmp / "gap.csv"
    rows = ["1,,0"] + [f"{i % 7},{i % 5},{i % 2}" for i in range(40)]
    path.write_text("\n".join(rows) + "\n")
    return path


CASES: dict[str, Case] = {
    # -- security: a flag that switches unpickling on must be a real bool -------------
    "config trust: 'false' (a string) is refused": Case(
        lambda t: _cli(
            [
                "audit",
                "--config",
                str(
                    _config(
                        t,
                        f"model:\n  file: {_evil_pickle(t)}\n  trust: 'false'\n"
                        "data:\n  dataset: digits\n",
                    )
                ),
                "--out",
                str(t / "out"),
                "--quiet",
            ]
        ),
        names=("line 3", "model.trust", "True or False", "without quotes"),
        code=2,
        marker_absent=True,
    ),
    "load_model(trust='false') is refused": Case(
        lambda t: load_model(_evil_pickle(t), trust="false"),  # type: ignore[arg-type]
        names=("trust", "True or False", "'false'"),
        raises=TypeError,
        marker_absent=True,
    ),
    "load_model(trust=1) is refused": Case(
        lambda t: load_model(_evil_pickle(t), trust=1),  # type: ignore[arg-type]
        names=("trust", "True or False"),
        raises=TypeError,
        marker_absent=True,
    ),
    "CIFAR load_pickle(trust='no') is refused": Case(
        lambda t: load_pickle(
            io.BytesIO(_evil_pickle(t).read_bytes()),
            source="batch",
            trust="no",  # type: ignore[arg-type]
        ),
        names=("trust", "True or False"),
        raises=TypeError,
        marker_absent=True,
    ),
    "AuditConfig(trust_model_file='yes') is refused": Case(
        lambda t: AuditConfig(trust_model_file="yes"),  # type: ignore[arg-type]
        names=("trust_model_file", "True or False"),
        raises=TypeError,
    ),
    # -- memory bombs: sizes checked against the file's contents first ----------------
    "npz label 10**9 does not build 10**9 classes": Case(
        lambda t: load_npz(_label_bomb_npz(t)),
        names=("y in bomb.npz", "1000000000", "40 labelled samples", "np.unique"),
        raises=ValueError,
    ),
    "pt architecture_kwargs hidden=[60000, 60000] is refused before building": Case(
        lambda t: load_model(_bomb_pt(t)),
        names=("bomb.pt", "architecture_kwargs", "fc1.weight", "(60000, 64)", "(8, 64)"),
        raises=ValueError,
    ),
    # -- a model with NaN weights is not attacked -------------------------------------
    "advml attack on a NaN model": Case(
        lambda t: _cli(
            [
                "attack",
                "--attack",
                "fgsm",
                "--model",
                str(_nan_model_file(t)),
                "--dataset",
                "digits",
                "--n-samples",
                "10",
                "--out",
                str(t / "adv.npz"),
                "--quiet",
            ]
        ),
        names=("nan.pt", "NaN or infinite", "'fc1.weight'"),
        code=2,
    ),
    "advml audit on a NaN model": Case(
        lambda t: _cli(
            [
                "audit",
                "--quick",
                "--model",
                str(_nan_model_file(t)),
                "--dataset",
                "digits",
                "--out",
                str(t / "audit"),
                "--quiet",
            ]
        ),
        names=("nan.pt", "NaN or infinite", "'fc1.weight'"),
        code=2,
    ),
    "run_audit on a model whose scores overflow to inf": Case(
        _audit_inf_model,
        names=("the model", "NaN or infinite scores", "of 64 inputs"),
        raises=NonFiniteModelError,
    ),
    "PGD().generate on a NaN model": Case(
        lambda t: PGD().generate(load_model(_nan_model_file(t)), np.zeros((2, 1, 8, 8))),
        names=("NaN or infinite", "'fc1.weight'"),
        raises=NonFiniteModelError,
    ),
    # -- x that is not an array of numbers ---------------------------------------------
    "PGD().generate(model, 'abc')": Case(
        lambda t: PGD().generate(_tiny_model(), "abc"),  # type: ignore[arg-type]
        names=("x must hold numbers", "<U3", "strings", "np.asarray"),
        raises=TypeError,
    ),
    "PGD().generate(model, object array)": Case(
        lambda t: PGD().generate(_tiny_model(), np.full((2, 1, 8, 8), None, dtype=object)),
        names=("x must hold numbers", "object", "Python objects"),
        raises=TypeError,
    ),
    "model.predict(list with a string)": Case(
        lambda t: _tiny_model().predict([[["a"] * 8] * 8]),  # type: ignore[arg-type]
        names=("x must hold numbers", "strings"),
        raises=TypeError,
    ),
    # -- --set values ------------------------------------------------------------------
    "--set 'steps=[1,2' (not YAML)": Case(
        lambda t: _cli(["attack", "--attack", "pgd", "--set", "steps=[1,2"]),
        names=("--set", "'steps'", "steps=[1,2", "not valid YAML"),
        code=2,
    ),
    # -- config files ------------------------------------------------------------------
    "config n_samples = 10**23": Case(
        lambda t: load_config(_config(t, "data:\n  n_samples: 100000000000000000000000\n")),
        names=("threat.yaml, line 2", "data.n_samples", "too large"),
        raises=ConfigError,
    ),
    "config unknown attack_settings key": Case(
        lambda t: _cli(
            [
                "audit",
                "--print-config",
                "--config",
                str(_config(t, "evasion:\n  attack_settings:\n    pgd:\n      stepz: 3\n")),
            ]
        ),
        names=("line 4", "attack_settings['pgd']['stepz']", "steps"),
        code=2,
    ),
    "config bad attack_settings value": Case(
        lambda t: load_config(
            _config(t, "evasion:\n  attack_settings:\n    pgd:\n      steps: 0\n")
        ),
        names=("line 4", "attack_settings['pgd']['steps']", "steps must be >= 1"),
        raises=ConfigError,
    ),
    "config unknown attack in attack_settings": Case(
        lambda t: load_config(_config(t, "evasion:\n  attack_settings:\n    pgdd: {steps: 3}\n")),
        names=("line 3", "attack_settings['pgdd']", "pgd"),
        raises=ConfigError,
    ),
    "config unknown section_settings key": Case(
        lambda t: _cli(
            [
                "audit",
                "--print-config",
                "--config",
                str(
                    _config(
                        t,
                        "sections:\n  settings:\n    backdoor:\n      fraction: 0.1\n"
                        "      fractionx: 0.2\n",
                    )
                ),
            ]
        ),
        names=("line 5", "section_settings['backdoor']['fractionx']", "fraction"),
        code=2,
    ),
    "config unknown section in section_settings": Case(
        lambda t: load_config(_config(t, "sections:\n  settings:\n    backdor: {fraction: 0}\n")),
        names=("line 3", "section_settings['backdor']", "backdoor"),
        raises=ConfigError,
    ),
    "config duplicate key": Case(
        lambda t: load_config(_config(t, "seed: 1\nevasion:\n  eps: [0.1]\nseed: 2\n")),
        names=("line 4", "'seed'", "lines 1 and 4"),
        raises=ConfigError,
    ),
    "config duplicate nested key": Case(
        lambda t: load_config(
            _config(t, "evasion:\n  attack_settings:\n    pgd: {steps: 3, steps: 4}\n")
        ),
        names=("line 3", "'steps'", "given twice"),
        raises=ConfigError,
    ),
    # -- CSV ---------------------------------------------------------------------------
    "CSV whose first row has an empty cell": Case(
        lambda t: load_csv(_csv_with_empty_first_cell(t)),
        names=("gap.csv line 1", "feature column '1' is empty"),
        raises=ValueError,
    ),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_input(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if case.raises is not None:
        with pytest.raises(case.raises) as info:
            case.act(tmp_path)
        message = str(info.value)
    else:
        assert case.act(tmp_path) == case.code
        captured = capsys.readouterr()
        message = captured.err + captured.out
    for name in case.names:
        assert name in message, f"{name!r} not in {message!r}"
    if case.marker_absent:
        assert not (tmp_path / "MARKER").exists(), "the pickle's code ran"


def test_the_marker_pickle_does_run_when_trusted(tmp_path: Path) -> None:
    """The security rows would pass vacuously if the pickle could not create its marker."""
    with pytest.raises(ValueError):  # it unpickles to a Path, not a classifier
        load_model(_evil_pickle(tmp_path), trust=True, bounds=(0.0, 1.0))
    assert (tmp_path / "MARKER").exists()


def test_the_bomb_file_is_refused_without_allocating(tmp_path: Path) -> None:
    """Two 60000-unit layers would take 14.4 GB; the refusal must take next to nothing."""
    bomb = _bomb_pt(tmp_path)
    assert bomb.stat().st_size < 100_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    with pytest.raises(ValueError, match="architecture_kwargs"):
        load_model(bomb)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 512


def test_scalar_eps_and_attacks_are_lists_of_one(tmp_path: Path) -> None:
    """``eps: 0.1`` and ``attacks: pgd`` in a config mean one-element lists."""
    config = load_config(_config(tmp_path, "evasion:\n  eps: 0.1\n  attacks: pgd\n"))
    assert config.eps == (0.1,)
    assert config.attacks == ("pgd",)
    code = _cli(["audit", "--print-config", "--config", str(tmp_path / "threat.yaml")])
    assert code == 0


def test_csv_header_with_an_unnamed_index_column_is_still_a_header(tmp_path: Path) -> None:
    """pandas writes ``,a,b,label``: the empty first cell does not hide the header."""
    path = tmp_path / "indexed.csv"
    rows = [",a,b,label"] + [f"{i},{i % 7},{i % 5},{i % 2}" for i in range(40)]
    path.write_text("\n".join(rows) + "\n")
    ds = load_csv(path, label_column="label")
    assert ds.n_train + ds.n_test == 40
    assert ds.input_shape == (3,)


def test_sparse_but_sane_labels_still_load(tmp_path: Path) -> None:
    """Labels 0 and 5 over 40 samples: six classes, some empty, is allowed."""
    rng = np.random.default_rng(0)
    path = tmp_path / "sparse.npz"
    np.savez(path, x=rng.random((40, 3)), y=(np.arange(40) % 2) * 5)
    assert load_npz(path).n_classes == 6
