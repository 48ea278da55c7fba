"""Membership inference: was this record in the model's training data?

Every attack is registered in the ``"membership"`` family and used as
``fitted = attack.fit(model, x_attacker, y_attacker)`` then
``result = fitted.infer(model, x, y)``; ``result.metrics(is_member)`` gives ROC, AUC,
balanced accuracy, TPR at 0.1% / 1% FPR, membership advantage and per-record risk.

============================  ===================================================  ======
name                          attack                                               needs
============================  ===================================================  ======
``loss_threshold``            low loss = member (Yeom et al. 2018)                 scores
``confidence_threshold``      high top confidence (Salem et al. 2019)              scores
``entropy_threshold``         low prediction entropy (Salem et al. 2019)           scores
``modified_entropy``          low modified entropy (Song & Mittal 2021)            scores
``shadow``                    shadow models + per-class attack models (Shokri 2017) scores
``lira``                      likelihood ratio, online/offline (Carlini 2022)      scores
``rmia``                      pairwise likelihood ratio (Zarifzadeh 2024)          scores
``label_only``                label robust to perturbations (Choquette-Choo 2021)  labels
============================  ===================================================  ======

:func:`evaluate_membership` runs attacks against a :class:`MembershipSetup` (members,
non-members and the attacker's data) and measures them: what ``advml membership`` prints.
"""

from advml.privacy.membership.base import (
    FittedMembershipAttack,
    MembershipAttack,
    MembershipResult,
)
from advml.privacy.membership.confidence_threshold import ConfidenceThreshold
from advml.privacy.membership.entropy_threshold import EntropyThreshold
from advml.privacy.membership.experiment import (
    AttackOutcome,
    MembershipReport,
    MembershipSetup,
    evaluate_membership,
    membership_attacks,
)
from advml.privacy.membership.label_only import LabelOnly
from advml.privacy.membership.lira import LiRA
from advml.privacy.membership.loss_threshold import LossThreshold
from advml.privacy.membership.metrics import (
    MembershipMetrics,
    membership_metrics,
    roc_curve,
    tpr_at_fpr,
)
from advml.privacy.membership.modified_entropy import ModifiedEntropy
from advml.privacy.membership.rmia import RMIA
from advml.privacy.membership.shadow import ShadowModels

__all__ = [
    "RMIA",
    "AttackOutcome",
    "ConfidenceThreshold",
    "EntropyThreshold",
    "FittedMembershipAttack",
    "LabelOnly",
    "LiRA",
    "LossThreshold",
    "MembershipAttack",
    "MembershipMetrics",
    "MembershipReport",
    "MembershipResult",
    "MembershipSetup",
    "ModifiedEntropy",
    "ShadowModels",
    "evaluate_membership",
    "membership_attacks",
    "membership_metrics",
    "roc_curve",
    "tpr_at_fpr",
]
