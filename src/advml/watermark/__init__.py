"""Model ownership: watermarks, their verification, and the attacks that remove them.

Schemes (family ``"watermark"``) embed with ``embed(model, x, y, key=...)`` and verify
with ``verify(model, key)``; removal attacks (family ``"watermark_removal"``) turn a
stolen model into one the owner may no longer recognise, at a cost in accuracy.

>>> from advml import registry
>>> scheme = registry.create("watermark", "adi", n_triggers=50)
>>> marked = scheme.embed(model, x_train, y_train, key="owner secret")  # doctest: +SKIP
>>> verify(marked.model, marked.key).verified  # doctest: +SKIP
True
"""

from advml.watermark.adi import Adi
from advml.watermark.base import TriggerSetScheme, WatermarkedModel, WatermarkScheme
from advml.watermark.content import Content
from advml.watermark.frontier import Frontier
from advml.watermark.key import WatermarkKey, load_key, save_key
from advml.watermark.noise import Noise
from advml.watermark.removal import (
    RemovalAttack,
    RemovalResult,
    RobustnessRow,
    RobustnessTable,
    robustness_table,
)
from advml.watermark.uchida import Uchida
from advml.watermark.unrelated import Unrelated
from advml.watermark.verify import DEFAULT_ALPHA, Verification, calibrate, verify

__all__ = [
    "DEFAULT_ALPHA",
    "Adi",
    "Content",
    "Frontier",
    "Noise",
    "RemovalAttack",
    "RemovalResult",
    "RobustnessRow",
    "RobustnessTable",
    "TriggerSetScheme",
    "Uchida",
    "Unrelated",
    "Verification",
    "WatermarkKey",
    "WatermarkScheme",
    "WatermarkedModel",
    "calibrate",
    "load_key",
    "robustness_table",
    "save_key",
    "verify",
]
