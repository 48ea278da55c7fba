"""The contract every registered robust-training defence keeps.

Parametrised over ``registry.available("robust_training")``, so a defence registered
later (DP-SGD, say) is covered without editing this file. Each is built from its
defaults with one epoch (and few attack steps where it has them) and fitted on a
slice of the digits data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from _contract import bad_setting_test

from advml import registry
from advml.defences.training import RobustTraining, TrainedModel
from advml.models import TorchClassifier
from advml.models.architectures import build as build_architecture

DEFENCES = registry.available("robust_training")
N = 128

INVALID_BY_NAME: dict[str, list[tuple[Any, type[Exception]]]] = {
    "eps": [(-0.1, ValueError)],
    "steps": [(0, ValueError)],
    "step_size": [(0, ValueError), (-0.01, ValueError)],
    "epochs": [(0, ValueError)],
    "batch_size": [(0, ValueError)],
    "lr": [(0, ValueError)],
    "warmup_epochs": [(-1, ValueError)],
    "seed": [(-1, ValueError)],
    "beta": [(-1.0, ValueError)],
}


def build(name: str, **settings: Any) -> RobustTraining:
    schema = registry.schema("robust_training", name)
    quick: dict[str, Any] = {"epochs": 1}
    if "steps" in schema:
        quick["steps"] = 2
    defence = registry.create("robust_training", name, **{**quick, **settings})
    assert isinstance(defence, RobustTraining)
    return defence


def small_mlp() -> TorchClassifier:
    torch.manual_seed(0)
    module = build_architecture("mlp", input_shape=(1, 8, 8), n_classes=10, hidden=(32,))
    return TorchClassifier(module, input_shape=(1, 8, 8), n_classes=10)


test_bad_setting_raises_naming_it = bad_setting_test(
    {"robust_training": DEFENCES}, by_name=INVALID_BY_NAME
)


@pytest.mark.parametrize("name", DEFENCES)
def test_every_setting_is_documented(name: str) -> None:
    for setting, spec in registry.schema("robust_training", name).items():
        assert spec["doc"], f"{name}: setting {setting!r} has no description in the docstring"


@pytest.mark.parametrize("name", DEFENCES)
def test_shared_settings_are_documented_once_in_the_parameters_section(name: str) -> None:
    # The shared entries come from with_training_parameters: once each, in the
    # Parameters section (before any Examples), in the constructor's order.
    doc = registry.get("robust_training", name).__doc__ or ""
    params = list(registry.schema("robust_training", name))
    places = [doc.find(f"\n{setting} : ") for setting in params]
    assert all(p > doc.index("Parameters\n----------") for p in places), (name, places)
    assert places == sorted(places), name
    assert all(doc.count(f"\n{setting} : ") == 1 for setting in params), name
    if "Examples" in doc:
        assert max(places) < doc.index("\nExamples\n--------")


@pytest.mark.parametrize("name", DEFENCES)
def test_fit_returns_a_new_trained_model_and_leaves_inputs_alone(
    name: str, digits_data: Any
) -> None:
    defence = build(name)
    params = defence.get_params()
    model = small_mlp()
    model.module.eval()
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    x, y = digits_data.x_train[:N].copy(), digits_data.y_train[:N].copy()
    x0, y0 = x.copy(), y.copy()
    trained = defence.fit(model, x, y, show_progress=False)
    assert isinstance(trained, TrainedModel)
    assert isinstance(trained.model, TorchClassifier) and trained.model is not model
    assert trained.method == name and dict(trained.params) == params
    assert trained.history.epochs_run == defence.epochs and trained.seconds > 0
    assert not trained.model.module.training
    assert trained.model.input_shape == model.input_shape
    assert trained.model.bounds == model.bounds
    # The caller's model, data and the defence itself are unchanged.
    after = model.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not model.module.training
    assert all(p.grad is None for p in model.module.parameters())
    assert np.array_equal(x, x0) and np.array_equal(y, y0)
    assert defence.get_params() == params
    # It predicts.
    assert trained.model.predict(digits_data.x_test[:5]).shape == (5,)


@pytest.mark.parametrize("name", DEFENCES)
def test_same_seed_same_model(name: str, digits_data: Any) -> None:
    x, y = digits_data.x_train[:N], digits_data.y_train[:N]
    states = []
    for _ in range(2):
        torch.manual_seed(len(states))  # the global generator must not matter
        trained = build(name, seed=11).fit(small_mlp(), x, y, show_progress=False)
        states.append(trained.model.module.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
