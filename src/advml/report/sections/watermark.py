"""The watermark section's figures and data for ``templates/sections/watermark.html.j2``:
verification, false claims, removal, and two pictures."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from advml.report.templating import b64, render_template

__all__ = ["match_chart", "render", "trigger_grid"]

_KIND_WORDS = {
    "white-box": "a signature hidden in one layer's weights, read back from the weights",
    "trigger-set": "secret inputs with labels only the owner's training assigned, checked "
    "by querying the model",
}


def render(
    section: dict[str, Any], artifacts: dict[str, np.ndarray], report: dict[str, Any]
) -> str:
    shown = bool(artifacts) and len(artifacts.get("examples_x", [])) > 0
    ds = report["dataset"]
    return render_template(
        "sections/watermark.html.j2",
        section=section,
        kind_words=_KIND_WORDS,
        removal_notes=[
            sorted({r["note"] for r in s["removal"] if r.get("note")}) for s in section["schemes"]
        ],
        matches=b64(match_chart(section)) if section["schemes"] else "",
        triggers=b64(trigger_grid(artifacts, ds["class_names"], ds["bounds"])) if shown else "",
        trigger_scheme=str(artifacts["examples_scheme"][0]) if shown else "",
        shown_matches=_shown_matches(artifacts) if shown else "",
    )


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
        bars += [_independent_bar(s), ("before marking", s["unmarked"])]
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


def _independent_bar(scheme: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The independent model's bar; of several, the one that matched the key best (the
    closest to a false claim)."""
    many = scheme.get("independent_models")
    if not many or many["n"] <= 1:
        return "independent", scheme["independent"]
    closest = max(many["checks"], key=lambda c: c["match_rate"])
    return f"independent (best of {many['n']})", closest


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
