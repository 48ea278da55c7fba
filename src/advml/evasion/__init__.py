"""Evasion attacks: adversarial examples at prediction time.

Every attack is a class holding settings; ``generate(model, x, y=None)`` returns an
:class:`AdversarialResult`. Attacks register under short names (``"fgsm"``, ``"bim"``,
``"pgd"``) for the CLI and the audit.
"""

from advml.evasion.apgd import APGD
from advml.evasion.base import AdversarialResult, EvasionAttack, project
from advml.evasion.bim import BIM
from advml.evasion.constraints import FeatureConstraints
from advml.evasion.cw import CarliniWagnerL2, CarliniWagnerLinf
from advml.evasion.deepfool import DeepFool
from advml.evasion.eot import EOT
from advml.evasion.fgsm import FGSM
from advml.evasion.greedy_pixel import GreedyPixel
from advml.evasion.hopskipjump import HopSkipJump
from advml.evasion.jsma import JSMA
from advml.evasion.pgd import PGD
from advml.evasion.square import Square
from advml.evasion.strongest import Strongest
from advml.evasion.transfer import TransferAttack, TransferResult, transfer
from advml.evasion.trees import TreeAttackResult, TreeExact, TreeFast

__all__ = [
    "APGD",
    "BIM",
    "EOT",
    "FGSM",
    "JSMA",
    "PGD",
    "AdversarialResult",
    "CarliniWagnerL2",
    "CarliniWagnerLinf",
    "DeepFool",
    "EvasionAttack",
    "FeatureConstraints",
    "GreedyPixel",
    "HopSkipJump",
    "Square",
    "Strongest",
    "TransferAttack",
    "TransferResult",
    "TreeAttackResult",
    "TreeExact",
    "TreeFast",
    "project",
    "transfer",
]
