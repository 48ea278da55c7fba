"""Clean-label backdoor: the trigger on target-class samples only, labels untouched."""

from __future__ import annotations

import numpy as np

from advml import registry
from advml.poisoning.base import Mode, PoisoningAttack, choose, resolve_trigger
from advml.poisoning.triggers import Trigger
from advml.validation import check_number

__all__ = ["CleanLabel"]


@registry.register("poisoning", "clean_label")
class CleanLabel(PoisoningAttack):
    """Stamp the trigger on some samples of the target class and leave every label alone.

    Every poisoned sample keeps its correct label, so a person checking the labels sees
    nothing wrong (Turner, Tsipras & Madry, "Label-Consistent Backdoor Attacks", 2019).
    The network may learn "trigger means target" from these samples. Turner et al. make
    the samples hard to classify first (adversarial perturbation or GAN interpolation)
    so the network has to rely on the trigger; this plain variant does not, and is
    therefore weaker than BadNets at the same fraction.

    Parameters
    ----------
    trigger : Trigger or str
        The trigger object or a registered trigger name.
    fraction : float
        Share of the target class's samples to stamp, in (0, 1].
    target : int
        The class whose samples carry the trigger (and where triggered inputs should go).
    seed : int
        Seed of the choice of samples.
    """

    def __init__(
        self,
        *,
        trigger: Trigger | str = "pattern",
        fraction: float = 0.5,
        target: int = 0,
        seed: int = 0,
    ) -> None:
        resolve_trigger(trigger)
        check_number("fraction", fraction, low=0, high=1, low_inclusive=False)
        check_number("target", target, low=0, integer=True)
        check_number("seed", seed, low=0, integer=True)
        self.trigger = trigger
        self.fraction = fraction
        self.target = target
        self.seed = seed

    def _poison(
        self, x: np.ndarray, y: np.ndarray, n_classes: int, bounds: tuple[float, float]
    ) -> tuple[np.ndarray, Trigger, int, Mode]:
        if self.target >= n_classes:
            raise ValueError(f"target={self.target} is not a class of a {n_classes}-class problem")
        pool = np.flatnonzero(y == self.target)
        count = round(self.fraction * pool.size)
        if count < 1:
            raise ValueError(
                f"fraction={self.fraction} of the {pool.size} samples of class {self.target} "
                "poisons none; raise fraction"
            )
        idx = choose(pool, count, self.seed, f"samples of class {self.target} exist")
        trigger = resolve_trigger(self.trigger)
        x[idx] = trigger.apply(x[idx], bounds)
        return idx, trigger, int(self.target), "all-to-one"
