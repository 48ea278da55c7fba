"""The modified-entropy threshold attack (Song & Mittal, USENIX Security 2021)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from advml import registry
from advml.models.base import Classifier
from advml.privacy.membership._threshold import ThresholdAttack, threshold_doc
from advml.privacy.membership.base import LOG_FLOOR, log_probs

__all__ = ["ModifiedEntropy"]


@registry.register("membership", "modified_entropy")
class ModifiedEntropy(ThresholdAttack):
    __doc__ = threshold_doc(
        """Member when the modified prediction entropy is low (Song & Mittal 2021).

    Song & Mittal, USENIX Security 2021, eq. 6:
    ``Mentr(p, y) = -(1 - p_y) log p_y - sum_{j != y} p_j log(1 - p_j)``, zero for a
    confident correct prediction, large for a confident wrong one, so unlike the entropy it
    uses the label. Score: ``-Mentr``, in float64 from the logits with ``1 - p`` and
    ``log(1 - p)`` taken from ``log p`` without cancellation, so that it stays exact (and
    ordered) for confident records."""
    )

    def record_scores(self, model: Classifier, x: Tensor, y: Tensor) -> np.ndarray:
        lp = log_probs(model, x)
        p = lp.exp()
        one_minus = -torch.expm1(lp)  # 1 - p, exact also where p is near 1
        # log(1 - p) from log p, exact at both ends (Maechler 2012, "Accurately computing
        # log(1 - exp(-|a|))"): log(-expm1(a)) near p = 1, log1p(-exp(a)) for small p.
        log1m = torch.where(lp > -math.log(2.0), torch.log(one_minus), torch.log1p(-p)).clamp_min(
            LOG_FLOOR
        )
        own = torch.zeros_like(p, dtype=torch.bool).scatter_(1, y[:, None], True)
        own_term = (one_minus * lp).masked_fill(~own, 0.0).sum(1)
        other_term = (p * log1m).masked_fill(own, 0.0).sum(1)
        return (own_term + other_term).cpu().numpy()
