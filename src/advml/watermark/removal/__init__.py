"""Removal attacks on watermarks, and the robustness table that prices them.

An attacker who holds a copy of the owner's model (white-box) or only its API
(black-box) tries to obtain a model the owner can no longer prove is theirs while
keeping its accuracy. Family ``"watermark_removal"``; the verb is
``remove(model, x, y=None) -> RemovalResult``, where ``(x, y)`` is the attacker's own
data (much less than the owner's, as a rule). One attack per module:

- ``ftll``, ``ftal``, ``rtll``, ``rtal`` (:mod:`.fine_tuning`): fine-tune the last layer /
  all layers, with the last layer kept or re-initialised first (Adi et al. 2018, §5.1).
- ``prune`` (:mod:`.prune`): zero the ``rate`` fraction of smallest-magnitude weights of
  each chosen layer (Uchida et al. 2017, §4.3; Han et al. 2015).
- ``fine_prune`` (:mod:`.fine_prune`): mask the ``rate`` fraction of a layer's units least
  active on the attacker's clean data, then fine-tune (Liu, Dolan-Gavitt & Garg, RAID 2018).
- ``preprocess`` (:mod:`.preprocess`): transform every input at query time (median filter,
  Gaussian noise, bit-depth reduction, the operations of :mod:`advml.imaging`) without
  touching the model.
- ``distill`` (:mod:`.distill`): label the attacker's inputs with the model's answers and
  train a fresh model on them (model extraction; Tramèr et al. 2016, Orekondy et al. 2019);
  ``copycat`` (:mod:`.copycat`) does the same with :class:`advml.extraction.Copycat`
  (soft labels, rounds).

:func:`robustness_table` (:mod:`.table`) runs attacks and verifies each result.
"""

from advml.watermark.removal.base import RemovalAttack, RemovalResult
from advml.watermark.removal.copycat import Copycat
from advml.watermark.removal.distill import Distill
from advml.watermark.removal.fine_prune import FinePrune
from advml.watermark.removal.fine_tuning import FTAL, FTLL, RTAL, RTLL
from advml.watermark.removal.preprocess import Preprocess
from advml.watermark.removal.prune import Prune
from advml.watermark.removal.table import (
    RobustnessRow,
    RobustnessTable,
    describe,
    robustness_table,
)

__all__ = [
    "FTAL",
    "FTLL",
    "RTAL",
    "RTLL",
    "Copycat",
    "Distill",
    "FinePrune",
    "Preprocess",
    "Prune",
    "RemovalAttack",
    "RemovalResult",
    "RobustnessRow",
    "RobustnessTable",
    "describe",
    "robustness_table",
]
