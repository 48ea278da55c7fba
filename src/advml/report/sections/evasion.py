"""HTML of the evasion section: robustness curve, per-attack tables, example grid."""

from __future__ import annotations

from typing import Any

import numpy as np

from advml.report.components import checklist, esc, figure, interval_text, num, pct, verdict_badge
from advml.report.figures import example_grid, robustness_curve
from advml.report.sections.trees import render_trees

__all__ = ["render"]


def render(
    section: dict[str, Any], artifacts: dict[str, np.ndarray], report: dict[str, Any]
) -> str:
    ds = report["dataset"]
    verdict = section["verdict"]
    parts = [
        "<p>An evasion attacker changes an input slightly so that the model labels it "
        "wrongly. ε is how much each input value may change, in units of the input's range "
        "(for images, ε = 0.1 is a tenth of the way from black to white).</p>",
        f"<div class='card'>{verdict_badge(verdict)}</div>",
    ]
    if any(a["points"] for a in section["attacks"]):
        parts.append(
            figure(
                robustness_curve(section),
                alt="accuracy under attack against epsilon",
                caption="<b>Robustness curve.</b> Accuracy on the evaluated test inputs when "
                "each attack may change every input value by up to ε; the shaded bands are 95% "
                "intervals. The dashed line is the "
                "accuracy without attack; the lower a curve falls at small ε, the easier the "
                "model is to fool. The dotted line marks the ε of the verdict.",
                fig_id="fig-robustness",
            )
        )
    for attack in section["attacks"]:
        params = ", ".join(f"{k}={v}" for k, v in attack["params"].items() if k != "eps")
        parts += [
            f"<h3>{esc(attack['name'].upper())}</h3><p class='sub'>settings: {esc(params)}</p>",
            "<table><tr><th>ε</th><th>accuracy under attack</th><th>95% interval</th>"
            "<th title='among inputs classified correctly without attack'>success rate</th>"
            "<th>median L2</th><th>median L∞</th><th>queries / input</th><th>seconds</th></tr>",
        ]
        for p in attack["points"]:
            parts.append(
                f"<tr><td>{p['eps']:g}</td><td>{pct(p['robust_accuracy'])}</td>"
                f"<td>{esc(interval_text(p.get('robust_accuracy_interval')))}</td>"
                f"<td>{pct(p['success_rate'])}</td><td>{num(p['median_l2'])}</td>"
                f"<td>{num(p['median_linf'])}</td><td>{p['mean_queries']:.0f}</td>"
                f"<td>{p['seconds']:.2f}</td></tr>"
            )
        parts.append("</table>")
    worst = section.get("worst_case")
    if worst:
        parts.append(
            f"<p><b>Worst case per input</b> at ε = {worst['eps']:g} over "
            f"{esc(', '.join(a.upper() for a in worst['attacks']))}: an input counts as robust "
            f"only if no attack fooled it. {pct(worst['robust_accuracy'])} "
            f"(95% interval {esc(interval_text(worst['interval']))}).</p>"
        )
        made = [
            f"{m['name'].upper()} fooled {m['fooled']} of the {m['attacked']} inputs the "
            "attacks before it left correct"
            for m in worst.get("ensemble", [])
        ]
        if made:
            parts.append(f"<p class='sub'>Standard ensemble: {esc('; '.join(made))}.</p>")
    parts.append(checklist(section.get("evaluation_checks")))
    if artifacts and len(artifacts.get("index", [])):
        parts.append(
            figure(
                example_grid(artifacts, ds["class_names"], ds["bounds"]),
                alt="clean and adversarial examples",
                caption="<b>Examples.</b> Top: test inputs with the model's label and "
                "confidence. Middle: the same inputs after "
                f"{esc(str(verdict.get('attack', '')).upper())} at ε = "
                f"{verdict.get('eps', 0):g}, with the model's new label in red. Bottom: the "
                "change itself, magnified by the factor shown (red up, blue down) so it can "
                "be seen at all.",
                fig_id="fig-examples",
            )
        )
    parts.append(render_trees(section["trees"]) if section.get("trees") else "")
    rules = section.get("constraints")
    if rules:
        kept = [
            p["constraints_satisfied"]
            for a in section["attacks"]
            for p in a["points"]
            if "constraints_satisfied" in p
        ]
        checked = (
            f" Every adversarial input was checked: {min(kept):.0%} or more keep them."
            if kept
            else ""
        )
        parts.append(
            "<p><b>Constrained adversary.</b> The attacks may not change features "
            f"{esc(str(rules.get('immutable', [])))}, may only switch on features "
            f"{esc(str(rules.get('switch_on', [])))}, and keep the ranges "
            f"{esc(str(rules.get('ranges', {})))}.{checked}</p>"
        )
    if section["skipped"]:
        parts.append("<h3>Skipped</h3><ul>")
        parts += [f"<li>{esc(s['attack'])}: {esc(s['reason'])}</li>" for s in section["skipped"]]
        parts.append("</ul>")
    return "\n".join(parts)
