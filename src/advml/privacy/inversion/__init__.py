"""Model inversion: reconstruct what a class looks like from the model alone.

``MIFace`` (registered as ``"mi_face"`` in the ``"inversion"`` family) follows
Fredrikson et al. 2015 with the model's gradients or, from scores only, with
zeroth-order estimates; :func:`evaluate_inversion` judges the reconstructions with an
independently trained classifier (:func:`independent_judge`) and SSIM/MSE to the
class's real samples; :func:`invert_and_judge` does all three, as ``advml invert`` and
the audit do.
"""

from advml.privacy.inversion.base import InversionAttack, InversionResult
from advml.privacy.inversion.evaluation import (
    InversionEvaluation,
    JudgedInversion,
    evaluate_inversion,
    invert_and_judge,
    ssim,
)
from advml.privacy.inversion.judge import independent_judge
from advml.privacy.inversion.mi_face import MIFace

__all__ = [
    "InversionAttack",
    "InversionEvaluation",
    "InversionResult",
    "JudgedInversion",
    "MIFace",
    "evaluate_inversion",
    "independent_judge",
    "invert_and_judge",
    "ssim",
]
