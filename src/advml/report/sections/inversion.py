"""HTML of the inversion section: reconstructions beside class means, the judge's verdict."""

from __future__ import annotations

from typing import Any

import numpy as np

from advml.report.components import esc, figure, num, pct, table, verdict_badge
from advml.report.privacy_figures import inversion_grid

__all__ = ["render"]


def render(
    section: dict[str, Any], artifacts: dict[str, np.ndarray], report: dict[str, Any]
) -> str:
    ds = report["dataset"]
    how = "its gradients" if section["gradient"] == "white-box" else "its scores only"
    parts = [
        "<p>A model-inversion attacker starts from a blank input and changes it, step by "
        "step, until the model is as sure as it can be that it shows a given class "
        f"(MI-Face, Fredrikson et al. 2015); here using {how}, with "
        f"{section['queries']:,} queries. An independent classifier, trained on records "
        "the model never saw, then says which class each reconstruction shows: the stand-in "
        "for a person asked to recognise it.</p>",
        f"<div class='card'>{verdict_badge(section['verdict'])}</div>",
    ]
    if artifacts and "images" in artifacts:
        parts.append(
            figure(
                inversion_grid(
                    artifacts["images"],
                    artifacts["class_means"],
                    artifacts["classes"],
                    ds["class_names"],
                    ds["bounds"],
                    artifacts["judged"],
                ),
                alt="reconstructed class images beside the class means",
                caption="<b>Reconstructions.</b> Top: the input the attack built for each "
                "class, titled with the class the independent judge sees in it (red when it "
                "sees another). Bottom: the mean of the class's real training images, which "
                "the attacker never had.",
                fig_id="fig-inversion",
            )
        )
    names = ds["class_names"]
    rows = [
        (
            names[c["class"]],
            names[c["judged_as"]],
            pct(c["confidence"]),
            num(c["ssim_to_mean"]),
            num(c["mse_to_mean"], ".4f"),
        )
        for c in section["per_class"]
    ]
    parts.append(
        table(
            ("class", "judge sees", "model's confidence", "SSIM to class mean", "MSE"),
            rows,
            caption=f"recognised: {pct(section['recognition_rate'])}",
        )
    )
    if section["hardening"]:
        parts.append(
            "<h3>Output hardening</h3><p>The attack again, from the hardened scores alone "
            "(the API gives no gradients).</p>"
        )
        if not any(h["defence"] == "none" for h in section["hardening"]):
            parts.append(
                "<p class='sub'>No row runs the same scores-only attack without a defence, "
                "so a low rate here may be the small query budget as much as the defence "
                "(add <code>none</code> to the section's <code>hardening</code> setting to "
                "compare).</p>"
            )
        h_rows = [
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
        ]
        parts.append(
            table(
                ("output", "recognised by the judge", "SSIM to class mean", "queries", "note"),
                h_rows,
            )
        )
    parts.append(f"<p class='sub'>settings: {esc(section['params'])}</p>")
    return "\n".join(parts)
