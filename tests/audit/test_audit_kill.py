"""Killing a real ``advml audit`` process and starting it again loses nothing."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from advml.models import TorchClassifier
from advml.models.io import save_model

CONFIG = """
data: {dataset: digits, n_samples: 360}
evasion:
  attacks: [fgsm, pgd]
  eps: [0.01, 0.02, 0.03, 0.04]
  # Many steps at small eps (few inputs fall early) make each PGD step last about a
  # second, so the kill lands between steps and inside one.
  attack_settings: {pgd: {steps: 3000}}
sections: {run: [evasion]}
seed: 1
profile: quick
"""


def _command(model_file: Path, config: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "advml.cli",
        "audit",
        "--config",
        str(config),
        "--model",
        str(model_file),
        "--out",
        str(out),
        "--quiet",
    ]


def _numbers(report: dict[str, Any]) -> dict[str, Any]:
    report = copy.deepcopy(report)
    for key in ("created", "seconds"):
        report.pop(key)
    report.pop("reproducibility")  # the record of this run: its steps' times and cache hits
    for attack in report["sections"]["evasion"]["attacks"]:
        for point in attack["points"]:
            point.pop("seconds")
    return report


def test_killed_audit_resumes_without_recomputing_and_ends_the_same(
    digits_mlp: TorchClassifier, tmp_path: Path
) -> None:
    model_file = save_model(copy.deepcopy(digits_mlp), tmp_path / "model.pt")
    config = tmp_path / "audit.yaml"
    config.write_text(CONFIG)
    # One torch thread, as in the suite itself (tests/conftest.py), whatever OMP_NUM_THREADS
    # the suite runs under: two threads fighting over a busy 2-core machine made the
    # reference run take over 10 minutes (measured).
    env = {**os.environ, "ADVML_QUIET": "1", "OMP_NUM_THREADS": "1"}

    whole = tmp_path / "whole"
    # No fixed time limit: how long an audit takes depends on the machine.
    start = time.monotonic()
    subprocess.run(_command(model_file, config, whole), env=env, check=True)
    took = time.monotonic() - start

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_command(model_file, config, killed), env=env)
    steps = killed / "steps"
    # The same audit again: a guard against a hang, scaled to this machine's speed.
    deadline = time.monotonic() + 5 * took + 60
    try:
        # clean predictions + 4 FGSM steps + 2 PGD steps finished, then kill -9.
        while len(list(steps.glob("*.json"))) < 7:
            assert proc.poll() is None, "the audit ended before it could be killed"
            assert time.monotonic() < deadline, f"no 7 steps after 5x the {took:.0f} s run"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()  # a failed assertion above must not leave the audit running
    proc.wait()
    assert not (killed / "report.json").exists()
    finished = {p.stem for p in steps.glob("*.json")}
    assert 7 <= len(finished) < 9  # the audit has 9 steps; at most one more finished

    subprocess.run(_command(model_file, config, killed), env=env, check=True)
    resumed = json.loads((killed / "report.json").read_text())
    reference = json.loads((whole / "report.json").read_text())
    assert _numbers(resumed) == _numbers(reference)

    # The second run's log: every step finished before the kill was read back.
    log = (killed / "audit.log").read_text().split("audit started")[-1]
    read_back = [line for line in log.splitlines() if "already done" in line]
    ran = [line for line in log.splitlines() if ": running " in line]
    assert len(read_back) == len(finished)
    # Every step of the whole run (the 9 attack steps, then the ensemble's and the
    # flawed-evaluation checks' steps) ran or was read back exactly once.
    total = (whole / "audit.log").read_text().count(": running ")
    assert total >= 9
    assert len(ran) == total - len(finished)
