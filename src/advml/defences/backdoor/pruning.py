"""The pruning defence (Liu, Dolan-Gavitt & Garg, "Fine-Pruning", RAID 2018, §4.1).

Backdoor behaviour tends to live in units that clean inputs leave dormant. The defender
measures every unit of the last convolutional layer on *clean validation data*, prunes
them in order of increasing mean activation, and stops before clean validation accuracy
falls by more than a chosen amount. Neither triggered inputs nor test labels are used;
the attack-success curve is measured afterwards, separately, by :meth:`PruningResult.curve`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor

from advml import registry
from advml.defences.backdoor.base import (
    BackdoorDefence,
    as_numpy,
    block_output,
    default_layer,
    unit_means,
)
from advml.metrics.backdoor import backdoor_success_rate
from advml.models.base import Classifier
from advml.models.torch import TorchClassifier
from advml.validation import check_number

__all__ = ["Pruning", "PruningCurve", "PruningResult", "RepairCheck"]


@dataclass(frozen=True)
class RepairCheck:
    """A repaired model measured on clean and triggered test inputs."""

    clean_accuracy: float
    attack_success: float
    """Triggered inputs whose true label is not the backdoor label sent to it."""
    max_success: float
    """The largest attack success counted as a repair."""
    repair_failed: bool
    """True when ``attack_success`` stays above ``max_success``: the backdoor survived."""

    @classmethod
    def measure(
        cls,
        model: TorchClassifier,
        x: np.ndarray | Tensor,
        y: np.ndarray | Tensor,
        x_triggered: np.ndarray | Tensor,
        y_backdoor: np.ndarray | Tensor,
        max_success: float = 0.2,
    ) -> RepairCheck:
        check_number("max_success", max_success, low=0, high=1)
        y_np = as_numpy(y)
        with model.evaluating():
            acc = float((as_numpy(model.predict(as_numpy(x))) == y_np).mean())
            pred = as_numpy(model.predict(as_numpy(x_triggered)))
        asr = backdoor_success_rate(y_np, as_numpy(y_backdoor), pred)
        return cls(acc, asr, max_success, bool(asr > max_success))

    def to_dict(self) -> dict[str, Any]:
        return {
            "clean_accuracy": self.clean_accuracy,
            "attack_success": self.attack_success,
            "max_success": self.max_success,
            "repair_failed": self.repair_failed,
        }


@dataclass(frozen=True)
class PruningCurve:
    """Clean accuracy and attack success after each pruning step (evaluation only)."""

    fractions: np.ndarray
    clean_accuracy: np.ndarray
    attack_success: np.ndarray

    def crossing(self, max_success: float = 0.05) -> float | None:
        """The smallest pruned fraction with attack success <= ``max_success``, or None."""
        hit = np.flatnonzero(self.attack_success <= max_success)
        return float(self.fractions[hit[0]]) if hit.size else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "fractions": self.fractions.tolist(),
            "clean_accuracy": self.clean_accuracy.tolist(),
            "attack_success": self.attack_success.tolist(),
        }


@dataclass(frozen=True)
class PruningResult:
    """The pruned model and how the defender chose how much to prune."""

    model: TorchClassifier
    """A pruned copy of the model (units masked at ``layer``); the original is unchanged."""
    layer: str
    """Where the units are masked: the block output (activation) of the pruned layer."""
    order: np.ndarray
    """Units of ``layer`` in the order they are pruned (increasing clean mean activation)."""
    mean_activation: np.ndarray
    """Mean activation of each unit on the clean validation data."""
    fractions: np.ndarray
    """Fraction of units pruned at each step (0 first)."""
    val_accuracy: np.ndarray
    """Clean validation accuracy at each step."""
    n_pruned: int
    """Units pruned in ``model``: the step before the first one that lowered clean
    validation accuracy by more than the allowed drop."""

    @property
    def fraction_pruned(self) -> float:
        return self.n_pruned / self.order.size

    def keep_mask(self, n_pruned: int | None = None) -> np.ndarray:
        keep = np.ones(self.order.size, dtype=bool)
        keep[self.order[: self.n_pruned if n_pruned is None else n_pruned]] = False
        return keep

    def curve(
        self,
        x: np.ndarray | Tensor,
        y: np.ndarray | Tensor,
        x_triggered: np.ndarray | Tensor,
        y_backdoor: np.ndarray | Tensor,
    ) -> PruningCurve:
        """Evaluate every pruning step on test data (the Fine-Pruning paper's Fig. 4).

        ``x, y`` are clean test inputs and labels; ``x_triggered`` the same inputs with
        the trigger; ``y_backdoor`` the labels the backdoor sends them to. This is the
        evaluator's measurement: the pruning itself never saw these data.
        """
        x_np, y_np = as_numpy(x), as_numpy(y)
        xt_np, yb_np = as_numpy(x_triggered), as_numpy(y_backdoor)
        work = self.model.clone()
        acc, asr = [], []
        for step in range(self.fractions.size):
            n = round(float(self.fractions[step]) * self.order.size)
            work.set_unit_mask(self.layer, self.keep_mask(n))
            acc.append(float((as_numpy(work.predict(x_np)) == y_np).mean()))
            asr.append(backdoor_success_rate(y_np, yb_np, as_numpy(work.predict(xt_np))))
        return PruningCurve(self.fractions.copy(), np.array(acc), np.array(asr))

    def check(
        self,
        x: np.ndarray | Tensor,
        y: np.ndarray | Tensor,
        x_triggered: np.ndarray | Tensor,
        y_backdoor: np.ndarray | Tensor,
        *,
        max_success: float = 0.2,
    ) -> RepairCheck:
        """Whether the pruned model still obeys the trigger (see :class:`RepairCheck`)."""
        return RepairCheck.measure(self.model, x, y, x_triggered, y_backdoor, max_success)

    def summary(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "units": int(self.order.size),
            "n_pruned": self.n_pruned,
            "fraction_pruned": self.fraction_pruned,
            "val_accuracy_before": float(self.val_accuracy[0]),
            "val_accuracy_after": float(self.val_accuracy[self._chosen_step()]),
        }

    def _chosen_step(self) -> int:
        return int(np.argmin(np.abs(self.fractions * self.order.size - self.n_pruned)))


@registry.register("backdoor_defence", "pruning")
class Pruning(BackdoorDefence):
    """Prune the units clean inputs leave dormant, until clean accuracy starts to fall.

    Uses clean validation inputs and their labels only. Units of ``layer`` are ranked
    by mean activation on ``x_val`` and masked one step at a time; the model keeps the
    largest pruning whose validation accuracy is within ``max_accuracy_drop`` of the
    unpruned model's (Liu et al. stop at a 4-point drop).

    Parameters
    ----------
    layer : str, optional
        Layer whose units are pruned; default the last convolutional layer, else the
        last hidden linear layer. A convolutional or linear layer is pruned at its
        block's output, after the BatchNorm and activation that follow it (so a pruned
        unit outputs exactly 0 downstream); ``PruningResult.layer`` names that point.
    max_accuracy_drop : float
        Largest allowed fall of clean validation accuracy, in [0, 1] (0.04 = 4 points).
    step : int
        Units pruned per step (>= 1).
    max_fraction : float
        Never prune more than this share of the layer's units, in (0, 1].

    Examples
    --------
    >>> result = Pruning().repair(model, x_val, y_val)  # doctest: +SKIP
    >>> result.model.predict(x_test)  # the pruned copy  # doctest: +SKIP
    """

    uses = "clean validation inputs and their labels"

    def __init__(
        self,
        *,
        layer: str | None = None,
        max_accuracy_drop: float = 0.04,
        step: int = 1,
        max_fraction: float = 1.0,
    ) -> None:
        if layer is not None and not isinstance(layer, str):
            raise TypeError(f"layer must be a layer name (str) or None, got {layer!r}")
        check_number("max_accuracy_drop", max_accuracy_drop, low=0, high=1)
        check_number("step", step, low=1, integer=True)
        check_number("max_fraction", max_fraction, low=0, high=1, low_inclusive=False)
        self.layer = layer
        self.max_accuracy_drop = max_accuracy_drop
        self.step = step
        self.max_fraction = max_fraction

    def run(
        self, model: Classifier, x: np.ndarray | Tensor, y: np.ndarray | Tensor
    ) -> PruningResult:
        return self.repair(model, x, y)

    def repair(
        self, model: Classifier, x_val: np.ndarray | Tensor, y_val: np.ndarray | Tensor
    ) -> PruningResult:
        """Prune a copy of ``model`` using clean validation data ``(x_val, y_val)``."""
        torch_model, x_np, y_np = self._inputs(model, x_val, y_val, ("x_val", "y_val"))
        # Units are masked where they leave their block, after BatchNorm and the
        # activation (a mask before a BatchNorm leaves its shift), and ranked by their
        # mean activation there on clean data (Liu et al. 2018, §4.1).
        layer = block_output(torch_model, self.layer) if self.layer else default_layer(torch_model)
        work = torch_model.clone()
        units = work.n_units(layer)
        means = unit_means(work, x_np, layer)
        order = np.argsort(means, kind="stable")
        limit = int(np.floor(self.max_fraction * units))
        counts = list(range(0, limit + 1, int(self.step)))
        if counts[-1] != limit:
            counts.append(limit)
        keep = np.ones(units, dtype=bool)
        accs = []
        for n in counts:
            keep[:] = True
            keep[order[:n]] = False
            work.set_unit_mask(layer, keep)
            accs.append(float((as_numpy(work.predict(x_np)) == y_np).mean()))
        # Liu et al.'s stop rule: prune until the first step that costs more than the
        # allowed clean accuracy; keep the step before it. The rest of the curve (still
        # clean validation data only) is kept for the report's plot.
        too_far = np.flatnonzero(accs[0] - np.array(accs) > self.max_accuracy_drop + 1e-12)
        chosen = counts[too_far[0] - 1] if too_far.size else counts[-1]
        keep[:] = True
        keep[order[:chosen]] = False
        work.set_unit_mask(layer, keep)
        return PruningResult(
            model=work,
            layer=layer,
            order=order,
            mean_activation=means,
            fractions=np.array(counts, dtype=float) / units,
            val_accuracy=np.array(accs),
            n_pruned=chosen,
        )
