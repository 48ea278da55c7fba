"""Removal attacks do what they say, and the robustness table prices them."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch

from advml.defences.preprocess import FeatureSqueezing, GaussianNoise, MedianSmoothing
from advml.errors import UnsupportedModelError
from advml.models import CallableClassifier, TorchClassifier
from advml.watermark import Adi, robustness_table, verify
from advml.watermark.removal import FTLL, RTLL, Distill, FinePrune, Preprocess, Prune


def test_prune_zeroes_the_smallest_weights_of_each_layer(digits_mlp: TorchClassifier) -> None:
    out = Prune(rate=0.5).remove(digits_mlp, np.zeros((1, 1, 8, 8), np.float32)).model
    assert isinstance(out, TorchClassifier)
    for name in ("fc1", "fc2", "out"):
        before = dict(digits_mlp.module.named_modules())[name].weight.detach()
        after = dict(out.module.named_modules())[name].weight.detach()
        zero = after == 0
        assert int(zero.sum()) == before.numel() // 2
        # The kept weights are unchanged and at least as large as every pruned one.
        assert torch.equal(after[~zero], before[~zero])
        assert before[zero].abs().max() <= before[~zero].abs().min()


def test_prune_one_layer_only(digits_mlp: TorchClassifier) -> None:
    out = Prune(rate=0.65, layers=["fc2"]).remove(digits_mlp, np.zeros((1, 1, 8, 8))).model
    mods = dict(out.module.named_modules())  # type: ignore[attr-defined]
    assert int((mods["fc2"].weight == 0).sum()) == int(0.65 * mods["fc2"].weight.numel())
    assert int((mods["fc1"].weight == 0).sum()) == 0
    with pytest.raises(UnsupportedModelError, match="relu1"):
        Prune(layers=["relu1"]).remove(digits_mlp, np.zeros((1, 1, 8, 8)))


def test_last_layer_attacks_touch_only_the_last_layer(
    digits_mlp: TorchClassifier, digits_data: Any
) -> None:
    x, y = digits_data.x_test[:100], digits_data.y_test[:100]
    for attack in (FTLL(epochs=1), RTLL(epochs=1)):
        out = attack.remove(digits_mlp, x, y).model
        before = digits_mlp.module.state_dict()
        after = out.module.state_dict()  # type: ignore[attr-defined]
        for k in before:
            same = torch.equal(before[k], after[k])
            assert same == (not k.startswith("out.")), (attack.name, k)
    with pytest.raises(ValueError, match="give y"):
        FTLL().remove(digits_mlp, x)


def test_fine_prune_masks_the_least_active_units(
    digits_mlp: TorchClassifier, digits_data: Any
) -> None:
    x, y = digits_data.x_test[:100], digits_data.y_test[:100]
    out = FinePrune(rate=0.75, epochs=1).remove(digits_mlp, x, y).model
    assert isinstance(out, TorchClassifier)
    mask = out.unit_mask("fc2")
    assert mask is not None and int((~mask).sum()) == 192
    acts = np.asarray(digits_mlp.activations(x, "fc2")).mean(0)
    assert acts[~mask.numpy()].max() <= acts[mask.numpy()].min()
    assert digits_mlp.unit_mask("fc2") is None


def test_preprocess_is_a_black_box_that_counts_queries(digits_mlp: TorchClassifier) -> None:
    model = copy.deepcopy(digits_mlp)
    model.reset_queries()
    x = np.random.default_rng(0).random((5, 1, 8, 8)).astype(np.float32)
    for kind in ("median", "noise", "squeeze"):
        out = Preprocess(kind=kind).remove(model, x).model  # type: ignore[arg-type]
        assert isinstance(out, CallableClassifier)
        out.predict(x)
        assert out.query_count == 5
    assert model.query_count == 15
    squeezed = Preprocess(kind="squeeze", bits=1)._transform(0.0, 1.0, torch.Generator())
    assert set(torch.unique(squeezed(torch.as_tensor(x))).tolist()) <= {0.0, 1.0}
    median = Preprocess(kind="median")._transform(0.0, 1.0, torch.Generator())
    spike = torch.zeros(1, 1, 8, 8)
    spike[0, 0, 4, 4] = 1.0
    assert float(median(spike).abs().max()) == 0.0
    flat = TorchClassifier(torch.nn.Linear(4, 2), input_shape=(4,), n_classes=2)
    with pytest.raises(UnsupportedModelError, match="median"):
        Preprocess(kind="median").remove(flat, np.zeros((1, 4), np.float32))


def test_distill_asks_once_per_input_and_learns(
    digits_mlp: TorchClassifier, digits_data: Any
) -> None:
    model = copy.deepcopy(digits_mlp)
    model.reset_queries()
    x = digits_data.x_train[:400]
    result = Distill(epochs=5).remove(model, x)
    assert result.queries == 400
    student = result.model
    assert isinstance(student, TorchClassifier) and student.module is not model.module
    agree = np.mean(student.predict(digits_data.x_test) == model.predict(digits_data.x_test))
    assert agree > 0.8


def test_robustness_table(digits_mlp: TorchClassifier, digits_data: Any) -> None:
    marked = Adi(n_triggers=20, trigger_batch=20, epochs=2).embed(
        digits_mlp, digits_data.x_train, digits_data.y_train, key=1
    )
    x, y = digits_data.x_train[:300], digits_data.y_train[:300]
    table = robustness_table(
        marked.model,
        marked.key,
        [Prune(rate=0.1), Preprocess(kind="noise", std=0.05)],
        x,
        y,
        digits_data.x_test,
        digits_data.y_test,
    )
    assert [r.attack for r in table.rows] == [
        "none",
        "prune(rate=0.1)",
        "preprocess(kind='noise', std=0.05)",
    ]
    first = table.rows[0]
    assert first.accuracy_drop == 0.0
    assert first.match_rate == verify(marked.model, marked.key).match_rate
    assert "detected" in table.to_text()
    assert len(table.summary()) == 3
    with pytest.raises(TypeError, match="RemovalAttack"):
        robustness_table(marked.model, marked.key, ["ftal"], x, y, x, y)  # type: ignore[list-item]


def test_preprocess_removal_applies_the_defences_operations() -> None:
    # The removal attack's transforms are the input-cleansing defences' own operations
    # (advml.imaging): the same outputs, bit for bit, on bounds of width 1.
    x = torch.as_tensor(np.random.default_rng(1).random((6, 1, 8, 8)).astype(np.float32))
    pairs = [
        (Preprocess(kind="median", size=3), MedianSmoothing(size=3)),
        (Preprocess(kind="squeeze", bits=3), FeatureSqueezing(bit_depth=3)),
        (Preprocess(kind="noise", std=0.1, seed=4), GaussianNoise(sigma=0.1, seed=4)),
    ]
    for attack, defence in pairs:
        ours = attack._transform(0.0, 1.0, torch.Generator().manual_seed(4))(x)
        theirs = defence(x, bounds=(0.0, 1.0), generator=torch.Generator().manual_seed(4))
        assert torch.equal(ours, theirs), attack
