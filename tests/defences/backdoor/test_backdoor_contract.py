"""The contract every registered backdoor defence keeps.

Parametrised over ``registry.available("backdoor_defence")``, so a later defence is
covered without editing this file: bad settings raise naming the setting, ``run`` leaves
its inputs and the caller's model unchanged, and the same seed gives the same result.
Runs on the hand-built 3-feature model of ``conftest.py`` (milliseconds per call).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch
from _contract import bad_setting_test
from conftest import HAND_TRIGGER, hand_built, hand_data

from advml import registry
from advml.defences.backdoor import BackdoorDefence
from advml.models import TorchClassifier

DEFENCES = registry.available("backdoor_defence")
# Fewer Neural Cleanse steps and fine-tuning epochs: the contract is about behaviour,
# not strength (each defence's own tests check that).
FAST: dict[str, dict[str, Any]] = {
    "neural_cleanse": {"steps": 30, "unlearning_epochs": 1},
    "fine_pruning": {"epochs": 2},
    "strip": {"n_overlays": 8},
}


def test_every_defence_is_registered() -> None:
    assert set(DEFENCES) >= {
        "activation_clustering",
        "fine_pruning",
        "neural_cleanse",
        "pruning",
        "spectral_signatures",
        "strip",
    }


test_bad_setting_raises_naming_it = bad_setting_test(
    {"backdoor_defence": DEFENCES}, negative=-5, text=[(5, TypeError)]
)


@pytest.mark.parametrize("name", DEFENCES)
def test_registry_entry(name: str) -> None:
    cls = registry.get("backdoor_defence", name)
    assert issubclass(cls, BackdoorDefence)
    assert cls.uses, f"{name} does not say which data it uses"
    assert "test" not in cls.uses  # a defender holds no test triggers or test labels
    for setting, spec in registry.schema("backdoor_defence", name).items():
        assert spec["doc"].strip(), f"{name}.{setting} has no description"
        assert not spec["required"], f"{name}.{setting} has no default"
    with pytest.raises(TypeError):
        cls(0.1)  # type: ignore[call-arg]


def _poisoned_training_set() -> tuple[np.ndarray, np.ndarray]:
    x, y = hand_data(n=200, seed=0)
    x[:20] = HAND_TRIGGER.apply(x[:20])
    y[:20] = 0
    return x, y


def _state(model: TorchClassifier) -> list[torch.Tensor]:
    return [t.detach().clone() for t in model.module.state_dict().values()]


def _numbers(result: Any, depth: int = 0) -> list[np.ndarray]:
    """Every array of a result (models as their weights), for comparing two results."""
    if isinstance(result, TorchClassifier):
        return [t.cpu().numpy() for t in _state(result)]
    if isinstance(result, np.ndarray):
        return [result]
    if isinstance(result, int | float | bool):
        return [np.asarray(result)]
    if dataclasses.is_dataclass(result) and depth < 3:
        out: list[np.ndarray] = []
        for f in dataclasses.fields(result):
            out += _numbers(getattr(result, f.name), depth + 1)
        return out
    return []


@pytest.mark.parametrize("name", DEFENCES)
def test_defence_contract(name: str) -> None:
    defence = registry.create("backdoor_defence", name, **FAST.get(name, {}))
    assert isinstance(defence, BackdoorDefence)
    model = hand_built()
    model.module.train()  # the caller's mode must come back as it was
    x, y = _poisoned_training_set()
    xb, yb = x.copy(), y.copy()
    weights = _state(model)
    params = dict(defence.get_params())
    first = defence.run(model, x, y)
    np.testing.assert_array_equal(x, xb)
    np.testing.assert_array_equal(y, yb)
    assert all(torch.equal(a, b) for a, b in zip(weights, _state(model), strict=True))
    assert all(model.unit_mask(layer) is None for layer in model.layer_names)
    assert model.module.training
    assert all(p.grad is None for p in model.module.parameters())
    assert defence.get_params() == params
    # Same seed, same result; tensors in give the same result as numpy.
    again = registry.create("backdoor_defence", name, **FAST.get(name, {})).run(
        model, torch.as_tensor(x), torch.as_tensor(y)
    )
    a, b = _numbers(first), _numbers(again)
    assert len(a) == len(b) and a
    for u, v in zip(a, b, strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="x"):
        defence.run(model, np.full_like(x, np.nan)[:, :2], y)
