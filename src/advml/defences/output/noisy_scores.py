"""Noisy scores: the API adds random noise to the probabilities it reveals."""

from __future__ import annotations

import torch
from torch import Tensor

from advml import registry
from advml.defences.output.base import OutputDefence
from advml.validation import check_bool, check_number

__all__ = ["NoisyScores"]


@registry.register("output_defence", "noisy_scores")
class NoisyScores(OutputDefence):
    """Add Gaussian noise of standard deviation ``scale`` to each probability.

    ``q = p + scale * N(0, 1)``, clipped at 0 and renormalised to sum to 1. With
    ``keep_label`` the top class stays the model's: where the noise moved another class
    above it, the two values are swapped, so accuracy is untouched and only the scores
    are perturbed (in the spirit of prediction-poisoning defences against stealing, e.g.
    Orekondy et al. 2020, without their optimisation). Fresh noise is drawn for every
    query, so an attacker who repeats a query can average it away: the cost to the
    attacker is in queries.

    Parameters
    ----------
    scale : float
        Standard deviation of the noise added to each probability (>= 0).
    keep_label : bool
        Keep the model's label as the top class (default True).
    seed : int, optional
        Seed of the noise; the same seed gives the same answers to the same queries in
        the same order. ``None`` draws fresh OS entropy.
    """

    def __init__(
        self, *, scale: float = 0.05, keep_label: bool = True, seed: int | None = 0
    ) -> None:
        check_number("scale", scale, low=0)
        check_bool("keep_label", keep_label)
        if seed is not None:
            check_number("seed", seed, low=0, integer=True)
        self.scale = scale
        self.keep_label = keep_label
        self.seed = seed

    def keeps_label(self) -> bool:
        return bool(self.keep_label)

    def _harden(self, p: Tensor, generator: torch.Generator) -> Tensor:
        noise = torch.randn(p.shape, generator=generator, device=p.device, dtype=p.dtype)
        q = (p + float(self.scale) * noise).clamp_min(0.0)
        sums = q.sum(dim=1, keepdim=True)
        # A row the noise wiped out entirely falls back to the model's own scores.
        q = torch.where(sums > 0, q / sums.clamp_min(1e-300), p)
        if self.keep_label:
            rows = torch.arange(q.shape[0], device=q.device)
            label, top = p.argmax(dim=1), q.argmax(dim=1)
            q_label, q_top = q[rows, label].clone(), q[rows, top].clone()
            q[rows, label], q[rows, top] = q_top, q_label
        return q

    def describe(self) -> str:
        return f"probabilities with Gaussian noise (scale {self.scale:g})"
