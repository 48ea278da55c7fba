"""The loss-threshold attack (Yeom, Giacomelli, Fredrikson & Jha, CSF 2018)."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from advml import registry
from advml.models.base import Classifier
from advml.privacy.membership._threshold import ThresholdAttack, threshold_doc
from advml.privacy.membership.base import log_probs

__all__ = ["LossThreshold"]


@registry.register("membership", "loss_threshold")
class LossThreshold(ThresholdAttack):
    __doc__ = threshold_doc(
        """Member when the target's loss on the record is low (Yeom et al., CSF 2018, §3.2).

    Score: ``log p_y(x) = -loss`` (cross-entropy of the true label), in float64 from the
    logits (:func:`~advml.privacy.membership.base.stable_log_softmax`), so that the most
    confident records keep distinct scores instead of all reading 0. Needs scores and the
    record's label."""
    )

    def record_scores(self, model: Classifier, x: Tensor, y: Tensor) -> np.ndarray:
        lp = log_probs(model, x)
        return lp.gather(1, y[:, None])[:, 0].cpu().numpy()
