"""Label flipping: the simplest poisoning, changing labels and nothing else."""

from __future__ import annotations

from typing import Literal

import numpy as np

from advml import registry
from advml.poisoning.base import PoisoningAttack, choose
from advml.validation import check_choice, check_number

__all__ = ["LabelFlip"]


@registry.register("poisoning", "label_flip")
class LabelFlip(PoisoningAttack):
    """Flip the labels of a fraction of the training samples.

    ``"random"`` gives each chosen sample a different label drawn uniformly (an
    availability attack: accuracy drops everywhere); ``"targeted"`` relabels chosen
    samples of ``source`` as ``target`` (an integrity attack on one class), as studied by
    Biggio, Nelson & Laskov (2012) and Xiao et al. (2012). Inputs are left unchanged.

    Parameters
    ----------
    fraction : float
        Share of samples to flip, in (0, 1): of the whole training set (random) or of
        the ``source`` class (targeted).
    mode : {"random", "targeted"}
        Random new labels, or ``source`` to ``target``.
    source : int
        Class whose samples are flipped (targeted only).
    target : int
        Label they get (targeted only).
    seed : int
        Seed of the choice of samples and of the random labels.
    """

    def __init__(
        self,
        *,
        fraction: float = 0.1,
        mode: Literal["random", "targeted"] = "random",
        source: int = 1,
        target: int = 0,
        seed: int = 0,
    ) -> None:
        check_number("fraction", fraction, low=0, high=1, low_inclusive=False, high_inclusive=False)
        check_choice("mode", mode, ("random", "targeted"))
        check_number("source", source, low=0, integer=True)
        check_number("target", target, low=0, integer=True)
        if mode == "targeted" and source == target:
            raise ValueError(f"source and target are both {target}; choose different classes")
        check_number("seed", seed, low=0, integer=True)
        self.fraction = fraction
        self.mode = mode
        self.source = source
        self.target = target
        self.seed = seed

    def _poison(
        self, x: np.ndarray, y: np.ndarray, n_classes: int, bounds: tuple[float, float]
    ) -> tuple[np.ndarray, None, int | None, None]:
        if self.mode == "targeted":
            for name in ("source", "target"):
                if getattr(self, name) >= n_classes:
                    raise ValueError(
                        f"{name}={getattr(self, name)} is not a class of a "
                        f"{n_classes}-class problem"
                    )
            pool = np.flatnonzero(y == self.source)
        else:
            pool = np.arange(len(y))
        count = round(self.fraction * pool.size)
        if count < 1:
            raise ValueError(f"fraction={self.fraction} of {pool.size} samples flips none")
        idx = choose(pool, count, self.seed, "samples can be flipped")
        if self.mode == "targeted":
            y[idx] = self.target
            return idx, None, int(self.target), None
        rng = np.random.default_rng([self.seed, 1])
        # A uniform draw among the other K - 1 labels: add 1..K-1 modulo K.
        y[idx] = (y[idx] + rng.integers(1, n_classes, size=idx.size)) % n_classes
        return idx, None, None, None
