"""The contract every registered trigger and poisoning attack keeps.

Parametrised over ``registry.available("poisoning")`` and ``("trigger")``, so later
components are covered without editing this file.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from advml import registry
from advml.poisoning import PoisonedData, PoisoningAttack, Trigger

ATTACKS = registry.available("poisoning")
TRIGGERS = registry.available("trigger")


def invalid_settings(family: str, name: str) -> Iterator[tuple[str, Any, Any]]:
    """(setting, bad value, expected error) derived from the settings' annotated types."""
    for setting, spec in registry.schema(family, name).items():
        kind = spec["type"]
        if kind.startswith("Literal"):
            yield setting, "not-a-choice", ValueError
        elif kind == "bool":
            yield setting, "yes", TypeError
        elif re.fullmatch(r"(int|float)( \| None)?", kind):
            yield setting, "1", TypeError
            yield setting, True, TypeError
            yield setting, math.nan, (TypeError, ValueError)
            if kind.startswith("int"):
                yield setting, 1.5, TypeError
        if setting in ("fraction", "alpha"):
            yield setting, 0.0, ValueError
            yield setting, 1.5, ValueError
        if setting in ("seed", "target", "size", "margin"):
            yield setting, -1, ValueError


BAD = [
    pytest.param(family, name, setting, value, error, id=f"{name}-{setting}={value!r}")
    for family, names in (("poisoning", ATTACKS), ("trigger", TRIGGERS))
    for name in names
    for setting, value, error in invalid_settings(family, name)
]


@pytest.mark.parametrize(("family", "name", "setting", "value", "error"), BAD)
def test_bad_setting_raises_naming_it(
    family: str, name: str, setting: str, value: Any, error: Any
) -> None:
    with pytest.raises(error, match=setting):
        registry.create(family, name, **{setting: value})


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
