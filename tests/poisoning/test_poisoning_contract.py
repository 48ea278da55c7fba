"""The contract every registered trigger and poisoning attack keeps.

Parametrised over ``registry.available("poisoning")`` and ``("trigger")``, so later
components are covered without editing this file.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from _contract import bad_setting_test

from advml import registry
from advml.poisoning import PoisonedData, PoisoningAttack, Trigger

ATTACKS = registry.available("poisoning")
TRIGGERS = registry.available("trigger")

# Values that are invalid for a setting of this name, wherever a component has it.
INVALID_BY_NAME: dict[str, list[tuple[Any, type[Exception]]]] = {
    "fraction": [(0.0, ValueError), (1.5, ValueError)],
    "alpha": [(0.0, ValueError), (1.5, ValueError)],
    "seed": [(-1, ValueError)],
    "target": [(-1, ValueError)],
    "size": [(-1, ValueError)],
    "margin": [(-1, ValueError)],
}


test_bad_setting_raises_naming_it = bad_setting_test(
    {"poisoning": ATTACKS, "trigger": TRIGGERS}, by_name=INVALID_BY_NAME
)


@pytest.mark.parametrize("family", ["poisoning", "trigger"])
def test_registry_entries(family: str) -> None:
    for name in registry.available(family):
        cls = registry.get(family, name)
        assert issubclass(cls, PoisoningAttack if family == "poisoning" else Trigger)
        schema = registry.schema(family, name)
        for setting, spec in schema.items():
            assert spec["doc"].strip(), f"{name}.{setting} has no description"
            assert not spec["required"], f"{name}.{setting} has no default"
        obj = registry.create(family, name)
        assert obj.get_params() == {s: spec["default"] for s, spec in schema.items()}
        with pytest.raises(TypeError):
            cls(0.1)  # type: ignore[call-arg]


def _data(tabular: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.random((100, 30) if tabular else (100, 1, 8, 8)).astype(np.float32)
    return x, np.arange(100) % 10


@pytest.mark.parametrize("name", TRIGGERS)
def test_trigger_contract(name: str) -> None:
    trig = registry.create("trigger", name)
    assert isinstance(trig, Trigger)
    x, _ = _data(tabular=not trig.image_only)
    before = x.copy()
    out = trig.apply(x)
    np.testing.assert_array_equal(x, before)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= 0 and out.max() <= 1
    assert not np.array_equal(out, x)
    mask, pattern = trig.mask_pattern(x.shape[1:])
    np.testing.assert_allclose(out, (1 - mask) * x + mask * pattern, atol=1e-6)
    # Stamping twice changes nothing more (a patch) or blends again (blended): either
    # way the result stays within bounds and a tensor gives the same numbers.
    np.testing.assert_allclose(trig.apply(torch.as_tensor(x)).numpy(), out, atol=1e-6)


@pytest.mark.parametrize("name", ATTACKS)
def test_poisoning_contract(name: str) -> None:
    attack = registry.create("poisoning", name)
    assert isinstance(attack, PoisoningAttack)
    x, y = _data()
    xb, yb = x.copy(), y.copy()
    params = dict(attack.get_params())
    result = attack.poison(x, y)
    np.testing.assert_array_equal(x, xb)
    np.testing.assert_array_equal(y, yb)
    assert attack.get_params() == params and dict(result.params) == params
    assert isinstance(result, PoisonedData) and result.attack == name
    assert result.x.shape == x.shape and result.x.dtype == x.dtype
    assert result.y.shape == y.shape and result.y.dtype == np.int64
    assert result.n_poisoned > 0
    assert np.array_equal(np.unique(result.indices), result.indices)
    untouched = ~result.is_poisoned
    np.testing.assert_array_equal(result.x[untouched], x[untouched])
    np.testing.assert_array_equal(result.y[untouched], y[untouched])
    changed = np.any(result.x != x, axis=(1, 2, 3)) | (result.y != y)
    assert changed[result.indices].all(), "an index was reported poisoned but not changed"
    # Same seed, same result; tensors in give the same result as numpy.
    again = registry.create("poisoning", name).poison(torch.as_tensor(x), torch.as_tensor(y))
    np.testing.assert_array_equal(again.indices, result.indices)
    np.testing.assert_array_equal(again.x, result.x)
    np.testing.assert_array_equal(again.y, result.y)
    with pytest.raises(AttributeError):
        result.x = x  # type: ignore[misc]
    with pytest.raises(ValueError, match="x"):
        attack.poison(np.full((100, 1, 8, 8), np.nan, dtype=np.float32), y)
