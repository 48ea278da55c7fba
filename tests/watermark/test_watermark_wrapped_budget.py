"""Verifying a watermark through a wrapper respects the query budget of the API inside it."""

from __future__ import annotations

from typing import Any

import numpy as np

from advml import registry
from advml.defences.output import TopK
from advml.models import CallableClassifier, TorchClassifier
from advml.watermark import verify


def test_a_budget_behind_a_wrapper_that_cannot_pay_for_the_key_is_not_spent(
    digits_mlp: TorchClassifier, digits_data: Any
) -> None:
    scheme = registry.create("watermark", "content", n_triggers=12, trigger_batch=12, epochs=1)
    key = scheme.embed(digits_mlp, digits_data.x_train, digits_data.y_train, key="owner").key
    asked = []

    def api(x: np.ndarray) -> np.ndarray:
        asked.append(len(x))
        return np.asarray(digits_mlp.predict_proba(x))

    paid = CallableClassifier(
        api, input_shape=(1, 8, 8), n_classes=10, bounds=(0.0, 1.0), query_budget=key.size - 1
    )
    v = verify(TopK(k=1).wrap(paid), key)
    assert not v.verified and v.reason is not None and f"has {key.size - 1} left" in v.reason
    assert asked == [] and paid.query_count == 0
