"""Top-k: the API reveals the probabilities of its k most likely classes only."""

from __future__ import annotations

import torch
from torch import Tensor

from advml import registry
from advml.defences.output.base import OutputDefence
from advml.validation import check_number

__all__ = ["TopK"]


@registry.register("output_defence", "top_k")
class TopK(OutputDefence):
    """Reveal the ``k`` largest probabilities, unchanged; hide the others (shown as 0).

    Suggested against model stealing and membership inference by Tramèr et al. (2016,
    §8) and Shokri et al. (2017, §VIII): the tail of the probability vector carries much
    of what those attacks use.

    Parameters
    ----------
    k : int
        Number of classes whose probability is revealed (>= 1); ``k=1`` reveals the
        label and its confidence. A ``k`` of at least the number of classes changes
        nothing.

    Examples
    --------
    >>> from advml.defences.output import TopK
    >>> api = TopK(k=3).wrap(model)  # doctest: +SKIP
    """

    def __init__(self, *, k: int = 1) -> None:
        check_number("k", k, low=1, integer=True)
        self.k = k

    def _harden(self, p: Tensor, generator: torch.Generator) -> Tensor:
        k = min(int(self.k), p.shape[1])
        top = p.topk(k, dim=1)
        return torch.zeros_like(p).scatter(1, top.indices, top.values)

    def describe(self) -> str:
        return f"top-{self.k} probabilities"
