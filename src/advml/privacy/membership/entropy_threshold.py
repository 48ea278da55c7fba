"""The entropy-threshold attack (Salem et al. 2019; Song & Mittal, USENIX Security 2021)."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from advml import registry
from advml.models.base import Classifier
from advml.privacy.membership._threshold import ThresholdAttack, threshold_doc
from advml.privacy.membership.base import log_probs

__all__ = ["EntropyThreshold"]


@registry.register("membership", "entropy_threshold")
class EntropyThreshold(ThresholdAttack):
    __doc__ = threshold_doc(
        """Member when the prediction's entropy is low (Salem et al. 2019).

    Salem et al., NDSS 2019, §V; Song & Mittal 2021, eq. 5. Score:
    ``-H(p(x)) = sum_j p_j log p_j`` in float64 from the logits; needs scores, not
    labels."""
    )

    def record_scores(self, model: Classifier, x: Tensor, y: Tensor) -> np.ndarray:
        del y  # label-free by design
        lp = log_probs(model, x)
        return (lp.exp() * lp).sum(dim=1).cpu().numpy()
