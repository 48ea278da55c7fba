"""The figure of the tree part of the evasion section (``templates/sections/_trees.html.j2``):
the radius histogram."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

__all__ = ["radius_histogram"]


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
