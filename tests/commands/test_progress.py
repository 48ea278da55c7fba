"""Long commands say what they will do and show a progress bar before their first unit of
work (so within a moment of starting, however slow the machine); ``--quiet`` silences both.

No test measures time: each wraps the command's first unit of work (a training batch, a
copycat training round, a removal attack) and reads what stderr held when it began.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from advml.cli import main

BAR = re.compile(r"\b0/\d+ \[")
"""tqdm's first frame: ``desc:   0%|          | 0/N [00:00<?, ?it/s]``."""


@pytest.fixture
def loud(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Bars on (the suite's conftest silences them), restored afterwards."""
    monkeypatch.delenv("ADVML_QUIET", raising=False)
    yield


def _spy(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    owner: Any,
    name: str,
) -> list[str]:
    """Wrap ``owner.name``; the first call records the stderr written until then."""
    seen: list[str] = []
    original: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not seen:
            seen.append(capsys.readouterr().err)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return seen


def _check(seen: list[str], plan: str) -> None:
    assert seen, "the command never reached its first unit of work"
    before = seen[0]
    assert plan in before, before
    assert "2-core CPU" in before  # the plan line says roughly how long
    assert BAR.search(before), before


def test_adversarial_train_announces_and_shows_a_bar_before_the_first_batch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, loud: None
) -> None:
    from advml.models import training

    seen = _spy(monkeypatch, capsys, training, "_epoch")
    argv = [
        "adversarial-train", "--method", "fgsm", "--epochs", "1", "--dataset", "digits",
        "--n-samples", "20", "--out", str(tmp_path / "r.pt"),
    ]  # fmt: skip
    assert main(argv) == 0
    _check(seen, "advml adversarial-train: fgsm_training on digits for 1 epochs")
    # The bar counts batches (with the epoch in its label), so its ETA shows after one.
    assert re.search(r"epoch 1/1: .*\| 0/\d+ \[", seen[0]), seen[0]


def test_adversarial_train_defaults_to_a_laptop_sized_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, loud: None
) -> None:
    from advml.defences.training.base import RobustTraining

    def stop(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt  # the plan is all this test needs

    monkeypatch.setattr(RobustTraining, "fit", stop)
    assert main(["adversarial-train", "--dataset", "digits", "--out", str(tmp_path / "r.pt")])
    err = capsys.readouterr().err
    assert "pgd_training on digits for 5 epochs" in err
    assert "about 2 s on a 2-core CPU" in err  # 5 epochs at 0.4 s (measured)


def test_adversarial_train_help_states_the_time_and_the_full_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["adversarial-train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "about 3 minutes" in text and "--epochs 20 is the full-strength run" in text


def test_extract_announces_and_shows_a_bar_before_the_first_round(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, loud: None
) -> None:
    from advml.extraction.copycat import Copycat

    seen = _spy(monkeypatch, capsys, Copycat, "_fit")
    argv = [
        "extract", "--dataset", "digits", "--queries", "40", "--n-random", "10",
        "--set", "rounds=2", "--set", "epochs=1", "--set", "min_steps=3",
    ]  # fmt: skip
    assert main(argv) == 0
    _check(seen, "advml extract: copycat (queries=40, rounds=2, epochs=1, min_steps=3)")
    assert "copycat" in seen[0]
    assert "agreement (test)" in capsys.readouterr().out


def test_attack_announces_and_shows_a_query_bar_before_the_attack_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, loud: None
) -> None:
    from advml.evasion.bim import BIM

    seen = _spy(monkeypatch, capsys, BIM, "_run")
    argv = [
        "attack", "--attack", "bim", "--set", "steps=3", "--dataset", "digits",
        "--n-samples", "10", "--out", str(tmp_path / "adv.npz"),
    ]  # fmt: skip
    assert main(argv) == 0
    _check(seen, "advml attack: bim (steps=3) on 10 test inputs of digits")
    # 10 inputs x (3 steps + the final check) model queries.
    assert "0/40 [" in seen[0]


@pytest.fixture(scope="module")
def key_and_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A digits model watermarked by ``advml watermark embed`` and its key."""
    folder = tmp_path_factory.mktemp("progress-watermark")
    marked, key = folder / "marked.pt", folder / "owner.key.npz"
    argv = [
        "watermark", "embed", "--scheme", "uchida", "--out-model", str(marked),
        "--out-key", str(key), "--quiet",
    ]  # fmt: skip
    assert main(argv) == 0
    return marked, key


def test_watermark_attack_shows_a_bar_before_the_first_removal(
    key_and_model: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    loud: None,
) -> None:
    from advml.watermark.removal.base import RemovalAttack

    marked, key = key_and_model
    seen = _spy(monkeypatch, capsys, RemovalAttack, "remove")
    argv = ["watermark", "attack", "--model", str(marked), "--key", str(key)]
    assert main([*argv, "--attacks", "prune,preprocess"]) == 0
    _check(seen, "advml watermark attack: 2 removal attacks (prune, preprocess)")
    # The bar names the attack that is running.
    assert "prune(" in seen[0]


@pytest.mark.parametrize("command", ["adversarial-train", "extract", "watermark", "attack"])
def test_quiet_prints_no_plan_and_no_bar(
    command: str,
    tmp_path: Path,
    key_and_model: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    loud: None,
) -> None:
    argv = {
        "adversarial-train": [
            "adversarial-train", "--method", "fgsm", "--epochs", "1", "--dataset", "digits",
            "--n-samples", "20", "--out", str(tmp_path / "r.pt"),
        ],
        "extract": [
            "extract", "--dataset", "digits", "--queries", "40", "--n-random", "10",
            "--set", "rounds=2", "--set", "epochs=1", "--set", "min_steps=3",
        ],
        "attack": [
            "attack", "--attack", "bim", "--set", "steps=3", "--dataset", "digits",
            "--n-samples", "10", "--out", str(tmp_path / "adv.npz"),
        ],
        "watermark": [
            "watermark", "attack", "--model", str(key_and_model[0]), "--key",
            str(key_and_model[1]), "--attacks", "prune",
        ],
    }[command]  # fmt: skip
    assert main([*argv, "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out  # the results still print


def _subcommands() -> list[tuple[str, Any]]:
    """Every (name, parser) of ``advml``, nested ones (``watermark embed``) included."""
    import argparse

    from advml.cli import _parser

    found: list[tuple[str, Any]] = []

    def walk(prefix: str, parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found.append((f"{prefix} {name}".strip(), sub))
                    walk(f"{prefix} {name}", sub)

    walk("", _parser()[0])
    return found


def test_each_help_states_its_default_dataset_first() -> None:
    with_dataset = [
        (name, p)
        for name, p in _subcommands()
        if any("--dataset" in a.option_strings for a in p._actions)
    ]
    assert len(with_dataset) >= 10
    for name, p in with_dataset:
        (action,) = [a for a in p._actions if "--dataset" in a.option_strings]
        default = action.default or p.get_default("default_dataset")
        if default is None:  # a required or computed dataset: nothing to state
            continue
        first = (p.description or "").split(". ")[0]
        assert first.startswith("Default"), (name, first)
        assert str(default) in first, (name, default, first)


@pytest.mark.parametrize(
    ("argv", "plan"),
    [
        (["membership"], "advml membership: "),
        (["invert"], "advml invert: "),
        (["poison", "--out-model", "{tmp}/bd.pt", "--out-data", "{tmp}/bd.npz"], "advml poison: "),
        (["defend", "--model", "{tmp}/bd.pt", "--data", "{tmp}/bd.npz"], "advml defend: "),
        (["train", "--dataset", "digits", "--out", "{tmp}/m.pt"], "advml train: "),
        (["audit", "--quick", "--out", "{tmp}/audit"], "advml audit: "),
    ],
)
def test_each_readme_command_says_first_what_it_will_do(
    argv: list[str],
    plan: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    loud: None,
) -> None:
    # Imported before the patch: a module that binds load_dataset when it is first
    # imported would otherwise keep the stand-in for the rest of the session.
    import advml.audit
    import advml.audit.run
    import advml.data

    def stop(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt  # only what comes before the data is loaded matters

    monkeypatch.setattr(advml.data, "load_dataset", stop)
    monkeypatch.setattr(advml.data, "load_data", stop)  # a name or the user's files
    monkeypatch.setattr(advml.audit, "run_audit", stop)
    # 130: stopped at the data; defend stops earlier still, at the missing poisoned data.
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert code == (2 if argv[0] == "defend" else 130)
    err = capsys.readouterr().err
    assert err.startswith(plan), err
    assert "2-core CPU" in err.splitlines()[0] or "minute" in err.splitlines()[0]


_BEFORE_TORCH = """
import sys
import advml.commands._common as common

def announce(text):
    print("torch imported:", "torch" in sys.modules, "|", text)
    raise SystemExit(0)

common.announce = announce
from advml.cli import main
main(sys.argv[1:])
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["extract"],
        ["attack"],
        ["adversarial-train", "--out", "{tmp}/r.pt"],
        ["watermark", "attack", "--key", "{tmp}/k.npz"],
        ["membership"],
        ["invert"],
        ["poison"],
        ["defend", "--model", "{tmp}/bd.pt", "--data", "{tmp}/bd.npz"],
        ["train", "--out", "{tmp}/m.pt"],
        ["audit", "--quick"],
    ],
)
def test_the_plan_line_comes_before_torch_is_imported(argv: list[str], tmp_path: Path) -> None:
    """Importing torch takes seconds on a busy machine: the long commands say what they
    will do before that, so the first line comes within a moment of starting."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "ADVML_QUIET"}
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    out = subprocess.run(
        [sys.executable, "-c", _BEFORE_TORCH, *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.startswith("torch imported: False | advml "), out
