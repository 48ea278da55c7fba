"""The membership section's tiers: reference models as cached tasks, shared by LiRA and
RMIA, read back by a rerun."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from advml.audit import AuditConfig, run_audit


def _config(**membership: Any) -> AuditConfig:
    settings = {"n_members": 60, "label_only_records": 0, "hardening": {}, **membership}
    return AuditConfig.quick(
        sections=("membership",), n_samples=40, section_settings={"membership": settings}
    )


def test_deep_tier_trains_the_reference_models_once_for_lira_and_rmia(tmp_path: Path) -> None:
    config = _config(tier="deep", deep_references=2)
    report = run_audit(config, out=tmp_path, show_progress=False).report
    section = report["sections"]["membership"]
    rows = {a["name"]: a for a in section["attacks"]}
    assert rows["lira"]["mode"] == rows["rmia"]["mode"] == "online"
    assert rows["lira"]["references"] == rows["rmia"]["references"] == 2
    assert section["tier"] == "deep"
    assert section["executor"] == {"executor": "local", "workers": 1}
    # Two reference models stored, one per task: RMIA read LiRA's back.
    tasks = sorted(p.name for p in (tmp_path / "steps").glob("membership-reference-*.json"))
    assert len(tasks) == 2 and tasks[0].endswith("task0.json")
    # A rerun with the attack steps gone (as if killed after the reference models)
    # trains nothing again and gives the same figures.
    written = {p: p.stat().st_mtime_ns for p in (tmp_path / "steps").glob("*reference*")}
    for step in (tmp_path / "steps").glob("membership-lira-*"):
        step.unlink()
    for step in (tmp_path / "steps").glob("membership-rmia-*"):
        step.unlink()
    again = run_audit(config, out=tmp_path, show_progress=False).report
    assert again["sections"]["membership"]["attacks"] == section["attacks"]
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "steps").glob("*reference*")} == written


def test_quick_tier_is_offline_rmia_and_can_be_switched_off(tmp_path: Path) -> None:
    on = run_audit(_config(rmia_references=2), show_progress=False).report
    rows = {a["name"]: a for a in on["sections"]["membership"]["attacks"]}
    assert rows["rmia"]["mode"] == "offline" and rows["rmia"]["references"] == 2
    # Its figures carry their intervals like every other attack's (the verdict quotes
    # them): the TPR's interval holds the TPR and is not one point on 60 + 60 records.
    tpr = rows["rmia"]["intervals"]["tpr_at_1_fpr"]
    assert tpr["low"] <= rows["rmia"]["tpr_at_1_fpr"] <= tpr["high"] and tpr["low"] < tpr["high"]
    auc = rows["rmia"]["intervals"]["auc"]
    assert auc["low"] <= rows["rmia"]["auc"] <= auc["high"]
    off = run_audit(_config(), show_progress=False).report  # --quick: 0 references
    assert "rmia" not in {a["name"] for a in off["sections"]["membership"]["attacks"]}
    assert "executor" not in off["sections"]["membership"]


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("tier", "medium", "must be 'quick'"),
        ("rmia_references", 1, "must be 0 .skip RMIA. or >= 2"),
        ("deep_references", 1, "deep_references'\\] must be an integer >= 2"),
    ],
)
def test_bad_tier_settings_name_the_setting(setting: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run_audit(_config(**{setting: value}), show_progress=False)


def test_executor_fields_are_checked_with_the_config() -> None:
    with pytest.raises(ValueError, match="executor"):
        AuditConfig(executor="dask")
    with pytest.raises(ValueError, match="workers"):
        AuditConfig(executor="process", workers=0)
    with pytest.raises(ValueError, match="ray_address is for executor 'ray'"):
        AuditConfig(ray_address="auto")
