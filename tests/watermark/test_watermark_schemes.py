"""Each scheme's own claim on the digits MLP: verified when marked, not claimed otherwise."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from advml import registry
from advml.models import TorchClassifier
from advml.watermark import Frontier, Uchida, WatermarkScheme, calibrate, verify
from advml.watermark.removal import FTAL, Prune


@pytest.fixture(scope="module")
def uchida(digits_mlp: TorchClassifier, digits_data: Any) -> Any:
    return Uchida(bits=64).embed(digits_mlp, digits_data.x_train, digits_data.y_train, key="owner")


def test_uchida_reads_back_every_bit(uchida: Any) -> None:
    v = uchida.verification
    assert v.bit_error_rate == 0.0 and v.verified
    assert v.chance_probability == pytest.approx(2.0**-64)
    assert v.queries == 0
    assert uchida.key.meta["layer"] == "fc2"


def test_uchida_keeps_accuracy(uchida: Any, digits_mlp: TorchClassifier, digits_data: Any) -> None:
    def acc(m: TorchClassifier) -> float:
        return float(np.mean(m.predict(digits_data.x_test) == digits_data.y_test))

    assert acc(uchida.model) >= acc(digits_mlp) - 0.02


def test_uchida_is_not_claimed_on_independent_models(
    uchida: Any, independent_mlps: list[TorchClassifier], digits_mlp: TorchClassifier
) -> None:
    for model in [*independent_mlps, digits_mlp]:
        v = verify(model, uchida.key)
        assert not v.verified and v.chance_probability > 0.01
        assert 0.25 < v.bit_error_rate < 0.75


def test_uchida_survives_pruning_half_the_layer(uchida: Any) -> None:
    pruned = Prune(rate=0.5, layers=["fc2"]).remove(uchida.model, np.zeros((1, 1, 8, 8)))
    assert verify(pruned.model, uchida.key).bit_error_rate == 0.0


def test_uchida_survives_fine_tuning_all_layers(uchida: Any, digits_data: Any) -> None:
    tuned = FTAL(epochs=3).remove(
        uchida.model, digits_data.x_train[:700], digits_data.y_train[:700]
    )
    assert verify(tuned.model, uchida.key).bit_error_rate == 0.0


@pytest.mark.parametrize("name", ["adi", "noise", "unrelated"])
def test_trigger_sets_verify_and_are_not_claimed_by_chance(
    name: str,
    digits_mlp: TorchClassifier,
    digits_data: Any,
    independent_mlps: list[TorchClassifier],
) -> None:
    scheme = registry.create("watermark", name, n_triggers=40, trigger_batch=40, epochs=4)
    assert isinstance(scheme, WatermarkScheme)
    marked = scheme.embed(digits_mlp, digits_data.x_train, digits_data.y_train, key=3)
    v = marked.verification
    assert v.verified and v.chance_probability < 1e-6, v.summary()
    assert v.queries == 40
    for model in [*independent_mlps, digits_mlp]:
        other = verify(model, marked.key)
        assert other.chance_probability > 0.01, other.summary()


def test_frontier_stitches_true_adversaries(
    digits_mlp: TorchClassifier, digits_data: Any, independent_mlps: list[TorchClassifier]
) -> None:
    # The embedding's own check of a new, uncalibrated key says so.
    with pytest.warns(UserWarning, match="not calibrated"):
        marked = Frontier(n_triggers=40, trigger_batch=40, epochs=4).embed(
            digits_mlp, digits_data.x_train, digits_data.y_train, key=5
        )
    key = marked.key
    true = key.arrays["true_adversary"].astype(bool)
    assert true.sum() == 20
    labels = key.arrays["labels"]
    before = np.asarray(digits_mlp.predict(key.arrays["x"])) == labels
    # On the owner's model before marking, exactly the false adversaries are right.
    np.testing.assert_array_equal(before, ~true)
    assert marked.verification.match_rate >= 0.9
    assert 0 < key.meta["eps"] <= 0.3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cal = calibrate(key, independent_mlps)
        v = verify(marked.model, cal)
    assert v.reference_models == 2 and v.chance_probability >= v.binomial_probability
    with pytest.warns(UserWarning, match="not calibrated"):
        verify(marked.model, key)
