"""The backdoor section's figures and data for ``templates/sections/backdoor.html.j2``:
trigger examples, activation profiles, pruning curve, detector precision and recall."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from advml.report.components import pct
from advml.report.templating import b64, render_template

__all__ = ["render"]


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _image(x: np.ndarray) -> np.ndarray:
    return x[0] if x.shape[0] == 1 else np.moveaxis(x, 0, -1)


def trigger_examples(
    artifacts: dict[str, np.ndarray], class_names: list[str], bounds: list[float]
) -> bytes:
    """Clean test images over the same images with the trigger, with the model's labels."""
    clean, trig = artifacts["clean_examples"], artifacts["triggered_examples"]
    n = len(clean)
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.6), squeeze=False)
    low, high = bounds
    for i in range(n):
        for row, (x, pred) in enumerate(
            ((clean[i], artifacts["clean_pred"][i]), (trig[i], artifacts["triggered_pred"][i]))
        ):
            ax = axes[row][i]
            ax.imshow(_image(x), cmap="gray", vmin=low, vmax=high)
            ax.set_title(str(class_names[int(pred)]), color="black" if row == 0 else "crimson")
            ax.axis("off")
    axes[0][0].text(-0.3, 0.5, "clean", transform=axes[0][0].transAxes, rotation=90, va="center")
    axes[1][0].text(
        -0.3, 0.5, "with trigger", transform=axes[1][0].transAxes, rotation=90, va="center"
    )
    return _png(fig)


def activation_profiles(artifacts: dict[str, np.ndarray], layer: str) -> bytes:
    """Mean activation per unit on clean and triggered inputs, units sorted by clean mean."""
    clean, trig = artifacts["profile_clean"], artifacts["profile_triggered"]
    order = np.argsort(clean)
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    ax.bar(np.arange(clean.size), trig[order], color="crimson", alpha=0.6, label="triggered")
    ax.bar(np.arange(clean.size), clean[order], color="steelblue", alpha=0.7, label="clean")
    ax.set_xlabel(f"units of {layer}, sorted by mean activation on clean inputs")
    ax.set_ylabel("mean activation")
    ax.legend()
    return _png(fig)


def pruning_curve(pruning: dict[str, Any], fine: dict[str, Any]) -> bytes:
    """Clean accuracy and attack success against the fraction of units pruned."""
    c = pruning["curve"]
    f = np.array(c["fractions"], dtype=float)
    acc = np.array([np.nan if v is None else v for v in c["clean_accuracy"]], dtype=float)
    asr = np.array([np.nan if v is None else v for v in c["attack_success"]], dtype=float)
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    ax.plot(f, acc, marker="o", label="clean accuracy")
    ax.plot(f, asr, marker="s", color="crimson", label="attack success")
    ax.axvline(pruning["fraction_pruned"], ls=":", color="gray", label="defender's stop")
    if fine.get("attack_success") is not None:
        ax.scatter(
            [pruning["fraction_pruned"]] * 2,
            [fine["clean_accuracy"], fine["attack_success"]],
            marker="*",
            s=140,
            color=["tab:blue", "crimson"],
            zorder=5,
            label="after fine-pruning",
        )
    ax.set_xlabel(f"fraction of {pruning['layer']}'s units pruned")
    ax.set_ylabel("rate")
    ax.set_ylim(-0.03, 1.03)
    ax.legend(fontsize=8)
    return _png(fig)


def detector_bars(detectors: dict[str, Any]) -> bytes:
    """Precision, recall and F1 of activation clustering; STRIP detection and false alarms."""
    ac = detectors["activation_clustering"]["target_class"]
    st = detectors["strip"]
    names = ["AC precision", "AC recall", "AC F1", "STRIP detected", "STRIP false alarms"]
    values = [ac["precision"], ac["recall"], ac["f1"], st["detection_rate"], st["false_rejection"]]
    fig, ax = plt.subplots(figsize=(6.0, 3.0))
    ax.bar(names, values, color=["tab:green"] * 3 + ["tab:purple", "tab:gray"])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("rate")
    ax.tick_params(axis="x", labelsize=8)
    return _png(fig)


def reversed_trigger(artifacts: dict[str, np.ndarray]) -> bytes:
    """The real trigger's mask beside the one Neural Cleanse reverse-engineered."""
    fig, axes = plt.subplots(1, 2, figsize=(4.2, 2.3))
    for ax, key, title in (
        (axes[0], "trigger_mask", "real trigger"),
        (axes[1], "nc_mask", "reverse-engineered"),
    ):
        mask = artifacts[key]
        ax.imshow(mask if mask.ndim == 2 else mask.reshape(mask.shape[-2:]), cmap="magma")
        ax.set_title(title)
        ax.axis("off")
    return _png(fig)


def render(
    section: dict[str, Any], artifacts: dict[str, np.ndarray], report: dict[str, Any]
) -> str:
    ds = report["dataset"]
    target = section["target"]
    names = ds["class_names"]
    nc = section["detectors"].get("neural_cleanse")
    return render_template(
        "sections/backdoor.html.j2",
        section=section,
        target_name=names[target] if target < len(names) else str(target),
        rows=[
            ["audited model", pct(section["audited_clean_accuracy"]), "–"],
            ["backdoored copy", pct(section["clean_accuracy"]), pct(section["attack_success"])],
            [
                f"pruned ({pct(section['pruning']['fraction_pruned'], 0)} of units)"
                + _failed(section["pruning"]),
                pct(section["pruning"]["clean_accuracy"]),
                pct(section["pruning"]["attack_success"]),
            ],
            [
                "fine-pruned" + _failed(section["fine_pruning"]),
                pct(section["fine_pruning"]["clean_accuracy"]),
                pct(section["fine_pruning"]["attack_success"]),
            ],
        ],
        trigger=b64(trigger_examples(artifacts, names, ds["bounds"]))
        if "clean_examples" in artifacts and len(artifacts["clean_examples"])
        else "",
        profile=b64(activation_profiles(artifacts, section["neuron_analysis"]["layer"]))
        if "profile_clean" in artifacts
        else "",
        pruning=b64(pruning_curve(section["pruning"], section["fine_pruning"])),
        detectors=b64(detector_bars(section["detectors"])),
        reversed=b64(reversed_trigger(artifacts))
        if nc is not None and "nc_mask" in artifacts and "trigger_mask" in artifacts
        else "",
    )


def _failed(part: dict[str, Any]) -> str:
    """' (repair failed)' when the backdoor survived this repair (attack success high)."""
    return " (repair failed)" if part.get("repair_failed") else ""
