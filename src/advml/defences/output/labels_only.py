"""Labels only: the API answers with the predicted class and nothing else."""

from __future__ import annotations

from typing import ClassVar

from advml import registry
from advml.defences.output.base import OutputDefence

__all__ = ["LabelsOnly"]


@registry.register("output_defence", "labels_only")
class LabelsOnly(OutputDefence):
    """Reveal the predicted label only (``has_scores=False``).

    The strongest output hardening: attacks that solve for parameters from scores
    (equation solving, Tramèr et al. 2016) become impossible, and learning-based stealing
    and membership inference fall back to label-only variants, which need more queries.
    This defence has no settings.
    """

    reveals_scores: ClassVar[bool] = False

    def __init__(self) -> None:
        pass

    def describe(self) -> str:
        return "labels only"
