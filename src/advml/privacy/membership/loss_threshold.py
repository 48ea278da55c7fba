"""The loss-threshold attack (Yeom, Giacomelli, Fredrikson & Jha, CSF 2018)."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from advml import registry
from advml.models.base import Classifier
from advml.privacy.membership._threshold import Calibration, ThresholdAttack, threshold_doc
from advml.privacy.membership.base import ShadowArchitecture, log_probs

__all__ = ["LossThreshold"]


@registry.register("membership", "loss_threshold")
class LossThreshold(ThresholdAttack):
    __doc__ = threshold_doc(
        """Member when the target's loss on the record is low (Yeom et al., CSF 2018, §3.2).

    Score: ``log p_y(x) = -loss`` (cross-entropy of the true label). Needs scores and the
    record's label."""
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
        lp = log_probs(model, x)
        return lp.gather(1, y[:, None])[:, 0].double().cpu().numpy()
