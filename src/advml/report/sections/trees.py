"""HTML of the tree part of the evasion section: radius histogram, table, changed rows."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from advml.report.components import esc, figure, num, pct

__all__ = ["radius_histogram", "render_trees"]


def radius_histogram(trees: dict[str, Any]) -> bytes:
    """Histogram of exact radii with the certified lower bounds beside them (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    exact = np.array([r for r in trees["radius"] if r is not None], dtype=np.float64)
    lower = np.array([r for r in trees["lower_bound"] if r is not None], dtype=np.float64)
    fig, ax = plt.subplots(figsize=(5.2, 2.8))
    top = max(float(exact.max(initial=0.0)), float(lower.max(initial=0.0)), 1e-6)
    bins = np.linspace(0.0, top, 21).tolist()
    ax.hist(exact, bins=bins, alpha=0.75, label="exact radius (MILP)", color="#c0392b")
    ax.hist(lower, bins=bins, alpha=0.5, label="certified lower bound", color="#2c7fb8")
    ax.set_xlabel("smallest L∞ change that flips the label")
    ax.set_ylabel("inputs")
    ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def render_trees(trees: dict[str, Any]) -> str:
    """The tree block of the evasion section (``section["trees"]``)."""
    parts = [
        "<h3>Tree model: exact robustness</h3>",
        f"<p>{esc(trees['model'])}. For {trees['n']} test inputs the smallest change that "
        "flips the label was computed exactly (a mixed-integer program; proven optimal on "
        f"{pct(trees['proven_optimal'], 0)} of them within {trees['time_limit']:g} s each), "
        "a fast attack without a solver looked for one, and a verifier certified a radius "
        "below which no change can flip the label. Median exact radius "
        f"{num(trees['median_radius'], '.4f')}, median certified bound "
        f"{num(trees['median_lower_bound'], '.4f')}.</p>",
    ]
    if any(r is not None for r in trees["radius"]):
        parts.append(
            figure(
                radius_histogram(trees),
                alt="histogram of robust radii",
                caption="<b>Robust radii.</b> How far each input is from a wrong label "
                "(red: exact, from the MILP; blue: certified lower bound). Inputs the model "
                "already gets wrong count as 0. Mass near 0 means many inputs flip with a "
                "tiny change.",
                fig_id="fig-tree-radii",
            )
        )
    parts.append(
        "<table><tr><th>ε</th><th>accuracy under exact attack</th>"
        "<th>accuracy under fast attack</th><th>verified robust accuracy</th></tr>"
    )
    for p in trees["points"]:
        parts.append(
            f"<tr><td>{p['eps']:g}</td><td>{pct(p['exact_accuracy'])}</td>"
            f"<td>{pct(p['fast_accuracy'])}</td><td>{pct(p['verified_accuracy'])}</td></tr>"
        )
    parts.append("</table>")
    if trees["rows"]:
        parts.append(
            "<p><b>Adversarial rows.</b> The exact attack's smallest changes, feature by "
            "feature (before → after):</p><table><tr><th>input</th><th>label</th>"
            "<th>radius</th><th>changes</th></tr>"
        )
        for row in trees["rows"]:
            changes = ", ".join(
                f"x[{c['feature']}]: {c['before']:.4g} → {c['after']:.4g}" for c in row["changes"]
            )
            parts.append(
                f"<tr><td>{row['index']}</td><td>{row['label']} → {row['label_adv']}</td>"
                f"<td>{row['radius']:.4g}</td><td>{esc(changes)}</td></tr>"
            )
        parts.append("</table>")
    return "\n".join(parts)
