"""Cross-evaluation of robust training: models trained against attack A, attacked with B.

Adversarial training mostly protects against the attack it anticipated: a model
trained on FGSM examples can resist FGSM and still fall to PGD, and every model is
only as robust as the strongest attack it was tested with. The matrix makes that
visible: one row per trained model (``standard``/none, FGSM, PGD, TRADES), one column
per evaluation attack, each cell the accuracy under that attack.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import Tensor

from advml import registry
from advml.evasion.base import EvasionAttack
from advml.models.base import Classifier
from advml.runtime.plain import plain
from advml.runtime.progress import progress
from advml.validation import check_labels, check_number

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["CrossEvaluation", "cross_evaluate", "default_attacks", "plot_cross_evaluation"]


@dataclass(frozen=True)
class CrossEvaluation:
    """Accuracy of each model on clean inputs and under each attack.

    ``robust[i, j]`` is the fraction of the ``n`` inputs that model ``models[i]`` still
    labels correctly after attack ``attacks[j]`` (an input it got wrong unattacked
    counts as not robust).
    """

    models: tuple[str, ...]
    attacks: tuple[str, ...]
    clean: np.ndarray
    """Clean accuracy per model, shape ``(len(models),)``."""
    robust: np.ndarray
    """Accuracy under attack, shape ``(len(models), len(attacks))``."""
    n: int
    seconds: float
    attack_params: Mapping[str, Mapping[str, Any]]

    def accuracy_of(self, model: str, attack: str) -> float:
        """Accuracy of ``model`` under ``attack`` (``"clean"`` for no attack)."""
        if model not in self.models:
            raise ValueError(f"model must be one of {', '.join(self.models)}; got {model!r}")
        i = self.models.index(model)
        if attack == "clean":
            return float(self.clean[i])
        if attack not in self.attacks:
            raise ValueError(
                f"attack must be 'clean' or one of {', '.join(self.attacks)}; got {attack!r}"
            )
        return float(self.robust[i, self.attacks.index(attack)])

    def worst_case(self) -> np.ndarray:
        """Per model, the lowest accuracy over all attacks (the number to plan with)."""
        return self.robust.min(axis=1) if self.attacks else self.clean.copy()

    def most_robust(self) -> dict[str, str]:
        """For each attack, the model with the highest accuracy under it."""
        return {
            a: self.models[int(np.argmax(self.robust[:, j]))] for j, a in enumerate(self.attacks)
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain data for reports (percent-free fractions)."""
        return {
            "models": list(self.models),
            "attacks": list(self.attacks),
            "clean": [float(v) for v in self.clean],
            "robust": [[float(v) for v in row] for row in self.robust],
            "worst_case": [float(v) for v in self.worst_case()],
            "n": self.n,
            "seconds": self.seconds,
            "attack_params": plain(self.attack_params, finite=True),
        }


def cross_evaluate(
    models: Mapping[str, Classifier],
    attacks: Mapping[str, EvasionAttack],
    x: np.ndarray | Tensor,
    y: np.ndarray | Tensor,
    *,
    show_progress: bool = True,
) -> CrossEvaluation:
    """Attack every model with every attack on ``(x, y)``; return the accuracy matrix.

    Parameters
    ----------
    models : mapping of name to Classifier
        The rows, e.g. ``{"standard": m0, "fgsm_training": m1, "pgd_training": m2}``.
    attacks : mapping of name to EvasionAttack
        The columns (see :func:`default_attacks`); untargeted attacks.
    x : array of shape (n, *input_shape)
        Test inputs within the models' bounds.
    y : array of shape (n,)
        Their true labels (the attacks use them, as a white-box evaluation should).
    show_progress : bool
        A progress bar over the (model, attack) cells.

    Returns
    -------
    CrossEvaluation
    """
    if not models:
        raise ValueError("models is empty: give at least one model to evaluate")
    for name, attack in attacks.items():
        if not isinstance(attack, EvasionAttack):
            raise TypeError(
                f"attacks[{name!r}] must be an evasion attack, got {type(attack).__name__}"
            )
        if getattr(attack, "targeted", False):
            raise ValueError(f"attacks[{name!r}] is targeted; cross-evaluation uses untargeted")
    y_np = y.detach().cpu().numpy() if isinstance(y, Tensor) else np.asarray(y)
    first = next(iter(models.values()))
    check_labels("y", y_np, first.n_classes, len(x))
    start = time.perf_counter()
    names, attack_names = tuple(models), tuple(attacks)
    clean = np.zeros(len(names))
    robust = np.zeros((len(names), len(attack_names)))
    cells = [(i, j) for i in range(len(names)) for j in range(-1, len(attack_names))]
    bar = progress(cells, desc="cross-evaluation", enabled=show_progress)
    for i, j in bar:
        model = models[names[i]]
        if j < 0:
            pred = _numpy(model.predict(x))
            clean[i] = float((pred == y_np).mean())
            continue
        bar.set_postfix_str(f"{names[i]} / {attack_names[j]}")
        result = attacks[attack_names[j]].generate(model, x, y_np)
        robust[i, j] = float((result.y_adv == y_np).mean())
    return CrossEvaluation(
        models=names,
        attacks=attack_names,
        clean=clean,
        robust=robust,
        n=int(y_np.shape[0]),
        seconds=time.perf_counter() - start,
        attack_params={a: dict(attacks[a].get_params()) for a in attack_names},
    )


