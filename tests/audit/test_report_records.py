"""``--save-examples``: the per-input files load in pandas and reproduce the report's
headline figures."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from advml.cli import main


def test_the_per_input_records_reproduce_the_figures(
    quick_audit_argv: Callable[..., list[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "a"
    argv = [*quick_audit_argv(out), "--attacks", "fgsm,pgd", "--save-examples"]
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    files = report["examples_files"]["evasion"]
    df = pd.read_parquet(out / files["records"])
    evasion = report["sections"]["evasion"]
    assert len(df) == report["dataset"]["n_evaluated"] == files["rows"]
    assert (df.pred_clean == df.label).mean() == report["model"]["clean_accuracy"]
    for attack in evasion["attacks"]:
        for p in attack["points"]:
            tag = f"{attack['name']}_eps{p['eps']:g}"
            robust = df[f"pred_{tag}"] == df.label
            assert robust.mean() == p["robust_accuracy"]
            assert int(robust.sum()) == p["robust_accuracy_interval"]["count"]
            assert (df[f"linf_{tag}"] <= p["eps"] + 1e-6).all()
    worst = evasion["worst_case"]
    assert df[f"robust_worst_case_eps{worst['eps']:g}"].mean() == worst["robust_accuracy"]
    assert evasion["verdict"]["robust_accuracy"] == worst["robust_accuracy"]
    # The adversarial inputs themselves, at the reference ε, inside the ε-ball.
    inputs = np.load(out / files["inputs"])
    eps = report["config"]["reference_eps"]
    x_adv = inputs[f"x_adv_pgd_eps{eps:g}"]
    assert x_adv.shape == inputs["x"].shape
    assert np.abs(x_adv - inputs["x"]).max() <= eps + 1e-6
    page = (out / "report.html").read_text()
    assert f"href='{files['records']}'" in page


def test_membership_records_reproduce_each_attacks_auc(tmp_path: Path) -> None:
    from sklearn.metrics import roc_auc_score

    from advml.audit import AuditConfig, run_audit

    config = AuditConfig.quick(
        sections=("membership",),
        save_examples=True,
        section_settings={"membership": {"n_members": 60, "label_only_records": 20}},
    )
    result = run_audit(config, out=tmp_path, show_progress=False)
    files = result.report["examples_files"]["membership"]
    df = pd.read_parquet(tmp_path / files["records"])
    section = result.report["sections"]["membership"]
    assert len(df) == 2 * section["n_members"] and df.member.sum() == section["n_members"]
    checked = 0
    for attack in section["attacks"]:
        column = f"score_{attack['name']}"
        if column not in df:
            continue
        scored = df[column].notna()
        auc = roc_auc_score(df.member[scored], df[column][scored])
        assert auc == pytest.approx(attack["auc"], rel=1e-12, abs=1e-12)
        checked += 1
    assert checked >= 2  # the threshold attacks and the label-only one at least
    assert df["score_label-only"].notna().sum() == 2 * 20
