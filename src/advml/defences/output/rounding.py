"""Rounding: the API reveals its probabilities rounded to a few decimals."""

from __future__ import annotations

import torch
from torch import Tensor

from advml import registry
from advml.defences.output.base import OutputDefence
from advml.validation import check_number

__all__ = ["Rounding"]


@registry.register("output_defence", "rounding")
class Rounding(OutputDefence):
    """Round every probability to ``decimals`` decimal places.

    The counter-measure Fredrikson et al. (2015, §7) evaluate against model inversion and
    Tramèr et al. (2016, §8.1) against equation solving. Probabilities that round to 0
    are hidden. Ties created at the top are answered with the model's label.

    Parameters
    ----------
    decimals : int
        Decimal places kept (>= 0); 2 shows ``0.87``, 0 shows only ``0`` or ``1``.
    """

    def __init__(self, *, decimals: int = 2) -> None:
        check_number("decimals", decimals, low=0, integer=True)
        self.decimals = decimals

    def _harden(self, p: Tensor, generator: torch.Generator) -> Tensor:
        return torch.round(p, decimals=int(self.decimals))

    def describe(self) -> str:
        return f"probabilities rounded to {self.decimals} decimals"
