"""The robustness table: each removal attack's result verified, and the accuracy it kept."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from advml.models.base import Classifier
from advml.runtime.progress import progress
from advml.watermark.key import WatermarkKey
from advml.watermark.removal.base import RemovalAttack
from advml.watermark.verify import DEFAULT_ALPHA, verify

__all__ = ["RobustnessRow", "RobustnessTable", "describe", "robustness_table"]


@dataclass(frozen=True)
class RobustnessRow:
    """One removal attack against one watermarked model."""

    attack: str
    """Label of the attack, e.g. ``"prune(rate=0.5)"``; ``"none"`` for the marked model."""
    params: dict[str, Any]
    detected: bool | None
    """Watermark still verified; None where verification does not apply (a white-box
    scheme and a model that shows no weights)."""
    match_rate: float | None
    """None where the model could not be checked against the key (see ``note``)."""
    chance_probability: float | None
    clean_accuracy: float
    accuracy_drop: float
    """Baseline clean accuracy minus this row's (points in [0, 1])."""
    seconds: float
    queries: int
    note: str = ""
    """Why the model could not be checked against the key (``Verification.reason``)."""


@dataclass(frozen=True)
class RobustnessTable:
    """The price of removing a watermark: per attack, detected or not and accuracy kept."""

    scheme: str
    baseline_accuracy: float
    rows: tuple[RobustnessRow, ...] = field(default_factory=tuple)

    def summary(self) -> list[dict[str, Any]]:
        return [
            {
                "attack": r.attack,
                "detected": r.detected,
                "match_rate": r.match_rate,
                "chance_probability": r.chance_probability,
                "clean_accuracy": r.clean_accuracy,
                "accuracy_drop": r.accuracy_drop,
                "seconds": r.seconds,
                "queries": r.queries,
                "note": r.note,
            }
            for r in self.rows
        ]

    def to_text(self) -> str:
        """A plain-text table for the terminal."""
        head = f"{'attack':<30} {'detected':>8} {'match':>6} {'chance p':>9} {'accuracy':>8}"
        lines = [f"watermark scheme: {self.scheme}", head, "-" * len(head)]
        for r in self.rows:
            detected = "n/a" if r.detected is None else ("yes" if r.detected else "NO")
            match = "" if r.match_rate is None else f"{r.match_rate:.2f}"
            chance = "" if r.chance_probability is None else f"{r.chance_probability:.1e}"
            lines.append(
                f"{r.attack:<30} {detected:>8} {match:>6} {chance:>9} {r.clean_accuracy:>8.4f}"
            )
        lines += [f"  {r.attack}: {r.note}" for r in self.rows if r.note]
        return "\n".join(lines)


def describe(attack: RemovalAttack) -> str:
    """``name(setting=value, ...)`` with the settings that differ from the defaults."""
    text = repr(attack)
    return attack.name + text[text.index("(") :]


def robustness_table(
    model: Classifier,
    key: WatermarkKey,
    attacks: Sequence[RemovalAttack],
    x_attacker: np.ndarray | Tensor,
    y_attacker: np.ndarray | Tensor,
    x_test: np.ndarray | Tensor,
    y_test: np.ndarray | Tensor,
    *,
    alpha: float = DEFAULT_ALPHA,
    show_progress: bool = False,
) -> RobustnessTable:
    """Run each removal attack on ``model`` and verify the result against ``key``.

    Parameters
    ----------
    model : Classifier
        The watermarked model.
    key : WatermarkKey
        Its key.
    attacks : sequence of RemovalAttack
        The attacks to run, each on the original ``model``.
    x_attacker, y_attacker : arrays
        The attacker's labelled data (``distill`` uses only the inputs).
    x_test, y_test : arrays
        Held-out data for the clean accuracy the attacker keeps.
    alpha : float
        Significance level of the ownership claim.
    show_progress : bool
        A progress bar over the removal attacks, naming the one running, with an ETA.

    Returns
    -------
    RobustnessTable
        The first row (``"none"``) is the watermarked model itself.
    """
    y_test_arr = np.asarray(torch.as_tensor(y_test).cpu())

    def accuracy(m: Classifier) -> float:
        return float((np.asarray(torch.as_tensor(m.predict(x_test)).cpu()) == y_test_arr).mean())

    base = accuracy(model)
    rows: list[RobustnessRow] = []

    def add(
        label: str, params: dict[str, Any], m: Classifier, seconds: float, queries: int
    ) -> None:
        v = verify(m, key, alpha=alpha)
        # A model the key cannot be checked against has no match rate; it is "not
        # detected" when it was read (another architecture: the watermark is gone) and
        # None when the scheme cannot read it at all (weights behind an API).
        detected = v.verified if v.applicable else None
        match = v.match_rate if v.reason is None else None
        chance = v.chance_probability if v.reason is None else None
        acc = accuracy(m)
        rows.append(
            RobustnessRow(
                attack=label,
                params=params,
                detected=detected,
                match_rate=match,
                chance_probability=chance,
                clean_accuracy=acc,
                accuracy_drop=base - acc,
                seconds=seconds,
                queries=queries,
                note=v.reason or "",
            )
        )

    add("none", {}, model, 0.0, 0)
    bar = progress(attacks, desc="removal attacks", total=len(attacks), enabled=show_progress)
    for attack in bar:
        if not isinstance(attack, RemovalAttack):
            raise TypeError(
                f"attacks must hold RemovalAttack objects (registry family "
                f"'watermark_removal'), got {type(attack).__name__}"
            )
        bar.set_postfix_str(describe(attack))
        result = attack.remove(model, x_attacker, y_attacker)
        add(describe(attack), result.params, result.model, result.seconds, result.queries)
    return RobustnessTable(scheme=key.scheme, baseline_accuracy=base, rows=tuple(rows))
