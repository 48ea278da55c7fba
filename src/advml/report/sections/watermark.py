"""HTML of the watermark section: verification, false claims, removal, and two pictures."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from advml.report.components import Markup, esc, figure, pct, table, verdict_badge

__all__ = ["match_chart", "render", "trigger_grid"]

_KIND_WORDS = {
    "white-box": "a signature hidden in one layer's weights, read back from the weights",
    "trigger-set": "secret inputs with labels only the owner's training assigned, checked "
    "by querying the model",
}


def render(
    section: dict[str, Any], artifacts: dict[str, np.ndarray], report: dict[str, Any]
) -> str:
    parts = [
        "<p>A watermark lets the owner of a model prove later that a model someone else runs "
        "is theirs. The audit embeds each scheme into a copy of this model, checks that the "
        "owner's secret key finds it, that it does not find it in a model trained "
        "independently, and what an attacker who holds the model must give up to remove it. "
        "The <i>chance probability</i> is the probability that a model not derived from the "
        "owner's matches the key this well by luck; ownership is claimed below "
        f"{section['alpha']:g}.</p>",
        f"<div class='card'>{verdict_badge(section['verdict'])}</div>",
    ]
    schemes = section["schemes"]
    if schemes:
        parts.append(
            figure(
                match_chart(section),
                alt="matches of each model against the watermark key",
                caption="<b>Matches against the owner's key.</b> For each scheme, the share of "
                "key items (signature bits or trigger inputs) each model matches: the marked "
                "copy, the marked copy after each removal attack, a model trained "
                "independently and the audited model before marking. Filled bars are claimed "
                "as the owner's, hatched ones are not. The dashed line is what a model not "
                "derived from the owner's matches by chance; above the dotted line the chance "
                f"probability is below {section['alpha']:g}.",
                fig_id="fig-watermark-matches",
            )
        )
        rows = []
        for s in schemes:
            v, ind, un = s["verification"], s["independent"], s["unmarked"]
            rows.append(
                [
                    s["name"],
                    _KIND_WORDS.get(s["kind"], s["kind"]),
                    f"{pct(s['clean_accuracy'])} ({_points(-s['accuracy_cost'])})",
                    _claim(v),
                    _claim(ind),
                    _claim(un),
                ]
            )
        parts.append(
            table(
                [
                    "scheme",
                    "what the owner keeps",
                    "accuracy of the marked copy (change)",
                    "marked copy",
                    "independent model",
                    "model before marking",
                ],
                rows,
                caption="Verification: matches, chance probability, decision",
            )
        )
        ind_model = section.get("independent_model")
        if ind_model:
            parts.append(
                f"<p class='sub'>Independent model: {esc(ind_model['description'])}; accuracy "
                f"{pct(ind_model['accuracy'])}. The owner fine-tuned on "
                f"{section['owner_samples']} training inputs; the attacker holds "
                f"{section['attacker_samples']} others.</p>"
            )
    for s in schemes:
        if not s["removal"]:
            continue
        parts.append(f"<h3>Removing the {esc(s['name'])} watermark</h3>")
        rows = [
            [
                Markup(f"<span title='{esc(r['attack'])}'>{esc(r['label'])}</span>"),
                _detected(r),
                "–" if r["matches"] is None else f"{r['matches']} of {s['key_size']}",
                "–" if r["chance_probability"] is None else f"{r['chance_probability']:.1e}",
                pct(r["clean_accuracy"]),
                _points(-r["accuracy_drop"]),
                f"{r['seconds']:.1f}",
            ]
            for r in s["removal"]
        ]
        parts.append(
            table(
                [
                    "attack",
                    "watermark still found",
                    "matches",
                    "chance probability",
                    "attacker's accuracy",
                    "change",
                    "seconds",
                ],
                rows,
            )
        )
        notes = sorted({r["note"] for r in s["removal"] if r.get("note")})
        parts += [f"<p class='sub'>{esc(n)}</p>" for n in notes]
    if artifacts and len(artifacts.get("examples_x", [])):
        names = report["dataset"]["class_names"]
        scheme = str(artifacts["examples_scheme"][0])
        parts.append(
            figure(
                trigger_grid(artifacts, names, report["dataset"]["bounds"]),
                alt="trigger inputs with the labels the key assigned",
                caption=f"<b>The {esc(scheme)} trigger set.</b> Some of the owner's secret "
                "inputs with the label the key assigned to each (top line), the label the "
                "marked copy gives (green when it matches) and the label the independent "
                f"model gives. {_shown_matches(artifacts)} The claim rests on the whole key "
                "and its false-claim test in the table above, not on these few inputs.",
                fig_id="fig-watermark-triggers",
            )
        )
    if section["skipped"]:
        parts.append("<h3>Skipped</h3><ul>")
        parts += [f"<li>{esc(s['scheme'])}: {esc(s['reason'])}</li>" for s in section["skipped"]]
        parts.append("</ul>")
    return "\n".join(parts)


def _points(delta: float) -> str:
    return f"{100 * delta:+.1f} points"


def _claim(v: dict[str, Any]) -> Markup:
    if v.get("reason"):  # the model could not be checked against the key
        return Markup(f"not claimed: {esc(v['reason'])}")
    decision = "<b>claimed</b>" if v["verified"] else "not claimed"
    return Markup(
        f"{v['matches']} of {v['n']}, p = {esc(format(v['chance_probability'], '.1e'))}: {decision}"
    )


def _detected(row: dict[str, Any]) -> Markup:
    if row["detected"] is None:
        return Markup("n/a")
    return Markup("<b>yes</b>" if row["detected"] else "<span style='color:#c62828'>no</span>")


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def match_chart(section: dict[str, Any]) -> bytes:
    """Per scheme, the match rate of each model, with the chance rate and the claim line."""
    schemes = section["schemes"]
    widths = [3 + len(s["removal"]) for s in schemes]
    fig, axes = plt.subplots(
        1,
        len(schemes),
        figsize=(1.0 + 0.65 * sum(widths), 3.8),
        sharey=True,
        squeeze=False,
        gridspec_kw={"width_ratios": widths},
    )
    for ax, s in zip(axes[0], schemes, strict=True):
        bars = [("marked", s["verification"])]
        bars += [(r["label"], r) for r in s["removal"] if r["match_rate"] is not None]
        bars += [("independent", s["independent"]), ("before marking", s["unmarked"])]
        rates = [100 * float(b["match_rate"]) for _, b in bars]
        claimed = [bool(b.get("verified", b.get("detected"))) for _, b in bars]
        colours = ["tab:green" if c else "lightgrey" for c in claimed]
        pos = np.arange(len(bars))
        drawn = ax.bar(pos, rates, color=colours, edgecolor="black", linewidth=0.6)
        for patch, c in zip(drawn, claimed, strict=True):
            if not c:
                patch.set_hatch("//")
        ax.axhline(100 * s["null_rate"], color="tab:red", ls="--", lw=1, label="chance")
        if s["threshold"] <= s["key_size"]:
            ax.axhline(
                100 * s["threshold"] / s["key_size"], color="black", ls=":", lw=1, label="claim"
            )
        ax.set_xticks(pos)
        ax.set_xticklabels([label for label, _ in bars], rotation=40, ha="right", fontsize=8)
        ax.set_title(f"{s['name']} ({s['key_size']} items)", fontsize=9)
        ax.set_ylim(0, 105)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("key items matched (%)")
    axes[0][0].legend(loc="upper right", fontsize=7)
    return _png(fig)


def _shown_matches(artifacts: dict[str, np.ndarray]) -> str:
    """What the shown inputs say, counted: a caption must not claim more than they show
    (an independent model matches some keys by chance, more often with few classes)."""
    label = np.asarray(artifacts["examples_label"])
    marked = int((np.asarray(artifacts["examples_marked"]) == label).sum())
    other = int((np.asarray(artifacts["examples_independent"]) == label).sum())
    return (
        f"Of the {label.size} shown, the marked copy matches the key on {marked} and the "
        f"independent model on {other}."
    )


def trigger_grid(
    artifacts: dict[str, np.ndarray], class_names: list[str], bounds: list[float]
) -> bytes:
    """Trigger inputs with the key's label, the marked copy's and the independent model's."""
    x = artifacts["examples_x"]
    n = x.shape[0]
    low, high = bounds
    fig, axes = plt.subplots(1, n, figsize=(1.45 * n + 0.4, 2.4), squeeze=False)
    for j in range(n):
        ax = axes[0][j]
        image = x[j]
        if image.ndim == 3 and image.shape[0] == 1:
            ax.imshow(image[0], cmap="gray", vmin=low, vmax=high)
        elif image.ndim == 3:
            ax.imshow(np.clip((np.moveaxis(image, 0, -1) - low) / (high - low), 0, 1))
        else:
            ax.imshow(np.atleast_2d(image.reshape(1, -1)), cmap="gray", vmin=low, vmax=high)
        label = int(artifacts["examples_label"][j])
        marked = int(artifacts["examples_marked"][j])
        other = int(artifacts["examples_independent"][j])
        ax.set_title(f"key: {class_names[label]}", fontsize=8)
        ax.set_xlabel(
            f"marked: {class_names[marked]}\nindep.: {class_names[other]}",
            fontsize=7,
            color="tab:green" if marked == label else "black",
        )
        ax.set_xticks([])
        ax.set_yticks([])
    return _png(fig)
