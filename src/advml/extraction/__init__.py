"""Model extraction: steal a model through its prediction API.

Every attack holds settings; ``extract(victim, x_pool=None, *, x_eval, y_eval)`` returns an
:class:`ExtractionResult` with the stolen model (a white-box TorchClassifier) and its
fidelity to the victim. Registered in the ``"extraction"`` family:

===================== =========================================================
``equation_solving``  exact recovery of linear/logistic models from scores
                      with d + 1 queries (Tramèr et al. 2016)
``copycat``           learning-based stealing of any model under a query
                      budget, labels or scores, with the query strategies
                      ``random``, ``pool`` (Knockoff), ``jacobian`` (Papernot
                      et al. 2017) and ``active`` (uncertainty)
===================== =========================================================

:func:`transfer_evasion` crafts adversarial examples on a stolen model and measures how
many fool the victim.
"""

from advml.extraction.base import (
    CurvePoint,
    ExtractionAttack,
    ExtractionResult,
    fit_to_input_shape,
)
from advml.extraction.copycat import Copycat
from advml.extraction.equation_solving import EquationSolving
from advml.extraction.transfer import TransferResult, transfer_evasion

__all__ = [
    "Copycat",
    "CurvePoint",
    "EquationSolving",
    "ExtractionAttack",
    "ExtractionResult",
    "TransferResult",
    "fit_to_input_shape",
    "transfer_evasion",
]
