"""The embedding's learning-rate schedule setting."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from advml import registry


@pytest.mark.parametrize("name", ["uchida", "adi", "content", "noise", "unrelated", "frontier"])
def test_unknown_schedule_is_rejected_by_name(name: str) -> None:
    with pytest.raises(ValueError, match="schedule"):
        registry.create("watermark", name, schedule="linear")


def test_cosine_embedding_is_keyed_and_differs_from_constant(digits_data, digits_mlp) -> None:
    x, y = digits_data.x_train, digits_data.y_train
    model = copy.deepcopy(digits_mlp)

    def weights(schedule: str) -> np.ndarray:
        scheme = registry.create("watermark", "uchida", epochs=1, schedule=schedule)
        marked = scheme.embed(model, x, y, key="schedule test")
        assert marked.params["schedule"] == schedule
        return np.concatenate(
            [p.detach().numpy().ravel() for p in marked.model.module.parameters()]
        )

    cosine = weights("cosine")
    np.testing.assert_array_equal(cosine, weights("cosine"))
    assert not np.allclose(cosine, weights("constant"))
