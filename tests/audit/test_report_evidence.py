"""The report as evidence: a small dataset does not crash the audit, every verdict
follows from the numbers and intervals beside it, and "How to repeat" is a config file."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression

from advml.audit.config import AuditConfig
from advml.audit.config_file import parse_config
from advml.audit.run import check_thresholds, run_audit
from advml.data.user import load_csv
from advml.models.sklearn import SklearnClassifier
from advml.report.rerun import compare_reports


@pytest.fixture(scope="module")
def wine_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """The quick audit of a logistic regression on wine (142 training rows, 36 test)."""
    folder = tmp_path_factory.mktemp("wine")
    data = load_wine()
    csv = folder / "wine.csv"
    np.savetxt(csv, np.c_[data.data, data.target], delimiter=",")
    ds = load_csv(csv, scale=True, name="wine")
    estimator = LogisticRegression(max_iter=2000).fit(ds.x_train, ds.y_train)
    model = SklearnClassifier(estimator, bounds=ds.bounds)
    out = folder / "audit"
    result = run_audit(
        AuditConfig.quick(dataset="wine"), model=model, dataset=ds, out=out, show_progress=False
    )
    return result.report, out


def test_a_section_that_cannot_run_on_small_data_is_skipped_and_the_report_written(
    wine_report: tuple[dict[str, Any], Path],
) -> None:
    report, out = wine_report
    assert (out / "report.json").is_file() and (out / "report.html").is_file()
    skipped = {s["section"]: s["reason"] for s in report["skipped_sections"]}
    # Extraction's quick setting asks 400 queries of a pool of 142 inputs.
    assert "400 exceeds the 142 inputs" in skipped["extraction"]
    assert "lower queries" in skipped["extraction"]  # the fix is named
    assert {"evasion", "defences", "membership", "inversion"} <= set(report["sections"])


def check_verdict_rules(report: dict[str, Any]) -> list[str]:
    """Every verdict's level and sentence against the numbers beside it; the problems."""
    problems: list[str] = []
    sections = report["sections"]
    ev = sections.get("evasion", {}).get("verdict")
    if ev and ev.get("robust_accuracy") is not None:
        clean, low, high = (
            ev["clean_accuracy"],
            ev["robust_accuracy_low"],
            ev["robust_accuracy_high"],
        )
        want = "pass" if low >= 0.8 * clean else "fail" if high < 0.5 * clean else "warn"
        if ev["level"] != want:
            problems.append(f"evasion level {ev['level']} but the interval says {want}")
        if not low <= ev["robust_accuracy"] <= high:
            problems.append("evasion figure outside its interval")
        if f"{ev['robust_accuracy']:.1%}" not in ev["text"] or f"{low:.1%}" not in ev["text"]:
            problems.append("evasion text does not state its figure and interval")
        if f"from {clean:.1%}" not in ev["text"]:
            problems.append("evasion text does not state the clean accuracy")
    de = sections.get("defences", {}).get("verdict")
    if de and de.get("defended_robust_accuracy") is not None:
        clean = de["undefended_clean_accuracy"]
        low, high = de["defended_robust_accuracy_low"], de["defended_robust_accuracy_high"]
        want = "pass" if low >= 0.8 * clean else "fail" if high < 0.5 * clean else "warn"
        if de["level"] != want:
            problems.append(f"defences level {de['level']} but the interval says {want}")
        if "lower bound" in de["text"]:
            problems.append("defences call a measured accuracy a lower bound")
    me = sections.get("membership", {}).get("verdict")
    if me and me.get("membership_auc") is not None:
        alo, ahi = me["membership_auc_low"], me["membership_auc_high"]
        tlo = me["tpr_at_1_fpr_low"] if me["tpr_at_1_fpr_low"] is not None else 0.0
        thi = me["tpr_at_1_fpr_high"] if me["tpr_at_1_fpr_high"] is not None else 0.0
        if me["label"] == "high risk" and not (alo >= 0.6 or tlo >= 0.05):
            problems.append("membership 'high risk' without an interval past the bar")
        if me["label"] == "some risk" and not (alo > 0.5 or tlo > 0.01):
            problems.append("membership 'some risk' with an interval that includes guessing")
        if me["label"] == "low risk" and not (ahi < 0.6 and thi < 0.05):
            problems.append("membership 'low risk' with an interval that includes a high risk")
        if me["n_non_members"] < 100 and me["tpr_at_1_fpr_low"] is not None:
            problems.append("membership uses a TPR at 1% FPR measured on < 100 records")
    inv = sections.get("inversion", {}).get("verdict")
    if inv and "recognition_rate_low" in inv:
        above = inv["recognition_rate_low"] > inv["chance"]
        if (inv["level"] == "warn") != above:
            problems.append("inversion warns without its interval above chance (or the reverse)")
        if f"{inv['recognised']} of {inv['n_classes_reconstructed']}" not in inv["text"]:
            problems.append("inversion text does not give the counts")
    return problems


