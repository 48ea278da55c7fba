"""The modified-entropy threshold attack (Song & Mittal, USENIX Security 2021)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from advml import registry
from advml.models.base import Classifier
from advml.privacy.membership._threshold import Calibration, ThresholdAttack, threshold_doc
from advml.privacy.membership.base import ShadowArchitecture, log_probs

__all__ = ["ModifiedEntropy"]


@registry.register("membership", "modified_entropy")
class ModifiedEntropy(ThresholdAttack):
    __doc__ = threshold_doc(
        """Member when the modified prediction entropy is low (Song & Mittal 2021).

    Song & Mittal, USENIX Security 2021, eq. 6:
    ``Mentr(p, y) = -(1 - p_y) log p_y - sum_{j != y} p_j log(1 - p_j)``, zero for a
    confident correct prediction, large for a confident wrong one, so unlike the entropy it
    uses the label. Score: ``-Mentr``."""
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
        lp = log_probs(model, x).double()
        p = lp.exp()
        # log(1 - p_j), accurate where p_j is near 1.
        log1m = torch.log1p(-p.clamp(max=1.0 - 1e-12))
        own = torch.zeros_like(p, dtype=torch.bool).scatter_(1, y[:, None], True)
        own_term = ((1.0 - p) * lp).masked_fill(~own, 0.0).sum(1)
        other_term = (p * log1m).masked_fill(own, 0.0).sum(1)
        return (own_term + other_term).cpu().numpy()
