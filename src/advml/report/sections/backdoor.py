"""HTML of the backdoor section: trigger examples, activation profiles, pruning curve,
detector precision and recall."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from advml.report.components import esc, figure, pct, table, verdict_badge

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
    target_name = names[target] if target < len(names) else str(target)
    parts = [
        "<p>A backdoor is planted by whoever can add data to the training set: they stamp "
        "a small patch (the trigger) on a few images and label them with a class of their "
        "choice. The trained model behaves normally on clean images and obeys the patch. "
        f"Here a copy of the model was retrained with {section['n_poisoned']} of "
        f"{section['n_train']} training images ({pct(section['fraction'], 0)}) patched and "
        f"labelled '{esc(target_name)}'. {esc(section['reduced']['note'])}.</p>",
        f"<div class='card'>{verdict_badge(section['verdict'])}</div>",
        table(
            ["model", "clean accuracy", "attack success"],
            [
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
            caption=f"Measured on {section['n_evaluation']} test images no defence saw.",
        ),
    ]
    if "clean_examples" in artifacts and len(artifacts["clean_examples"]):
        parts.append(
            figure(
                trigger_examples(artifacts, names, ds["bounds"]),
                alt="clean and triggered test images",
                caption="<b>The trigger.</b> Top: clean test images and the backdoored "
                "model's label. Bottom: the same images with the patch in the corner, and "
                "the label the model now gives (red). A label equal to "
                f"'{esc(target_name)}' means the backdoor fired.",
                fig_id="fig-backdoor-trigger",
            )
        )
    if "profile_clean" in artifacts:
        layer = section["neuron_analysis"]["layer"]
        parts.append(
            figure(
                activation_profiles(artifacts, layer),
                alt="activation profiles on clean and triggered inputs",
                caption=f"<b>Backdoor neurons.</b> Mean activation of each unit of "
                f"<code>{esc(layer)}</code> on clean (blue) and triggered (red) validation "
                "images, units sorted by their clean activity. Red bars standing up where "
                "blue ones are flat are units that wake up only for the trigger; "
                f"{section['neuron_analysis']['n_backdoor_units']} units look like that. "
                "Pruning removes units from the left.",
                fig_id="fig-backdoor-profile",
            )
        )
    crossing = section["pruning"]["crossing"]
    parts.append(
        figure(
            pruning_curve(section["pruning"], section["fine_pruning"]),
            alt="pruning curve",
            caption="<b>Pruning defence.</b> Clean accuracy (blue) and attack success (red) "
            "as more and more of the least active units are switched off, using only the "
            "owner's clean validation images to choose them. The dotted line is where the "
            "owner stops (before clean validation accuracy falls by 4 points); the stars "
            "are the result after fine-tuning the pruned model on the same clean images. "
            + (
                f"Attack success first falls to 5% or less at {pct(crossing, 0)} pruned."
                if crossing is not None
                else "Pruning alone never brings attack success down to 5%."
            ),
            fig_id="fig-backdoor-pruning",
        )
    )
    parts.append(
        figure(
            detector_bars(section["detectors"]),
            alt="detector precision and recall",
            caption="<b>Detectors.</b> Activation clustering (green) looks for a separate "
            "cluster in each label's training images and is scored against the truly "
            f"poisoned images of label '{esc(target_name)}' (precision: flagged images that "
            "were poisoned; recall: poisoned images that were flagged). STRIP (purple) "
            "screens inputs at run time; its threshold allows 1% false alarms on clean "
            "validation images (grey: false alarms measured on clean test images).",
            fig_id="fig-backdoor-detectors",
        )
    )
    nc = section["detectors"].get("neural_cleanse")
    if nc is not None:
        parts.append(
            f"<p>Neural Cleanse: {'flagged' if nc['flagged'] else 'did not flag'} the model"
            + (f" (target {esc(nc['target'])})" if nc["target"] is not None else "")
            + f"; largest anomaly index {nc['max_anomaly_index']:.2f} (above 2 flags).</p>"
        )
        if "nc_mask" in artifacts and "trigger_mask" in artifacts:
            parts.append(
                figure(
                    reversed_trigger(artifacts),
                    alt="real and reverse-engineered trigger",
                    caption="<b>Neural Cleanse.</b> Left: where the real trigger sits. Right: "
                    "the smallest patch Neural Cleanse found that sends clean validation "
                    "images to the most suspicious label. A small bright spot in the same "
                    "corner means it found the backdoor without being told the trigger.",
                    fig_id="fig-backdoor-neural-cleanse",
                )
            )
    parts.append("<h3>What each defence used</h3><ul>")
    parts += [f"<li>{esc(k)}: {esc(v)}</li>" for k, v in section["data_used"].items()]
    parts.append("</ul>")
    return "\n".join(parts)


def _failed(part: dict[str, Any]) -> str:
    """' (repair failed)' when the backdoor survived this repair (attack success high)."""
    return " (repair failed)" if part.get("repair_failed") else ""
