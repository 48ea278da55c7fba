"""Figures of the report, drawn with matplotlib and returned as PNG bytes."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

__all__ = ["defence_bars", "example_grid", "robustness_curve"]


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def robustness_curve(evasion: dict[str, Any]) -> bytes:
    """Accuracy against ε for each attack (shaded: 95% intervals), with the clean
    accuracy as a dashed line."""
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    for attack in evasion["attacks"]:
        pts = attack["points"]
        (line,) = ax.plot(
            [p["eps"] for p in pts],
            [100 * p["robust_accuracy"] for p in pts],
            marker="o",
            label=attack["name"].upper(),
        )
        ivs = [p.get("robust_accuracy_interval") for p in pts]
        if pts and all(ivs):
            # The 95% interval of each point (docs/audit.md, Uncertainty).
            ax.fill_between(
                [p["eps"] for p in pts],
                [100 * iv["low"] for iv in ivs if iv],
                [100 * iv["high"] for iv in ivs if iv],
                color=line.get_color(),
                alpha=0.15,
                lw=0,
            )
    ax.axhline(100 * evasion["clean_accuracy"], color="grey", ls="--", lw=1, label="clean")
    ref = evasion.get("reference_eps")
    if ref:
        ax.axvline(ref, color="tab:red", ls=":", lw=1, label=f"verdict ε = {ref:g}")
    ax.set_xlabel("ε (L∞ perturbation, in units of the input range)")
    ax.set_ylabel("accuracy under attack (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return _png(fig)


def example_grid(
    examples: dict[str, np.ndarray], class_names: list[str], bounds: list[float]
) -> bytes:
    """Rows of clean image, adversarial image and the perturbation magnified."""
    n = len(examples["index"])
    fig, axes = plt.subplots(3, n, figsize=(1.5 * n + 0.6, 5.0), squeeze=False)
    low, high = bounds
    for j in range(n):
        x, xa = examples["x"][j], examples["x_adv"][j]
        delta = xa - x
        scale = float(np.abs(delta).max()) or 1.0
        conf = examples.get("conf")
        conf_adv = examples.get("conf_adv")
        label = class_names[int(examples["pred"][j])]
        label_adv = class_names[int(examples["pred_adv"][j])]
        titles = [
            f"{label}" + (f" ({conf[j]:.0%})" if conf is not None else ""),
            f"{label_adv}" + (f" ({conf_adv[j]:.0%})" if conf_adv is not None else ""),
            f"×{1 / scale:.0f}" if scale > 0 else "none",
        ]
        images = [_image(x), _image(xa), _image(delta)]
        for i, (img, title) in enumerate(zip(images, titles, strict=True)):
            ax = axes[i][j]
            if i < 2:
                ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=low, vmax=high)
            else:
                ax.imshow(
                    img / scale if img.ndim == 2 else 0.5 + img / (2 * scale),
                    cmap="RdBu_r",
                    vmin=-1,
                    vmax=1,
                )
            ax.set_title(title, fontsize=8, color="tab:red" if i == 1 else "black")
            ax.set_xticks([])
            ax.set_yticks([])
    for i, row in enumerate(("clean", "adversarial", "perturbation")):
        axes[i][0].set_ylabel(row, fontsize=9)
    return _png(fig)


def _image(x: np.ndarray) -> np.ndarray:
    """(C, H, W) or (D,) to something imshow draws."""
    if x.ndim == 3:
        return x[0] if x.shape[0] == 1 else np.moveaxis(x, 0, -1)
    side = int(np.ceil(np.sqrt(x.size)))
    padded = np.zeros(side * side, dtype=x.dtype)
    padded[: x.size] = x.ravel()
    return padded.reshape(side, side)


def defence_bars(defences: dict[str, Any]) -> bytes:
    """Per defence: clean, standard-attack and adaptive-attack accuracy, undefended lines."""
    rows = defences["defences"]
    fig, ax = plt.subplots(figsize=(max(4.5, 1.3 * len(rows) + 1.5), 3.6))
    pos = np.arange(len(rows))
    series = (
        ("clean_accuracy", "clean", "tab:green"),
        ("standard_robust_accuracy", "standard attack", "tab:orange"),
        ("adaptive_robust_accuracy", "adaptive attack", "tab:red"),
    )
    for k, (key, label, colour) in enumerate(series):
        ax.bar(pos + (k - 1) * 0.27, [100 * r[key] for r in rows], 0.27, label=label, color=colour)
    und = defences["undefended"]
    ax.axhline(100 * und["clean_accuracy"], color="grey", ls="--", lw=1, label="undefended, clean")
    ax.axhline(100 * und["robust_accuracy"], color="black", ls=":", lw=1.2, label="undefended, PGD")
    ax.set_xticks(pos, [r["name"].replace("_", "\n") for r in rows], fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 105)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    return _png(fig)