def test_every_verdict_follows_from_its_numbers_and_interval(
    wine_report: tuple[dict[str, Any], Path],
) -> None:
    report, out = wine_report
    assert check_verdict_rules(report) == []
    saved = json.loads((out / "report.json").read_text())
    assert check_verdict_rules(saved) == []
    # 18 members against 18 non-members cannot show a high risk: the verdict says so.
    membership = report["sections"]["membership"]["verdict"]
    assert membership["label"] == "inconclusive"
    assert "too few records" in membership["text"]
    # The defences section says why its undefended figure may differ from evasion's.
    assert "evasion section" in report["sections"]["defences"]["verdict"]["text"]


def test_how_to_repeat_is_the_yaml_that_config_reads(
    wine_report: tuple[dict[str, Any], Path],
) -> None:
    report, out = wine_report
    page = (out / "report.html").read_text()
    found = re.search(r"<pre id='config-yaml'>(.*?)</pre>", page, re.S)
    assert found is not None
    config = parse_config(html.unescape(found.group(1)), source="report.html")
    assert config == AuditConfig(**report["config"])
    assert "advml audit --config" in page


def test_rerun_repeats_the_audit_and_every_figure_is_the_same(
    quick_audit_argv: Callable[..., list[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from advml.cli import main

    assert main([*quick_audit_argv(tmp_path / "a"), "--attacks", "fgsm,pgd"]) == 0
    first = json.loads((tmp_path / "a" / "report.json").read_text())
    record = first["reproducibility"]
    assert record["model_fingerprint"] == first["model"]["fingerprint"]
    assert parse_config(record["config_yaml"]) == AuditConfig(**first["config"])
    assert {s["step"] for s in record["steps"]} >= {"predictions", "fgsm-eps0.1", "pgd-eps0.1"}
    assert all(s["cached"] is False and s["seconds"] >= 0 for s in record["steps"])
    capsys.readouterr()
    assert main(["audit", "--rerun", str(tmp_path / "a" / "report.json"), "--quiet"]) == 0
    out = capsys.readouterr().out
    second = json.loads((tmp_path / "a" / "rerun" / "report.json").read_text())
    rows = compare_reports(first, second)
    assert rows and all(r["status"] == "same" for r in rows), rows
    assert "0 moved within their 95% interval, 0 beyond it" in out


def test_a_figure_outside_its_interval_is_reported_beyond() -> None:
    old = {
        "sections": {
            "evasion": {
                "verdict": {
                    "robust_accuracy": 0.5,
                    "robust_accuracy_low": 0.45,
                    "robust_accuracy_high": 0.55,
                }
            }
        }
    }
    new = {"sections": {"evasion": {"verdict": {"robust_accuracy": 0.6}}}}
    (row,) = compare_reports(old, new)
    assert row["status"] == "beyond"
    new["sections"]["evasion"]["verdict"]["robust_accuracy"] = 0.52
    assert compare_reports(old, new)[0]["status"] == "within"


def test_fail_under_compares_the_lower_end_of_the_interval() -> None:
    report = json.loads(json.dumps(_minimal_report()))
    config = AuditConfig(fail_under={"robust_accuracy": 0.5}, fail_over={"membership_auc": 0.6})
    checks = {c["figure"]: c for c in check_thresholds(report, config)["checks"]}
    # 0.52 is above 0.5, but its interval reaches down to 0.47: not shown to be above.
    assert checks["robust_accuracy"]["passed"] is False
    assert checks["robust_accuracy"]["compared"] == 0.47
    assert "lower end" in checks["robust_accuracy"]["compared_what"]
    # AUC 0.55 is below 0.6, but its upper end 0.63 is not.
    assert checks["membership_auc"]["passed"] is False
    assert "upper end" in checks["membership_auc"]["compared_what"]


def _minimal_report() -> dict[str, Any]:
    return {
        "model": {"clean_accuracy": 0.9},
        "sections": {
            "evasion": {
                "verdict": {
                    "robust_accuracy": 0.52,
                    "robust_accuracy_low": 0.47,
                    "robust_accuracy_high": 0.57,
                }
            },
            "membership": {
                "verdict": {
                    "membership_auc": 0.55,
                    "membership_auc_low": 0.5,
                    "membership_auc_high": 0.63,
                }
            },
        },
    }
