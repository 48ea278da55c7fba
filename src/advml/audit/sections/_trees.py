"""The tree part of the audit's evasion section: exact radii, certificates, examples.

Private: the audit discovers public modules as sections. For a tree model (anything
:func:`advml.models.trees.tree_view` reads) the evasion section adds, on the first
``TREE_INPUTS`` evaluated inputs:

* each input's exact minimal L∞ radius (:class:`~advml.evasion.TreeExact`, time-limited
  per input, with the share proven optimal) and the fast attack's radius;
* a certified lower bound on each radius (:func:`advml.verification.certify`);
* accuracy under the exact and the fast attack and the verified robust accuracy at
  every ε of the config, read off those radii;
* a few adversarial rows, feature by feature (before -> after).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import numpy as np

from advml.audit.sections.base import AuditContext, Level, Verdict
from advml.evasion.trees import TreeExact, TreeFast
from advml.models.base import Classifier
from advml.models.trees import tree_model_reason, tree_view
from advml.verification import certify

__all__ = ["TREE_INPUTS", "TREE_TIME_LIMIT", "tree_analysis", "tree_verdict"]

TREE_INPUTS = 50
"""Inputs given exact radii (the MILP takes up to ``TREE_TIME_LIMIT`` s each)."""
TREE_TIME_LIMIT = 2.0
N_ROWS = 5


def tree_analysis(ctx: AuditContext) -> dict[str, Any] | None:
    """The tree numbers of the evasion section, or None for a model without trees."""
    if tree_model_reason(ctx.model) is not None:
        return None
    n = min(TREE_INPUTS, len(ctx.y))
    rules = getattr(ctx.config, "constraints", None)
    settings = {
        "n": n,
        "time_limit": TREE_TIME_LIMIT,
        "eps": [float(e) for e in ctx.config.eps],
        "constraints": None if rules is None else rules.to_dict(),
    }
    meta, _ = ctx.step(
        "tree-radii",
        settings,
        partial(_compute, ctx.model, ctx.x[:n], ctx.y[:n], list(ctx.config.eps), rules),
    )
    return meta


def _finite(values: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in values]


def _compute(
    model: Classifier, x: np.ndarray, y: np.ndarray, eps: list[float], rules: Any
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    view = tree_view(model)
    exact = TreeExact(time_limit=TREE_TIME_LIMIT, constraints=rules).generate(model, x, y)
    fast = TreeFast(constraints=rules).generate(model, x, y)
    cert = certify(model, x, y, bounds=model.bounds, constraints=rules)
    correct = cert.correct
    # Where the solver ran out of time before finding any input, the fast attack's find
    # still bounds the radius from above: the smaller of the two is what an attacker has.
    best = np.minimum(exact.radius, fast.radius)
    points = []
    for e in sorted({0.0, *map(float, eps)}):
        points.append(
            {
                "eps": e,
                # Robust under the exact attack: no adversarial input within e was found
                # (proven when the radius is optimal; an upper bound otherwise).
                "exact_accuracy": float(np.mean(correct & (best > e))),
                "fast_accuracy": float(np.mean(correct & (fast.radius > e))),
                # Certified: every perturbation below the lower bound keeps the label.
                "verified_accuracy": float(np.mean(correct & (cert.lower_bound > e))),
            }
        )
    flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    adv = np.asarray(exact.x_adv, dtype=np.float64).reshape(len(x), -1)
    rows = []
    for i in np.flatnonzero(exact.success & correct & (exact.radius > 0))[:N_ROWS]:
        changed = np.flatnonzero(adv[i] != flat[i])
        order = changed[np.argsort(-np.abs(adv[i, changed] - flat[i, changed]))]
        rows.append(
            {
                "index": int(i),
                "label": int(y[i]),
                "label_adv": int(exact.y_adv[i]),
                "radius": float(exact.radius[i]),
                "changes": [
                    {"feature": int(j), "before": float(flat[i, j]), "after": float(adv[i, j])}
                    for j in order[:8]
                ],
            }
        )
    ok = correct & np.isfinite(exact.radius) & (exact.radius > 0)
    ratio = fast.radius[ok] / exact.radius[ok]
    meta = {
        "model": view.describe(),
        "n": len(y),
        "norm": "inf",
        "time_limit": TREE_TIME_LIMIT,
        "radius": _finite(np.where(correct, best, 0.0)),
        "lower_bound": _finite(np.where(correct, cert.lower_bound, 0.0)),
        "fast_radius": _finite(np.where(correct, fast.radius, 0.0)),
        "proven_optimal": float(exact.optimal.mean()) if len(y) else 0.0,
        "median_radius": _median(best[correct]),
        "median_lower_bound": _median(cert.lower_bound[correct]),
        "median_fast_ratio": float(np.median(ratio)) if ratio.size else None,
        "points": points,
        "rows": rows,
        "seconds": {
            "exact": round(exact.seconds, 3),
            "fast": round(fast.seconds, 3),
            "verification": round(cert.seconds, 3),
        },
    }
    return meta, {}


def tree_verdict(trees: dict[str, Any], clean_accuracy: float, reference_eps: float) -> Verdict:
    """The evasion verdict from the exact radii, for a tree model no configured attack ran on.

    Accuracy under the exact attack at the largest ε of the config up to
    ``reference_eps``, judged like the section's own verdict (share of clean accuracy).
    """
    eligible = [p for p in trees["points"] if 0 < p["eps"] <= reference_eps + 1e-12]
    if not eligible:
        return Verdict("unknown", "unknown", "No ε > 0 up to the reference ε to judge.", {})
    p = max(eligible, key=lambda q: q["eps"])
    acc, eps = p["exact_accuracy"], p["eps"]
    ratio = acc / clean_accuracy if clean_accuracy > 0 else 0.0
    level: Level = "pass" if ratio >= 0.8 else "warn" if ratio >= 0.5 else "fail"
    labels = {"pass": "robust", "warn": "partly robust", "fail": "not robust"}
    text = (
        f"The smallest change that flips each of {trees['n']} test inputs was computed "
        f"exactly: with ε = {eps:g} (each feature may move by {eps:g} of its range), "
        f"accuracy falls from {clean_accuracy:.1%} to {acc:.1%}"
        f" (certified: at least {p['verified_accuracy']:.1%})."
    )
    numbers = {"robust_accuracy": acc, "attack": "tree_exact", "eps": eps}
    return Verdict(level, labels[level], text, numbers)


def _median(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else None
