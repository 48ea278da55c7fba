"""The confidence-threshold attack (Salem et al., "ML-Leaks", NDSS 2019)."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from advml import registry
from advml.models.base import Classifier
from advml.privacy.membership._threshold import Calibration, ThresholdAttack, threshold_doc
from advml.privacy.membership.base import ShadowArchitecture, log_probs

__all__ = ["ConfidenceThreshold"]


@registry.register("membership", "confidence_threshold")
class ConfidenceThreshold(ThresholdAttack):
    __doc__ = threshold_doc(
        """Member when the target is confident, whatever the label (Salem et al., NDSS 2019, §V).

    Score: the highest class probability ``max_j p_j(x)``; needs scores, not labels
    (Salem et al.'s adversary 3 needs neither shadow models nor labels)."""
    )

    def __init__(
        self,
        *,
        calibration: Calibration = "shadow",
        population_fpr: float = 0.05,
        shadow_architecture: ShadowArchitecture = "same",
        shadow_epochs: int = 30,
        shadow_lr: float = 1e-3,
        shadow_batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        self._store_common(
            calibration=calibration,
            population_fpr=population_fpr,
            shadow_architecture=shadow_architecture,
            shadow_epochs=shadow_epochs,
            shadow_lr=shadow_lr,
            shadow_batch_size=shadow_batch_size,
            seed=seed,
        )

    def record_scores(self, model: Classifier, x: Tensor, y: Tensor) -> np.ndarray:
        del y  # label-free by design
        return log_probs(model, x).max(dim=1).values.exp().double().cpu().numpy()