def default_attacks(
    *, eps: float = 0.3, steps: int = 20, seed: int = 0, max_queries: int = 300
) -> dict[str, EvasionAttack]:
    """The evaluation attacks at L∞ radius ``eps``: FGSM, PGD, and others registered.

    FGSM and PGD (``steps`` steps, random start) always; APGD with the cross-entropy
    and the DLR loss (Croce & Hein 2020; DLR sees through some gradient masking) and
    Square (``max_queries`` queries, scores only: no gradients to mask) when registered
    in the evasion family. Settings an attack lacks are left out; attacks without an
    ε (C&W, DeepFool) are not used, as they have no radius to compare at.
    """
    check_number("eps", eps, low=0, low_inclusive=False)
    check_number("steps", steps, low=1, integer=True)
    check_number("max_queries", max_queries, low=1, integer=True)
    available = set(registry.available("evasion"))
    wanted: list[tuple[str, str, dict[str, Any]]] = [
        ("fgsm", "fgsm", {}),
        (f"pgd-{steps}", "pgd", {"steps": steps}),
        ("apgd-ce", "apgd", {"steps": steps, "loss": "ce"}),
        ("apgd-dlr", "apgd", {"steps": steps, "loss": "dlr"}),
        ("square", "square", {}),
    ]
    out: dict[str, EvasionAttack] = {}
    for label, name, extra in wanted:
        if name not in available:
            continue
        schema = registry.schema("evasion", name)
        settings: dict[str, Any] = {"eps": eps, **extra}
        if "norm" in schema:
            settings["norm"] = "inf"
        if "seed" in schema:
            settings["seed"] = seed
        for budget in ("max_queries", "n_queries", "queries", "query_budget"):
            if budget in schema:
                settings[budget] = max_queries
                break
        else:
            if name == "square":
                continue  # no way to bound its cost here
        settings = {k: v for k, v in settings.items() if k in schema}
        if "eps" not in settings:
            continue
        attack = registry.create("evasion", name, **settings)
        out[label] = attack
    return out


def plot_cross_evaluation(result: CrossEvaluation, ax: Axes | None = None) -> Figure:
    """A heatmap of the matrix: rows are training methods, columns clean + attacks.

    Each cell shows the accuracy in percent (darker is more robust). Read a row to
    see what one training bought; read a column to see which training resists that
    attack. A bright cell in a row that is dark elsewhere is the pattern "effective
    mostly against the anticipated attack".
    """
    import matplotlib.pyplot as plt

    values = np.column_stack([result.clean, result.robust]) * 100
    columns = ["clean", *result.attacks]
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.3 * len(columns) + 2.2, 0.55 * len(result.models) + 1.4))
    else:
        fig = ax.figure  # type: ignore[assignment]
    image = ax.imshow(values, cmap="Greens", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(len(columns)), columns)
    ax.set_yticks(range(len(result.models)), result.models)
    ax.set_xlabel("evaluated with (attack)")
    ax.set_ylabel("trained with")
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            v = values[i, j]
            ax.text(
                j,
                i,
                f"{v:.0f}%",
                ha="center",
                va="center",
                fontsize=9,
                color="white" if v > 60 else "black",
            )
    fig.colorbar(image, ax=ax, label="accuracy (%)", fraction=0.046, pad=0.04)
    return fig


def _numpy(a: np.ndarray | Tensor) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, Tensor) else np.asarray(a)
