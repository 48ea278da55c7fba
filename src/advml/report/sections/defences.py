"""The defences section's data for ``templates/sections/defences.html.j2``: trade-off
table, bar chart, the defence x strength x ε matrix (when more than the trade-off table
was evaluated), detection, plain words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from advml.report.figures import defence_bars
from advml.report.templating import b64, render_template

__all__ = ["render"]

_ASSESSMENT_COLOURS = {
    "only looks strong": "#c62828",
    "overstated": "#b35900",
    "no real gain": "#b35900",
    "some robustness": "#1a7f37",
}


def render(
    section: dict[str, Any], artifacts: dict[str, np.ndarray], report: dict[str, Any]
) -> str:
    rows = [
        {
            **r,
            "settings": _params(r["params"]),
            "colour": _ASSESSMENT_COLOURS.get(r["assessment"], "#555"),
        }
        for r in section["defences"]
    ]
    robust = section.get("robust_model")
    det = section.get("detection")
    matrix = section.get("matrix") or []
    return render_template(
        "sections/defences.html.j2",
        section=section,
        eps=section["eps"],
        steps=section["attack"]["params"].get("steps", "?"),
        rows=rows,
        bars=b64(defence_bars(section)) if rows else "",
        robust={**robust, "file_name": Path(robust["file"]).name} if robust else None,
        detection_settings=_params(det["params"]) if det else "",
        matrix=[{**c, "settings": _params(c["resolved"]), "colour": _colour(c)} for c in matrix]
        if len(matrix) > len(rows)
        else [],
        matrix_eps=sorted({c["eps"] for c in matrix}),
    )


def _colour(cell: dict[str, Any]) -> str:
    return _ASSESSMENT_COLOURS.get(cell["assessment"], "#555")


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items() if k != "seed") or "defaults"
