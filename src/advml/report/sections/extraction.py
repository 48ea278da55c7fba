"""HTML of the extraction section: fidelity-vs-queries curves, stealing, hardening, transfer."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from advml.report.components import Markup, esc, figure, pct, table, verdict_badge

__all__ = ["fidelity_curve", "render"]


def render(
    section: dict[str, Any], artifacts: dict[str, np.ndarray], report: dict[str, Any]
) -> str:
    stealing = section["stealing"]
    budget = section["budget"]
    parts = [
        "<p>A model-stealing attacker never sees the model's weights: they send inputs to its "
        "prediction API, record the answers and train a copy of their own on them. "
        "<i>Agreement</i> (fidelity) is the share of inputs on which the copy gives the same "
        "label as the model. A faithful copy lets the attacker use the model without paying, "
        "and prepare adversarial examples offline.</p>",
        f"<div class='card'>{verdict_badge(section['verdict'])}</div>",
    ]
    if any(len(c["curve"]) for c in _curves(section)):
        parts.append(
            figure(
                fidelity_curve(section),
                alt="agreement of the stolen copy with the model against the number of queries",
                caption="<b>Fidelity against queries.</b> Agreement of the attacker's copy "
                "with the model on the evaluated test inputs after each round of questions "
                "(log scale). The solid line reads the model's own answers; the others read "
                "them behind an output defence. A defence helps when its line lies to the "
                "right of the solid one: the attacker then needs more questions for the same "
                "copy. Lines that coincide hide each other (top-1 answers are labels in all "
                "but name).",
                fig_id="fig-extraction-curve",
            )
        )
    parts.append("<h3>Learning-based stealing</h3>")
    parts.append(
        f"<p class='sub'>attacker data: {esc(section['pool'])}; copy: "
        f"{esc(budget['copy_architecture'])}, {budget['epochs']} epochs (at least "
        f"{budget['min_steps']} steps) per round; {budget['rounds']} rounds up to "
        f"{budget['queries']:,} queries; fidelity on random inputs over "
        f"{budget['n_random']:,} uniform random inputs</p>"
    )
    rows: list[list[Any]] = [
        [
            f"the model's {section['outputs']}",
            f"{stealing['queries']:,}",
            pct(stealing["fidelity"]),
            pct(stealing.get("fidelity_random")),
            pct(stealing["accuracy"]),
            pct(stealing["victim_accuracy"]),
            "–",
        ]
    ]
    for h in section["hardening"]:
        if "fidelity" not in h:
            continue
        rows.append(
            [
                h["reveals"],
                f"{h['queries']:,}",
                pct(h["fidelity"]),
                pct(h.get("fidelity_random")),
                pct(h["accuracy"]),
                pct(h["utility"]["accuracy"]),
                _cost(h["query_cost"]),
            ]
        )
    parts.append(
        table(
            (
                "what the API answers",
                "queries",
                "agreement (test)",
                "agreement (random inputs)",
                "copy's accuracy",
                "model's accuracy",
                "query cost of the defence",
            ),
            rows,
        )
    )
    parts.append(
        "<p class='sub'>Query cost: against the unprotected model, the attacker reached the "
        "protected copy's agreement with fewer questions; the factor is how many times more "
        "questions the defence makes them ask (interpolated between rounds).</p>"
    )
    transfer = stealing.get("transfer")
    if transfer:
        white = _white_box(report, transfer["eps"])
        text = (
            f"<h3>Extraction enables evasion</h3><p>{esc(transfer['attack'].upper())} with ε = "
            f"{transfer['eps']:g} ({transfer['steps']} steps) on the stolen copy, then sent to "
            f"the model: {pct(transfer['transfer_success'])} of the {transfer['n_eligible']} "
            f"inputs the model got right are now misclassified by it (on the copy itself: "
            f"{pct(transfer['success_on_copy'])})."
        )
        if white is not None:
            text += f" A white-box attacker with the same ε reaches {pct(white)} (evasion section)."
        parts.append(text + "</p>")
    parts.append(_equation_html(section["equation_solving"], section["hardening"]))
    parts.append(_hardening_html(section["hardening"]))
    return "\n".join(parts)


def _cost(cost: dict[str, Any]) -> str:
    if cost["bound"] == "none":
        return "none"
    prefix = "≥ " if cost["bound"] == "at least" else "≈ "
    return f"{prefix}{cost['factor']:.1f}x"


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


def _equation_html(eq: dict[str, Any], hardening: list[dict[str, Any]]) -> str:
    out = [
        "<h3>Equation solving</h3><p>For linear and logistic models, each answer with "
        "scores is a set of linear equations in the model's parameters; d + 1 answers "
        "(d input features) determine them exactly (Tramèr et al. 2016).</p>"
    ]
    status = eq["status"]
    if status in ("exact", "approximate"):
        out.append(
            f"<p><b>{'Exact copy' if status == 'exact' else 'Not exact'}</b>: with "
            f"{eq['queries']:,} queries (the minimum d + 1 = {eq['minimum_queries']:,}) the "
            f"solved linear model agrees with the model on {pct(eq['fidelity'])} of test "
            f"inputs and {pct(eq.get('fidelity_random'))} of random inputs."
            + (
                ""
                if status == "exact"
                else " The model is not linear in its inputs, so the equations pin down "
                "only a linear stand-in for it."
            )
            + "</p>"
        )
    else:
        word = {"impossible": "Impossible", "failed": "Failed", "skipped": "Not run"}[status]
        out.append(f"<p><b>{word}</b>: {esc(eq['reason'])}</p>")
    rows = [
        (h["reveals"], _eq_cell(h["equation_solving"]))
        for h in hardening
        if h.get("equation_solving")
    ]
    if rows:
        out.append(table(("behind", "equation solving"), rows))
    return "".join(out)


def _eq_cell(eq: dict[str, Any]) -> Markup:
    if eq["status"] in ("exact", "approximate"):
        return Markup(
            esc(
                f"{eq['status']}: {eq['queries']:,} queries, agreement "
                f"{pct(eq['fidelity'])} (test), {pct(eq.get('fidelity_random'))} (random)"
            )
        )
    return Markup(f"<b>{esc(eq['status'])}</b>: {esc(eq['reason'])}")


def _hardening_html(hardening: list[dict[str, Any]]) -> str:
    if not hardening:
        return ""
    rows = []
    for h in hardening:
        if "skipped" in h:
            rows.append((h["reveals"], "not measured: " + h["skipped"], "–", "–"))
            continue
        rows.append(
            (
                h["reveals"],
                f"agreement {pct(h['fidelity'])}, query cost {_cost(h['query_cost'])}",
                pct(h["utility"]["accuracy"]),
                f"{h['utility']['score_change']:.3f}",
            )
        )
    return "<h3>Output hardening</h3>" + table(
        (
            "defence",
            "effect on stealing",
            "accuracy of the answers",
            "change of the scores shown (total variation)",
        ),
        rows,
    )


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
