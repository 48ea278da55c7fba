"""The inversion section's data for ``templates/sections/inversion.html.j2``:
reconstructions beside class means, the judge's verdict."""

from __future__ import annotations

from typing import Any

import numpy as np

from advml.report.components import num, pct
from advml.report.privacy_figures import inversion_grid
from advml.report.templating import b64, render_template

__all__ = ["render"]


def render(
    section: dict[str, Any], artifacts: dict[str, np.ndarray], report: dict[str, Any]
) -> str:
    ds = report["dataset"]
    names = ds["class_names"]
    grid = ""
    if artifacts and "images" in artifacts:
        grid = b64(
            inversion_grid(
                artifacts["images"],
                artifacts["class_means"],
                artifacts["classes"],
                names,
                ds["bounds"],
                artifacts["judged"],
            )
        )
    return render_template(
        "sections/inversion.html.j2",
        section=section,
        grid=grid,
        per_class=[
            (
                names[c["class"]],
                names[c["judged_as"]],
                pct(c["confidence"]),
                num(c["ssim_to_mean"]),
                num(c["mse_to_mean"], ".4f"),
            )
            for c in section["per_class"]
        ],
        hardening=[
            (
                h["defence"] + (f" {h['params']}" if h["params"] else ""),
                "blocked"
                if h["blocked"]
                else pct(h["recognition_rate"])
                if "recognition_rate" in h
                else "not measured",
                num(h["mean_ssim_to_class_mean"]) if "recognition_rate" in h else "–",
                f"{h['queries']:,}" if "recognition_rate" in h else "–",
                h["note"],
            )
            for h in section["hardening"]
        ],
    )
