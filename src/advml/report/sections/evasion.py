"""The evasion section's data for ``templates/sections/evasion.html.j2``: robustness
curve, per-attack tables, example grid."""

from __future__ import annotations

from typing import Any

import numpy as np

from advml.report.figures import example_grid, robustness_curve
from advml.report.sections.trees import radius_histogram
from advml.report.templating import b64, render_template

__all__ = ["render"]


def render(
    section: dict[str, Any], artifacts: dict[str, np.ndarray], report: dict[str, Any]
) -> str:
    ds = report["dataset"]
    attacks = [
        {
            "name": a["name"],
            "settings": ", ".join(f"{k}={v}" for k, v in a["params"].items() if k != "eps"),
            "points": a["points"],
        }
        for a in section["attacks"]
    ]
    examples = ""
    if artifacts and len(artifacts.get("index", [])):
        examples = b64(example_grid(artifacts, ds["class_names"], ds["bounds"]))
    return render_template(
        "sections/evasion.html.j2",
        section=section,
        verdict=section["verdict"],
        curve=b64(robustness_curve(section)) if any(a["points"] for a in attacks) else "",
        attacks=attacks,
        worst=section.get("worst_case"),
        examples=examples,
        radii=_radii(section.get("trees")),
        constraints=section.get("constraints"),
        kept=[
            p["constraints_satisfied"]
            for a in section["attacks"]
            for p in a["points"]
            if "constraints_satisfied" in p
        ],
    )


def _radii(trees: dict[str, Any] | None) -> str:
    """The tree block's radius histogram (sections/_trees.html.j2), when there are radii."""
    if not trees or all(r is None for r in trees["radius"]):
        return ""
    return b64(radius_histogram(trees))
