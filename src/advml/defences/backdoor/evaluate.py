"""Run one backdoor defence and measure it: ``advml defend`` as a function.

The defence gets only the data its ``uses`` names (clean validation data, or the
training set for the detectors); the evaluation split and, when known, the trigger are
used afterwards to measure what it achieved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from torch import Tensor

from advml.defences.backdoor.base import BackdoorDefence, PoisonDetection
from advml.metrics.backdoor import backdoor_success_rate
from advml.models.base import Classifier
from advml.models.torch import TorchClassifier, require_torch

__all__ = ["DefenceRun", "KnownBackdoor", "run_defence"]

_SCREENS = ("activation_clustering", "spectral_signatures")


class KnownBackdoor(Protocol):
    """What an evaluator knows about a planted backdoor (``PoisonedData`` has it all)."""

    @property
    def x(self) -> np.ndarray: ...

    @property
    def y(self) -> np.ndarray: ...

    @property
    def indices(self) -> np.ndarray: ...

    @property
    def target(self) -> int | None: ...

    @property
    def trigger(self) -> Any: ...

    @property
    def n_poisoned(self) -> int: ...

    def apply_trigger(self, x: np.ndarray | Tensor) -> np.ndarray | Tensor: ...

    def backdoor_labels(self, y: np.ndarray | Tensor) -> np.ndarray: ...


@dataclass(frozen=True)
class DefenceRun:
    """What one defence did, in numbers, and the repaired model when it repairs."""

    defence: str
    uses: str
    numbers: dict[str, Any] = field(default_factory=dict)
    """Measured values: ``before`` / ``after`` (clean accuracy, attack success) for a
    repair; precision, recall, F1 for a detector; detection rates for STRIP."""
    repaired: TorchClassifier | None = None

    def lines(self) -> list[str]:
        """The numbers as ``advml defend`` prints them."""
        n = self.numbers
        out: list[str] = []
        if "flagged" in n:
            out.append(
                f"  flagged {n['flagged']} of {n['n_train']} training samples in classes "
                f"{n['flagged_classes']}"
            )
            out.append(
                f"  precision {n['precision']:.2%}, recall {n['recall']:.2%}, F1 {n['f1']:.3f} "
                f"(against the {n['n_poisoned']} poisoned indices)"
            )
            if "target_f1" in n:
                out.append(f"  in the target class {n['target']}: F1 {n['target_f1']:.3f}")
            return out
        if "threshold" in n:
            out.append(
                f"  threshold {n['threshold']:.4f} (false rejection {n['frr']:.1%} on clean "
                "validation inputs)"
            )
            out.append(f"  clean test inputs flagged     {n['clean_flagged']:.2%}")
            if "triggered_flagged" in n:
                out.append(f"  triggered test inputs flagged {n['triggered_flagged']:.2%}")
            return out
        out.append(_measure_line("before", n["before"]))
        if "anomaly_index" in n:
            out.append(
                f"  anomaly index {n['anomaly_index']:.2f}; "
                + (f"backdoor to label {n['nc_target']}" if n["flagged"] else "not flagged")
            )
        if "fraction_pruned" in n:
            out.append(f"  pruned {n['fraction_pruned']:.0%} of {n['layer']}")
        if "lr" in n:
            out.append(
                f"  fine-tuned {n['epochs']} epochs at lr {n['lr']:g} (chosen on clean data)"
            )
        out.append(_measure_line("after", n["after"]))
        if n.get("repair_failed"):
            out.append(f"  repair failed: attack success stays above {n['max_success']:.0%}")
        return out


def _measure_line(label: str, m: dict[str, float | None]) -> str:
    line = f"  {label:<8} clean accuracy {m['clean_accuracy']:.2%}"
    if m.get("attack_success") is not None:
        line += f", attack success {m['attack_success']:.2%}"
    return line


def run_defence(
    defence: BackdoorDefence,
    model: Classifier,
    x_val: np.ndarray,
    y_val: np.ndarray,
    x_eval: np.ndarray,
    y_eval: np.ndarray,
    *,
    backdoor: KnownBackdoor | None = None,
    max_success: float = 0.2,
) -> DefenceRun:
    """Run ``defence`` and measure it on ``(x_eval, y_eval)``.

    Parameters
    ----------
    defence : BackdoorDefence
        A registered backdoor defence.
    model : TorchClassifier
        The (possibly backdoored) white-box model.
    x_val, y_val : arrays
        The owner's clean validation data (what repairs and STRIP use).
    x_eval, y_eval : arrays
        Clean test data no defence sees, for the measurements.
    backdoor : KnownBackdoor, optional
        The planted backdoor (``PoisonedData``): the training set the detectors screen,
        and the trigger that measures attack success. The detectors need it.
    max_success : float
        Attack success above which a repair is reported as failed.
    """
    name = defence.name
    torch_model = require_torch(model, name)
    known = backdoor is not None and backdoor.trigger is not None
    if name in _SCREENS:
        if backdoor is None:
            raise ValueError(f"--defence {name} screens a training set: give --data")
        found = defence.run(torch_model, backdoor.x, backdoor.y)
        assert isinstance(found, PoisonDetection)
        scores = found.score(backdoor.indices)
        numbers: dict[str, Any] = {
            "flagged": int(found.flagged.sum()),
            "n_train": len(backdoor.y),
            "flagged_classes": list(found.flagged_classes),
            "n_poisoned": int(backdoor.n_poisoned),
            **{k: float(scores[k]) for k in ("precision", "recall", "f1")},
        }
        if backdoor.target is not None:
            numbers["target"] = int(backdoor.target)
            numbers["target_f1"] = float(
                found.score(backdoor.indices, within_class=backdoor.target)["f1"]
            )
        return DefenceRun(name, defence.uses, numbers)
    if name == "strip":
        detector = defence.run(torch_model, x_val, y_val)
        numbers = {
            "threshold": float(detector.threshold),
            "frr": float(detector.frr),
            "clean_flagged": float(detector.detect(x_eval).detection_rate),
        }
        if known:
            assert backdoor is not None
            keep = backdoor.backdoor_labels(y_eval) != y_eval
            trig = np.asarray(backdoor.apply_trigger(x_eval[keep]))
            numbers["triggered_flagged"] = float(detector.detect(trig).detection_rate)
        return DefenceRun(name, defence.uses, numbers)

    def measure(m: TorchClassifier) -> dict[str, float | None]:
        with m.evaluating():
            acc = float((np.asarray(m.predict(x_eval)) == y_eval).mean())
            asr = None
            if known:
                assert backdoor is not None
                xt = np.asarray(backdoor.apply_trigger(x_eval), dtype=np.float32)
                pred = np.asarray(m.predict(xt.clip(*m.bounds)))
                asr = backdoor_success_rate(y_eval, backdoor.backdoor_labels(y_eval), pred)
        return {"clean_accuracy": acc, "attack_success": asr}

    numbers = {"before": measure(torch_model)}
    result = defence.run(torch_model, x_val, y_val)
    if name == "neural_cleanse":
        numbers.update(
            anomaly_index=float(result.anomaly_index.max()),
            flagged=bool(result.flagged),
            nc_target=result.target,
        )
        repaired = defence.repair(torch_model, x_val, y_val, inspection=result)  # type: ignore[attr-defined]
    else:
        repaired = result.model
        summary = result.summary()
        numbers.update(fraction_pruned=summary["fraction_pruned"], layer=summary["layer"])
        if "lr" in summary:
            numbers.update(lr=summary["lr"], epochs=summary["epochs"])
    numbers["after"] = measure(repaired)
    asr = numbers["after"]["attack_success"]
    if asr is not None:
        numbers.update(max_success=max_success, repair_failed=bool(asr > max_success))
    return DefenceRun(name, defence.uses, numbers, repaired)
