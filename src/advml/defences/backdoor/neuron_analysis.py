"""Backdoor-neuron analysis: which units fire on triggered inputs but not on clean ones.

Liu, Dolan-Gavitt & Garg (Fine-Pruning, RAID 2018, §3 and Fig. 3) observed that in a
backdoored network some units of the last convolutional layer stay dormant on clean
inputs and light up on triggered ones. This analysis needs triggered inputs, so it is a
tool for the auditor who knows (or has reverse-engineered) the trigger, not a defence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor

from advml.defences.backdoor.base import (
    as_numpy,
    default_layer,
    measured_layer,
    unit_means,
)
from advml.models.base import Classifier
from advml.models.torch import require_torch

__all__ = ["ActivationProfile", "activation_profile"]


@dataclass(frozen=True)
class ActivationProfile:
    """Mean activation of every unit of one layer on clean and on triggered inputs."""

    layer: str
    """The layer whose units are described (masking acts here)."""
    measured_at: str
    """Where activity was read (the layer's activation function when it has one)."""
    clean: np.ndarray
    """Mean activation per unit on clean inputs, shape ``(units,)``."""
    triggered: np.ndarray
    """Mean activation per unit on triggered inputs."""
    backdoor_score: np.ndarray
    """``(triggered - clean) / (|clean| + |triggered| + eps)`` in [-1, 1]: near 1 for a
    unit active almost only on triggered inputs."""
    ranking: np.ndarray
    """Unit indices from most to least backdoor-like (by ``backdoor_score``, then by
    the activation gained)."""

    def backdoor_units(self, threshold: float = 0.5) -> np.ndarray:
        """Units whose score exceeds ``threshold`` and that gain activity on triggers."""
        gain = self.triggered - self.clean
        keep = (self.backdoor_score > threshold) & (
            gain > 0.05 * max(float(np.abs(self.triggered).max()), 1e-12)
        )
        return self.ranking[np.isin(self.ranking, np.flatnonzero(keep))]

    def summary(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "units": int(self.clean.size),
            "top_units": self.ranking[:5].tolist(),
            "n_backdoor_units": int(self.backdoor_units().size),
        }


def activation_profile(
    model: Classifier,
    x_clean: np.ndarray | Tensor,
    x_triggered: np.ndarray | Tensor,
    *,
    layer: str | None = None,
) -> ActivationProfile:
    """Per-unit mean activations on clean and triggered inputs, and a ranking.

    Parameters
    ----------
    model : TorchClassifier
        A white-box model.
    x_clean : array (n, *input_shape)
        Clean inputs.
    x_triggered : array (m, *input_shape)
        Inputs carrying the trigger (typically the same inputs with it stamped on).
    layer : str, optional
        The layer to analyse; default the last convolutional layer (else the last
        hidden linear one).
    """
    torch_model = require_torch(model, "activation_profile")
    name = layer or default_layer(torch_model)
    at = measured_layer(torch_model, name)
    clean = unit_means(torch_model, as_numpy(x_clean), at)
    trig = unit_means(torch_model, as_numpy(x_triggered), at)
    score = (trig - clean) / (np.abs(clean) + np.abs(trig) + 1e-8)
    ranking = np.lexsort((-(trig - clean), -score))
    return ActivationProfile(
        layer=name,
        measured_at=at,
        clean=clean,
        triggered=trig,
        backdoor_score=score,
        ranking=ranking,
    )
