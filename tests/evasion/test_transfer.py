"""Transfer's own claims: the transfer rate is the share of the substitute's successes that
also fool the target (1 when the substitute is the target), a substitute trained on the
same task transfers, and the registered attack needs only labels, all of them counted."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch

from advml.evasion import PGD, TransferAttack, transfer
from advml.models import CallableClassifier, TorchClassifier, train
from advml.models.architectures import build


@pytest.fixture(scope="module")
def other_mlp(digits_data: Any) -> TorchClassifier:
    """A second MLP for the digits, trained with another seed: the attacker's own model."""
    torch.manual_seed(1)
    module = build("mlp", input_shape=(1, 8, 8), n_classes=10, hidden=(64,))
    model = TorchClassifier(module, input_shape=(1, 8, 8), n_classes=10, bounds=(0.0, 1.0))
    train(model, digits_data.x_train, digits_data.y_train, epochs=10, seed=1, show_progress=False)
    model.module.eval()
    return model


def test_the_target_itself_transfers_everything(
    digits_mlp: TorchClassifier, digits_data: Any
) -> None:
    x, y = digits_data.x_test[:80], digits_data.y_test[:80]
    out = transfer(digits_mlp, copy.deepcopy(digits_mlp), x, y, attack=PGD(eps=0.1))
    np.testing.assert_array_equal(out.success_target, out.success_substitute)
    assert out.transfer_rate == 1.0


def test_transfer_rate_from_a_different_model(
    digits_mlp: TorchClassifier, other_mlp: TorchClassifier, digits_data: Any
) -> None:
    x, y = digits_data.x_test[:120], digits_data.y_test[:120]
    out = transfer(digits_mlp, other_mlp, x, y, attack=PGD(eps=0.2, steps=20))
    ok = out.success_substitute
    assert out.transfer_rate == pytest.approx(out.success_target[ok].mean())
    np.testing.assert_array_equal(out.success_target, digits_mlp.predict(out.x_adv) != y)
    assert out.summary()["transfer_rate"] == out.transfer_rate
    # Measured: the substitute is fooled on 93% of the inputs and 95% of those fool the
    # target; at eps 0.05, 19% and 48%.
    assert ok.mean() > 0.85 and 0.8 < out.transfer_rate < 1.0
    weak = transfer(digits_mlp, other_mlp, x, y, attack=PGD(eps=0.05, steps=20))
    assert weak.success_rate < out.success_rate
    assert np.abs(out.x_adv - x).max() <= 0.2 + 1e-6


def test_registered_attack_needs_only_labels_and_counts_them(
    digits_mlp: TorchClassifier, digits_data: Any
) -> None:
    x, y = digits_data.x_test[:100], digits_data.y_test[:100]
    labels_only = CallableClassifier(
        digits_mlp.predict, input_shape=(1, 8, 8), n_classes=10, bounds=(0.0, 1.0), returns="labels"
    )
    before = labels_only.query_count
    result = TransferAttack(eps=0.3, augment_rounds=2).generate(labels_only, x, y)
    # One label per input, then one per augmented point: each round doubles the data,
    # so sample i is charged 1 + 1 + 2 = 4 = 2^rounds labels.
    np.testing.assert_array_equal(result.queries, 4)
    assert labels_only.query_count - before == result.queries.sum() + len(x)
    assert result.linf.max() <= 0.3 + 1e-6
    # A substitute trained on 400 labelled points of 100 digits: measured 0.99 success.
    assert result.success_rate >= 0.9


def test_mismatched_substitute_is_refused(digits_mlp: TorchClassifier, make_linear: Any) -> None:
    other = make_linear([[1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="shape"):
        transfer(digits_mlp, other, np.zeros((1, 1, 8, 8), dtype=np.float32))
