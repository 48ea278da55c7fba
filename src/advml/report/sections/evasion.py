"""The evasion section's data for ``templates/sections/evasion.html.j2``: robustness
curve, per-attack tables, example grid."""

from __future__ import annotations

from typing import Any

import numpy as np
from markupsafe import Markup

from advml.report.figures import example_grid, robustness_curve
from advml.report.sections.trees import render_trees
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
        # advml's own HTML, built from escaped pieces (sections/trees.py)
        trees=Markup(render_trees(section["trees"])) if section.get("trees") else "",
        constraints=section.get("constraints"),
        kept=[
            p["constraints_satisfied"]
            for a in section["attacks"]
            for p in a["points"]
            if "constraints_satisfied" in p
        ],
    )
