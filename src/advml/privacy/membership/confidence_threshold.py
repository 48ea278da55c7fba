"""The confidence-threshold attack (Salem et al., "ML-Leaks", NDSS 2019)."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from advml import registry
from advml.models.base import Classifier
from advml.privacy.membership._threshold import ThresholdAttack, threshold_doc
from advml.privacy.membership.base import log_probs

__all__ = ["ConfidenceThreshold"]


@registry.register("membership", "confidence_threshold")
class ConfidenceThreshold(ThresholdAttack):
    __doc__ = threshold_doc(
        """Member when the target is confident, whatever the label (Salem et al., NDSS 2019, §V).

    Score: the log of the highest class probability, ``log max_j p_j(x)``, in float64 from
    the logits. The log orders records exactly as the probability does (the same ROC and
    decisions) but does not round to 1 for confident records, which the probability does
    in float64 beyond a logit margin of about 37. Needs scores, not labels (Salem et al.'s
    adversary 3 needs neither shadow models nor labels)."""
    )

    def record_scores(self, model: Classifier, x: Tensor, y: Tensor) -> np.ndarray:
        del y  # label-free by design
        return log_probs(model, x).max(dim=1).values.cpu().numpy()
