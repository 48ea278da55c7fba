"""Bad outputs and faults, one row per case (issue 11 §3): paid queries, output paths,
damaged resume steps, a full disk.

Each row runs the ``advml`` command in-process and asserts the exit code and that the
message names the option (or file) at fault and the fix; rows where the command succeeds
check what it wrote instead. Nothing may end in a traceback, and nothing paid for may be
lost.
"""

from __future__ import annotations

import copy
import errno
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from advml.cli import main
from advml.models import TorchClassifier, load_model, save_model
from advml.runtime import files

Setup = Callable[[Path, pytest.MonkeyPatch], None]


def _nothing(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    pass


def _a_file(name: str) -> Setup:
    def setup(tmp: Path, mp: pytest.MonkeyPatch) -> None:
        (tmp / name).write_text("not a folder")

    return setup


def _a_folder(name: str) -> Setup:
    def setup(tmp: Path, mp: pytest.MonkeyPatch) -> None:
        (tmp / name).mkdir()

    return setup


def _locked_folder(name: str) -> Setup:
    """A folder this process may not write in (simulated: the suite may run as root)."""

    def setup(tmp: Path, mp: pytest.MonkeyPatch) -> None:
        from advml.commands import _common

        locked = tmp / name
        locked.mkdir()
        real = _common._can_write
        mp.setattr(_common, "_can_write", lambda p: p.resolve() != locked.resolve() and real(p))

    return setup


def _disk_full_on(name: str) -> Setup:
    """The writer fails with ENOSPC for the file called ``name``; every other file works."""

    def setup(tmp: Path, mp: pytest.MonkeyPatch) -> None:
        real = files._write

        def write(target: Path, f, payload) -> None:  # type: ignore[no-untyped-def]
            if target.name == name:
                f.write(b"partial")  # some bytes went out before the disk filled up
                raise OSError(errno.ENOSPC, "No space left on device")
            real(target, f, payload)

        mp.setattr(files, "_write", write)

    return setup


def _both(*setups: Setup) -> Setup:
    def setup(tmp: Path, mp: pytest.MonkeyPatch) -> None:
        for one in setups:
            one(tmp, mp)

    return setup


def _a_watermark_key(name: str) -> Setup:
    """An Uchida key for the model file of the row (its material only: nothing embedded)."""

    def setup(tmp: Path, mp: pytest.MonkeyPatch) -> None:
        from advml.watermark import Uchida, save_key

        model = load_model(tmp / "model.pt")
        save_key(Uchida(bits=8)._make_key(model, None, None, "owner"), tmp / name)  # type: ignore[arg-type]

    return setup


@dataclass(frozen=True)
class Case:
    id: str
    argv: list[str]
    code: int
    says: tuple[str, ...]
    setup: Setup = _nothing
    check: Callable[[Path, str], None] | None = None
    """Further checks on the folder and the output (stdout + stderr)."""


def _attack(*extra: str) -> list[str]:
    base = "attack --dataset digits --model {model} --attack fgsm --eps 0.1 --n-samples 20"
    return [*base.split(), *extra]


def _audit(*extra: str) -> list[str]:
    base = (
        "audit --dataset digits --model {model} --sections evasion --attacks fgsm --eps 0.1 "
        "--n-samples 40 --quiet"
    )
    return [*base.split(), *extra]


def _written(path: str, stdout_says: str) -> Callable[[Path, str], None]:
    def check(tmp: Path, text: str) -> None:
        with np.load(tmp / path) as data:
            assert data["x_adv"].shape == (20, 1, 8, 8)
        assert stdout_says in text

    return check


def _nothing_written(*names: str) -> Callable[[Path, str], None]:
    def check(tmp: Path, text: str) -> None:
        for name in names:
            assert not (tmp / name).exists(), name
        assert not list(tmp.rglob("*.partial")), "a temporary file was left behind"

    return check


def _budget_spent_to_the_last_query(tmp: Path, text: str) -> None:
    model = load_model(tmp / "model.pt")
    with np.load(tmp / "hsj.npz") as data:
        n = data["y"].shape[0]
        # Every paid query is accounted for: the attack's own plus generate's final
        # check of each attacked input make up the whole budget of 300.
        assert int(data["queries"].sum()) + n == 300
        ok = data["success"]
        assert ok.any()
        # The successes are real adversarial examples of this model.
        pred = model.predict(data["x_adv"][ok])
        assert np.all(pred != data["y"][ok])


def _report_json_kept(tmp: Path, text: str) -> None:
    _nothing_written("audit/report.html")(tmp, text)
    assert (tmp / "audit" / "report.json").stat().st_size > 0
    assert list((tmp / "audit" / "steps").glob("evasion-*.json"))


# Which commands write which of the files the rows below fill the disk on.
_WRITES = {
    ("--json", "membership"),
    ("--roc", "membership"),
    ("--json", "invert"),
    ("--out", "invert"),
    ("--json", "watermark"),
}

CASES = [
    # -- attack --out: exactly the path printed ----------------------------------------
    Case("attack-out-empty", _attack("--out", ""), 2, ("--out is empty", "give a file name")),
    Case(
        "attack-out-not-npz",
        _attack("--out", "file.txt"),
        2,
        ("--out file.txt", "ending in .npz", "--out file.npz"),
        check=_nothing_written("file.txt", "file.txt.npz"),
    ),
    Case(
        "attack-out-folder-gets-adversarial-npz",
        _attack("--out", "results"),
        0,
        ("results/adversarial.npz",),
        setup=_a_folder("results"),
        check=_written("results/adversarial.npz", "to results/adversarial.npz"),
    ),
    Case(
        "attack-out-new-folder-with-slash",
        _attack("--out", "new/"),
        0,
        ("new/adversarial.npz",),
        check=_written("new/adversarial.npz", "to new/adversarial.npz"),
    ),
    Case(
        "attack-out-npz-is-the-file",
        _attack("--out", "sub/adv.npz"),
        0,
        ("sub/adv.npz",),
        check=_written("sub/adv.npz", "to sub/adv.npz"),
    ),
    Case(
        "attack-out-under-a-file",
        _attack("--out", "taken/adv.npz"),
        2,
        ("--out taken/adv.npz", "taken is a file, not a folder", "choose a path in a folder"),
        setup=_a_file("taken"),
    ),
    Case(
        "attack-out-unwritable-folder",
        _attack("--out", "locked/adv.npz"),
        2,
        ("--out locked/adv.npz", "permission denied", "choose a folder you can write to"),
        setup=_locked_folder("locked"),
    ),
    # -- audit --out: a folder ----------------------------------------------------------
    Case(
        "audit-out-existing-file",
        _audit("--out", "report.txt"),
        2,
        ("--out report.txt is a file", "give a folder path"),
        setup=_a_file("report.txt"),
    ),
    Case(
        "audit-out-under-a-file",
        _audit("--out", "taken/audit"),
        2,
        ("--out taken/audit", "taken is a file, not a folder"),
        setup=_a_file("taken"),
    ),
    Case(
        "audit-out-unwritable-folder",
        _audit("--out", "locked/audit"),
        2,
        ("--out locked/audit", "permission denied", "choose a folder you can write to"),
        setup=_locked_folder("locked"),
    ),
    Case("audit-out-empty", _audit("--out", ""), 2, ("--out is empty", "give a folder")),
    # -- every other command's output options (checked before any work) ---------------
    Case(
        "train-out-is-a-folder",
        ["train", "--dataset", "digits", "--out", "models"],
        2,
        ("--out models is a folder", "give a file name inside it"),
        setup=_a_folder("models"),
    ),
    Case(
        "adversarial-train-out-under-a-file",
        ["adversarial-train", "--dataset", "digits", "--out", "taken/robust.pt"],
        2,
        ("--out taken/robust.pt", "taken is a file, not a folder"),
        setup=_a_file("taken"),
    ),
    Case(
        "extract-json-empty",
        ["extract", "--dataset", "digits", "--model", "{model}", "--json", " "],
        2,
        ("--json is empty", "give a file name"),
    ),
    Case(
        "poison-out-data-not-npz",
        ["poison", "--dataset", "digits", "--out-data", "poisoned.txt"],
        2,
        ("--out-data poisoned.txt", "ending in .npz"),
    ),
    Case(
        "defend-out-model-under-a-file",
        ["defend", "--dataset", "digits", "--model", "{model}", "--out-model", "taken/m.pt"],
        2,
        ("--out-model taken/m.pt", "taken is a file, not a folder"),
        setup=_a_file("taken"),
    ),
    Case(
        "watermark-out-key-is-a-folder",
        ["watermark", "embed", "--dataset", "digits", "--out-key", "keys"],
        2,
        ("--out-key keys is a folder", "give a file name inside it"),
        setup=_a_folder("keys"),
    ),
    Case(
        "invert-out-under-a-file",
        ["invert", "--dataset", "digits", "--out", "taken/grid.png"],
        2,
        ("--out taken/grid.png", "taken is a file, not a folder"),
        setup=_a_file("taken"),
    ),
    # -- paid queries ---------------------------------------------------------------------
    Case(
        "attack-query-budget-runs-out",
        "attack --dataset digits --model {model} --attack hopskipjump --n-samples 20 "
        "--query-budget 300 --out hsj.npz".split(),
        2,
        (
            "query budget ran out",
            "all 300 queries of --query-budget 300 spent",
            "hsj.npz holds",
            "Raise --query-budget",
        ),
        check=_budget_spent_to_the_last_query,
    ),
    Case(
        "attack-query-budget-not-positive",
        _attack("--query-budget", "0"),
        2,
        ("--query-budget must be >= 1, got 0",),
    ),
    # -- a full disk ------------------------------------------------------------------------
    Case(
        "audit-disk-full-on-report-html",
        _audit("--out", "audit"),
        2,
        (
            "could not write audit/report.html",
            "no space left",
            "bytes free",
            "Kept in audit",
            "report.json",
            "resumes",
        ),
        setup=_disk_full_on("report.html"),
        check=_report_json_kept,
    ),
    Case(
        "attack-disk-full-on-npz",
        _attack("--out", "adv.npz"),
        2,
        ("could not write adv.npz", "no space left", "free some space"),
        setup=_disk_full_on("adv.npz"),
        check=_nothing_written("adv.npz"),
    ),
    *[
        Case(
            f"{argv[0]}-disk-full-on-{option[2:]}",
            [*argv, option, name],
            2,
            (f"could not write {name}", "no space left", "free some space"),
            setup=_both(setup, _disk_full_on(name)),
            check=_nothing_written(name),
        )
        for argv, setup in (
            (
                "membership --dataset digits --model {model} --attacks loss_threshold "
                "--set calibration=population --n-eval 40 --quiet".split(),
                _nothing,
            ),
            (
                "invert --dataset digits --model {model} --steps 2 --classes 0,1 --quiet".split(),
                _nothing,
            ),
            (
                "watermark attack --dataset digits --model {model} --key wm.key.npz "
                "--attacks preprocess --quiet".split(),
                _a_watermark_key("wm.key.npz"),
            ),
        )
        for option, name in (
            ("--json", "numbers.json"),
            ("--roc", "roc.png"),
            ("--out", "grid.png"),
        )
        if (option, argv[0]) in _WRITES
    ],
]


@pytest.fixture
def model_file(digits_mlp: TorchClassifier, tmp_path: Path) -> Path:
    return save_model(copy.deepcopy(digits_mlp), tmp_path / "model.pt")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_output(
    case: Case,
    model_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    case.setup(tmp_path, monkeypatch)
    argv = [a.replace("{model}", str(model_file)) for a in case.argv]
    code = main(argv)
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert code == case.code, text
    for part in case.says:
        assert part in text, f"{part!r} not in output:\n{text}"
    assert "Traceback" not in text
    if case.check is not None:
        case.check(tmp_path, text)


# -- resuming from damaged steps ---------------------------------------------------------
@pytest.fixture(scope="module")
def finished_audit(tmp_path_factory: pytest.TempPathFactory, digits_mlp: TorchClassifier) -> Path:
    folder = tmp_path_factory.mktemp("finished")
    model = save_model(copy.deepcopy(digits_mlp), folder / "model.pt")
    argv = [a.replace("{model}", str(model)) for a in _audit("--out", str(folder / "audit"))]
    assert main(argv) == 0
    return folder


def _truncate_npz(steps: Path) -> str:
    victim = sorted(steps.glob("evasion-fgsm-*.npz"))[0]
    victim.write_bytes(victim.read_bytes()[:40])
    return victim.stem


def _empty_json(steps: Path) -> str:
    victim = sorted(steps.glob("evasion-fgsm-*.json"))[0]
    victim.write_text("{}")
    return victim.stem


def _edited_json(steps: Path) -> str:
    victim = sorted(steps.glob("evasion-fgsm-*.json"))[0]
    victim.write_text(victim.read_text().replace('"robust_accuracy": ', '"robust_accuracy": 1'))
    return victim.stem


@pytest.mark.parametrize(
    "damage",
    [_truncate_npz, _empty_json, _edited_json],
    ids=["truncated-step-npz", "step-json-empty-object", "step-json-edited"],
)
def test_a_damaged_step_is_logged_and_recomputed(
    damage: Callable[[Path], str],
    finished_audit: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shutil.copytree(finished_audit, tmp_path, dirs_exist_ok=True)
    out = tmp_path / "audit"
    before = (out / "report.json").read_text()
    key = damage(out / "steps")
    argv = [a.replace("{model}", str(tmp_path / "model.pt")) for a in _audit("--out", str(out))]
    assert main(argv) == 0, capsys.readouterr().err
    log = (out / "audit.log").read_text()
    assert f"step {key}: stored result damaged" in log and "computed again" in log
    assert "evasion: running fgsm-eps0.1" in log.split("audit started")[-1]
    # The recomputed step gives the same figures as the first run.
    assert _figures((out / "report.json").read_text()) == _figures(before)
    # And the step is whole again: a second resume reads everything back.
    assert main(argv) == 0
    last = (out / "audit.log").read_text().split("audit started")[-1]
    assert ": running " not in last and "stored result damaged" not in last


def _figures(text: str) -> dict[str, object]:
    """The evasion step's figures in a report.json (its time left out)."""
    report = json.loads(text)
    points = report["sections"]["evasion"]["attacks"][0]["points"]
    return {k: v for k, v in points[0].items() if k != "seconds"}


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write any folder"
)
def test_a_really_unwritable_folder_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    monkeypatch.chdir(tmp_path)
    try:
        assert main(["train", "--dataset", "digits", "--out", "locked/sub/m.pt"]) == 2
    finally:
        locked.chmod(0o755)
    err = capsys.readouterr().err
    assert "--out locked/sub/m.pt: cannot write in folder locked" in err
