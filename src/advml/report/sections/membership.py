"""The membership section's data for ``templates/sections/membership.html.j2``: ROC on
log-log axes, the attacks' numbers, hardening, DP-SGD trade-off."""

from __future__ import annotations

from typing import Any

import numpy as np

from advml.report.components import num, pct
from advml.report.privacy_figures import roc_figure
from advml.report.templating import b64, render_template

__all__ = ["render"]


def render(
    section: dict[str, Any], artifacts: dict[str, np.ndarray], report: dict[str, Any]
) -> str:
    attacks = section["attacks"]
    curves = {a["name"]: a["curve"] for a in attacks if a.get("curve")}
    roc = ""
    if curves:
        n_out = min(a["n_non_members"] for a in attacks)
        roc = b64(roc_figure(curves, n_non_members=n_out))
    hardening: list[tuple[Any, ...]] = []
    for h in section["hardening"]:
        if not h["attacks"]:
            hardening.append((h["label"], "–", "–", "–", h["note"]))
        hardening += [
            (h["label"], a["name"], num(a["auc"]), pct(a["tpr_at_1_fpr"]), h["note"])
            for a in h["attacks"]
        ]
    return render_template(
        "sections/membership.html.j2",
        section=section,
        roc=roc,
        attacks=[
            (
                a["name"]
                + (f" ({a['shadows']} shadows)" if "shadows" in a else "")
                + (f" ({a['references']} {a['mode']} models)" if "references" in a else ""),
                num(a["auc"]),
                pct(a["tpr_at_0_1_fpr"]),
                pct(a["tpr_at_1_fpr"]),
                pct(a["balanced_accuracy"]),
                num(a["advantage"]),
                f"{a['n_members']} / {a['n_non_members']}",
                a["queries"],
            )
            for a in attacks
        ],
        few_non_members=bool(attacks) and min(a["n_non_members"] for a in attacks) < 1000,
        hardening=hardening,
        trade=[
            (
                r["method"],
                "∞" if r["epsilon"] is None else f"{r['epsilon']:.2f}",
                pct(r["accuracy"]),
                num(r["auc"]),
                pct(r["tpr_at_1_fpr"]),
            )
            for r in section["trade_off"]["rows"]
        ],
    )
