"""Poisoning and backdoors: triggers, poisoning attacks, the supply-chain scenario, metrics.

``poison(x, y) -> PoisonedData``: an attack changes a training set (never a model)
and records which samples it changed, the trigger and the target rule.

>>> from advml.poisoning import BadNets, PatternTrigger
>>> attack = BadNets(trigger=PatternTrigger(size=3), fraction=0.1, target=0)
"""

from advml.poisoning.badnets import BadNets
from advml.poisoning.base import PoisonedData, PoisoningAttack
from advml.poisoning.clean_label import CleanLabel
from advml.poisoning.io import load_poisoned, save_poisoned
from advml.poisoning.label_flip import LabelFlip
from advml.poisoning.metrics import BackdoorEvaluation, backdoor_success_rate, evaluate_backdoor
from advml.poisoning.run import PoisoningRun, poison_and_train
from advml.poisoning.transfer import TransferResult, fine_tune, transfer_backdoor
from advml.poisoning.triggers import (
    BlendedTrigger,
    PatternTrigger,
    PixelTrigger,
    TabularTrigger,
    Trigger,
)

__all__ = [
    "BackdoorEvaluation",
    "BadNets",
    "BlendedTrigger",
    "CleanLabel",
    "LabelFlip",
    "PatternTrigger",
    "PixelTrigger",
    "PoisonedData",
    "PoisoningAttack",
    "PoisoningRun",
    "TabularTrigger",
    "TransferResult",
    "Trigger",
    "backdoor_success_rate",
    "evaluate_backdoor",
    "fine_tune",
    "load_poisoned",
    "poison_and_train",
    "save_poisoned",
    "transfer_backdoor",
]
