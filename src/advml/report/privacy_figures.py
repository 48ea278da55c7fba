"""Figures of the confidentiality sections: ROC curves on log-log axes, inversion grids.

Used by the membership and inversion report sections and by ``advml membership`` /
``advml invert``; each returns PNG bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from advml.report.figures import _image, _png, plt

__all__ = ["inversion_grid", "roc_figure"]


def roc_figure(curves: Mapping[str, Mapping[str, Sequence[float]]], *, n_non_members: int) -> bytes:
    """ROC curves of membership attacks on log-log axes (Carlini et al. 2022, §III-B).

    Parameters
    ----------
    curves : mapping
        Attack label -> ``{"fpr": [...], "tpr": [...]}``.
    n_non_members : int
        Sets the smallest FPR drawn (one false positive), where the axis starts.
    """
    floor = 1.0 / max(n_non_members, 1)
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    for label, c in curves.items():
        fpr = np.maximum(np.asarray(c["fpr"], dtype=float), floor / 2)
        tpr = np.maximum(np.asarray(c["tpr"], dtype=float), floor / 2)
        ax.step(fpr, tpr, where="post", label=label, lw=1.4)
    grid = np.geomspace(floor / 2, 1.0, 50)
    ax.plot(grid, grid, color="grey", ls="--", lw=1, label="guessing")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor / 2, 1.0)
    ax.set_ylim(floor / 2, 1.05)
    ax.set_xlabel("false-positive rate (non-members flagged)")
    ax.set_ylabel("true-positive rate (members found)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def inversion_grid(
    reconstructions: np.ndarray,
    class_means: np.ndarray,
    classes: Sequence[int] | np.ndarray,
    class_names: Sequence[str],
    bounds: Sequence[float],
    judged: Sequence[int] | np.ndarray | None = None,
) -> bytes:
    """Top row: each class's reconstruction, titled with the judge's label (red when
    wrong); bottom row: the mean of the class's real samples."""
    k = len(classes)
    fig, axes = plt.subplots(2, k, figsize=(1.3 * k + 0.8, 3.2), squeeze=False)
    low, high = float(bounds[0]), float(bounds[1])
    for j, c in enumerate(classes):
        for i, img in enumerate((reconstructions[j], class_means[j])):
            ax = axes[i][j]
            shown = _image(np.asarray(img))
            ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None, vmin=low, vmax=high)
            ax.set_xticks([])
            ax.set_yticks([])
        name = class_names[int(c)]
        if judged is not None:
            seen = class_names[int(judged[j])]
            right = int(judged[j]) == int(c)
            axes[0][j].set_title(
                f"{name}\njudge: {seen}", fontsize=8, color="black" if right else "tab:red"
            )
        else:
            axes[0][j].set_title(name, fontsize=8)
    axes[0][0].set_ylabel("reconstructed", fontsize=9)
    axes[1][0].set_ylabel("class mean", fontsize=9)
    return _png(fig)
