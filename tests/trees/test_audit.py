"""The audit's evasion section on a tree model: radii, certificates, report figure."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np

from advml.audit import AuditConfig, run_audit
from advml.data import load_dataset
from advml.models import SklearnClassifier
from advml.report import report_schema


def test_evasion_section_reports_exact_radii_for_a_forest(tmp_path: Path) -> None:
    from sklearn.ensemble import RandomForestClassifier

    ds = load_dataset("breast-cancer")
    forest = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(
        ds.x_train, ds.y_train
    )
    model = SklearnClassifier(forest, bounds=ds.bounds)
    config = AuditConfig(
        n_samples=30,
        eps=(0.0, 0.05, 0.1),
        attacks=("tree_exact", "tree_fast"),
        examples=0,
        sections=("evasion",),
    )
    result = run_audit(config, model=model, dataset=ds, out=tmp_path, show_progress=False)
    section = result.report["sections"]["evasion"]
    trees = section["trees"]
    assert trees["n"] == 30 and trees["proven_optimal"] == 1.0
    radius = np.array([np.inf if r is None else r for r in trees["radius"]])
    lower = np.array([np.inf if r is None else r for r in trees["lower_bound"]])
    assert np.all(lower <= radius)  # the certificate is sound
    by_eps = {p["eps"]: p for p in trees["points"]}
    for p in by_eps.values():
        assert p["verified_accuracy"] <= p["exact_accuracy"] <= p["fast_accuracy"] + 1e-12
    # The registered attacks at each eps agree with the radii (exact is exact).
    exact_points = {
        p["eps"]: p for a in section["attacks"] if a["name"] == "tree_exact" for p in a["points"]
    }
    for e in (0.05, 0.1):
        assert exact_points[e]["robust_accuracy"] == by_eps[e]["exact_accuracy"]
    assert trees["rows"] and all(r["label"] != r["label_adv"] for r in trees["rows"])
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "fig-tree-radii" in html and "verified robust accuracy" in html and "→" in html
    jsonschema.validate(json.loads(json.dumps(result.report)), report_schema())


def test_verdict_from_the_radii_when_no_configured_attack_runs() -> None:
    from sklearn.ensemble import GradientBoostingClassifier

    ds = load_dataset("breast-cancer")
    est = GradientBoostingClassifier(n_estimators=10, max_depth=2, random_state=0)
    model = SklearnClassifier(est.fit(ds.x_train, ds.y_train), bounds=ds.bounds)
    config = AuditConfig(
        n_samples=20, eps=(0.0, 0.1), attacks=("fgsm", "pgd"), examples=0, sections=("evasion",)
    )
    result = run_audit(config, model=model, dataset=ds, show_progress=False)
    section = result.report["sections"]["evasion"]
    assert {s["attack"] for s in section["skipped"]} == {"fgsm", "pgd"}  # no gradients
    verdict = section["verdict"]
    assert verdict["level"] != "unknown" and "exactly" in verdict["text"]
    point = next(p for p in section["trees"]["points"] if p["eps"] == 0.1)
    assert verdict["robust_accuracy"] == point["exact_accuracy"]
    jsonschema.validate(json.loads(json.dumps(result.report)), report_schema())
