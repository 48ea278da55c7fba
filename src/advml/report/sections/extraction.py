"""The extraction section's figure and data for ``templates/sections/extraction.html.j2``:
fidelity-vs-queries curves, stealing, hardening, transfer."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from advml.report.templating import b64, render_template

__all__ = ["fidelity_curve", "render"]


def render(
    section: dict[str, Any], artifacts: dict[str, np.ndarray], report: dict[str, Any]
) -> str:
    transfer = section["stealing"].get("transfer")
    return render_template(
        "sections/extraction.html.j2",
        section=section,
        curve=b64(fidelity_curve(section))
        if any(len(c["curve"]) for c in _curves(section))
        else "",
        solved=[h for h in section["hardening"] if h.get("equation_solving")],
        white_box=_white_box(report, transfer["eps"]) if transfer else None,
        status_words={"impossible": "Impossible", "failed": "Failed", "skipped": "Not run"},
    )


def _white_box(report: dict[str, Any], eps: float) -> float | None:
    evasion = report.get("sections", {}).get("evasion")
    if not evasion:
        return None
    for attack in evasion.get("attacks", []):
        if attack["name"] != "pgd":
            continue
        for p in attack["points"]:
            if abs(p["eps"] - eps) < 1e-9:
                return float(p["success_rate"])
    return None


def _curves(section: dict[str, Any]) -> list[dict[str, Any]]:
    out = [{"label": f"the model's {section['outputs']}", **section["stealing"]}]
    out += [
        {"label": h["reveals"], **h} for h in section["hardening"] if h.get("curve") is not None
    ]
    return out


def fidelity_curve(section: dict[str, Any]) -> bytes:
    """Agreement against queries (log scale), one line per output the attacker read."""
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    for i, c in enumerate(_curves(section)):
        pts = c["curve"]
        ax.plot(
            [p["queries"] for p in pts],
            [100 * p["fidelity"] for p in pts],
            marker="o",
            ls="-" if i == 0 else "--",
            lw=2 if i == 0 else 1.2,
            label=c["label"],
        )
    ax.set_xscale("log")
    queries = sorted({p["queries"] for c in _curves(section) for p in c["curve"]})
    ax.set_xticks(queries, [f"{q:,}" for q in queries])
    ax.minorticks_off()
    ax.set_xlabel("queries to the model")
    ax.set_ylabel("agreement with the model (%)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right", fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
