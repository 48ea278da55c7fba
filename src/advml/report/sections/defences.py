"""HTML of the defences section: trade-off table, bar chart, detection, plain words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from advml.report.components import Markup, checklist, esc, figure, pct, table, verdict_badge
from advml.report.figures import defence_bars

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
    eps, und = section["eps"], section["undefended"]
    steps = section["attack"]["params"].get("steps", "?")
    parts = [
        "<p>An input-cleansing defence transforms every input before the model sees it "
        "(smoothing, squeezing colours, adding noise, JPEG compression) in the hope of "
        "washing out an adversarial change. Each defence is attacked twice with "
        f"PGD-{esc(steps)} at ε = {eps:g} on {section['n']} inputs: the <b>standard</b> "
        "attack differentiates through the defence as it is, the <b>adaptive</b> attack "
        "knows it (BPDA: the identity's gradient through steps that have none; EOT: the "
        f"average gradient over {section['eot_samples']} draws of a random defence). A "
        "defence that holds only against the standard attack only looks strong.</p>",
        f"<div class='card'>{verdict_badge(section['verdict'])}</div>",
    ]
    rows = section["defences"]
    if rows:
        parts.append(
            figure(
                defence_bars(section),
                alt="accuracy of each defence clean, under the standard and the adaptive attack",
                caption="<b>What each defence buys.</b> Bars: accuracy of the defended model "
                "on clean inputs, under the standard attack and under the adaptive attack. "
                "Dashed line: the undefended model's clean accuracy; dotted line: its "
                "accuracy under the same attack. An adaptive bar near the dotted line means "
                "the defence gives no real protection; a tall standard bar beside a short "
                "adaptive one is gradient masking.",
                fig_id="fig-defences",
            )
        )
        table_rows: list[list[Any]] = [
            [
                "none (undefended)",
                "–",
                pct(und["clean_accuracy"]),
                pct(und["robust_accuracy"]),
                pct(und["robust_accuracy"]),
                pct(und["robust_accuracy"]),
                "–",
                "–",
            ]
        ]
        for r in rows:
            colour = _ASSESSMENT_COLOURS.get(r["assessment"], "#555")
            table_rows.append(
                [
                    Markup(
                        f"{esc(r['name'].replace('_', ' '))}"
                        f"<div class='sub'>{esc(_params(r['params']))}</div>"
                    ),
                    r["adaptive_method"],
                    pct(r["clean_accuracy"]),
                    pct(r["standard_robust_accuracy"]),
                    pct(r["adaptive_robust_accuracy"]),
                    pct(r["worst_case_robust_accuracy"]),
                    f"{100 * r['robust_gain']:+.1f}",
                    Markup(f"<b style='color:{colour}'>{esc(r['assessment'])}</b>"),
                ]
            )
        robust = section.get("robust_model")
        if robust:
            gain = robust["robust_accuracy"] - und["robust_accuracy"]
            table_rows.append(
                [
                    Markup(
                        f"robust training<div class='sub'>{esc(Path(robust['file']).name)}</div>"
                    ),
                    "–",
                    pct(robust["clean_accuracy"]),
                    pct(robust["robust_accuracy"]),
                    pct(robust["robust_accuracy"]),
                    pct(robust["robust_accuracy"]),
                    f"{100 * gain:+.1f}",
                    "other model",
                ]
            )
        parts.append(
            table(
                [
                    "defence",
                    "adaptive attack",
                    "clean",
                    "standard attack",
                    "adaptive attack",
                    "worst case",
                    "gain (points)",
                    "assessment",
                ],
                table_rows,
                caption=f"Trade-off at ε = {eps:g}: accuracy on the {section['n']} inputs",
            )
        )
        parts.append(f"<p>{esc(section['summary'])}</p><ul>")
        parts += [f"<li>{esc(r['name'].replace('_', ' '))}: {esc(r['text'])}</li>" for r in rows]
        parts.append("</ul>")
    det = section.get("detection")
    if det:
        parts.append("<h3>Detection by feature squeezing</h3>")
        if det["detection_rate"] is None:
            parts.append(
                "<p>The attack fooled the model on no input, so there was nothing to detect.</p>"
            )
        else:
            parts.append(
                f"<p>Feature squeezing (Xu et al. 2018) compares the model's prediction on an "
                f"input with its predictions on squeezed copies "
                f"({esc(_params(det['params']))}) and flags the input when they disagree. "
                f"With the threshold set on {det['n_threshold']} "
                f"{esc(det['threshold_inputs'])} for {pct(det['fpr_target'], 0)} false "
                f"alarms, it flags <b>{pct(det['detection_rate'])}</b> of the "
                f"{det['n_adversarial']} adversarial examples that fooled the undefended "
                f"model (PGD, ε = {eps:g}); it flags {pct(det['fpr_measured'])} of the clean "
                "inputs attacked. An attacker who knows the detector can often evade it "
                "too, so read this as what it catches from an attacker who does not.</p>"
            )
    parts.append(checklist(section.get("evaluation_checks")))
    if section["skipped"]:
        parts.append("<h3>Skipped</h3><ul>")
        parts += [f"<li>{esc(s['defence'])}: {esc(s['reason'])}</li>" for s in section["skipped"]]
        parts.append("</ul>")
    return "\n".join(parts)


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items() if k != "seed") or "defaults"
