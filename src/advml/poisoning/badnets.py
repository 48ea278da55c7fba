"""BadNets: stamp a trigger on some training samples and relabel them (Gu et al. 2017)."""

from __future__ import annotations

import numpy as np

from advml import registry
from advml.poisoning.base import Mode, PoisoningAttack, choose, resolve_trigger
from advml.poisoning.triggers import Trigger
from advml.validation import check_choice, check_number

__all__ = ["BadNets"]


@registry.register("poisoning", "badnets")
class BadNets(PoisoningAttack):
    """Backdoor by data poisoning: triggered copies of training samples with a chosen label.

    A fraction of the training samples (of one source class, or of all classes) gets the
    trigger stamped on it and its label replaced: by ``target`` (all-to-one) or by
    ``i + 1 mod K`` (all-to-all), as in Gu, Dolan-Gavitt & Garg, "BadNets: Identifying
    Vulnerabilities in the Machine Learning Model Supply Chain" (2017), §3. A network
    trained on the result behaves normally on clean inputs and obeys the trigger.

    Parameters
    ----------
    trigger : Trigger or str
        The trigger object, or the name of a registered trigger built with its defaults
        (``"pixel"``, ``"pattern"``, ``"blended"``, ``"tabular"``).
    fraction : float
        Share of the samples to poison, in (0, 1): of the ``source`` class when given,
        else of the whole training set. With all-to-one, samples already labelled
        ``target`` are never chosen (poisoning them would change nothing).
    target : int
        The label triggered inputs go to (all-to-one; ignored by all-to-all).
    mode : {"all-to-one", "all-to-all"}
        Every triggered input to ``target``, or label ``i`` to ``i + 1`` modulo K.
    source : int, optional
        Poison only samples of this class (a source-specific backdoor); default all.
    seed : int
        Seed of the choice of samples; the same seed poisons the same samples.

    Examples
    --------
    >>> from advml.poisoning import BadNets
    >>> data = BadNets(fraction=0.1, target=0).poison(x_train, y_train)  # doctest: +SKIP
    >>> data.n_poisoned, data.indices[:5]  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        trigger: Trigger | str = "pattern",
        fraction: float = 0.1,
        target: int = 0,
        mode: Mode = "all-to-one",
        source: int | None = None,
        seed: int = 0,
    ) -> None:
        resolve_trigger(trigger)
        check_number("fraction", fraction, low=0, high=1, low_inclusive=False, high_inclusive=False)
        check_number("target", target, low=0, integer=True)
        check_choice("mode", mode, ("all-to-one", "all-to-all"))
        if source is not None:
            check_number("source", source, low=0, integer=True)
            if mode == "all-to-one" and source == target:
                raise ValueError(
                    f"source and target are both {target}: the trigger would not change the "
                    "label; choose another source or target"
                )
        check_number("seed", seed, low=0, integer=True)
        self.trigger = trigger
        self.fraction = fraction
        self.target = target
        self.mode = mode
        self.source = source
        self.seed = seed

    def _poison(
        self, x: np.ndarray, y: np.ndarray, n_classes: int, bounds: tuple[float, float]
    ) -> tuple[np.ndarray, Trigger, int | None, Mode]:
        for name in ("target", "source"):
            value = getattr(self, name)
            if value is not None and not (name == "target" and self.mode == "all-to-all"):
                if value >= n_classes:
                    raise ValueError(
                        f"{name}={value} is not a class of a {n_classes}-class problem"
                    )
        base = np.flatnonzero(y == self.source) if self.source is not None else np.arange(len(y))
        pool = base
        if self.mode == "all-to-one":
            pool = base[y[base] != self.target]
        count = round(self.fraction * base.size)
        if count < 1:
            raise ValueError(
                f"fraction={self.fraction} of {base.size} samples poisons none; raise fraction"
            )
        idx = choose(pool, count, self.seed, "samples can be poisoned")
        trigger = resolve_trigger(self.trigger)
        x[idx] = trigger.apply(x[idx], bounds)
        if self.mode == "all-to-one":
            y[idx] = self.target
            return idx, trigger, int(self.target), "all-to-one"
        y[idx] = (y[idx] + 1) % n_classes
        return idx, trigger, None, "all-to-all"
