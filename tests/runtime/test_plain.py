"""plain(): settings and results as JSON data, leniently (reports) or strictly (files)."""

from __future__ import annotations

import json
import math
from types import MappingProxyType
from typing import Any

import numpy as np
import pytest

from advml.runtime.plain import plain


def test_numpy_tuples_and_nesting_become_json_data() -> None:
    value = {
        "eps": np.float32(0.25),
        "steps": np.int64(10),
        "flag": np.bool_(True),
        "shape": (1, 28, 28),
        "inner": MappingProxyType({"mean": np.array([0.5, 0.25])}),
        "none": None,
    }
    out = plain(value)
    assert out == {
        "eps": 0.25,
        "steps": 10,
        "flag": True,
        "shape": [1, 28, 28],
        "inner": {"mean": [0.5, 0.25]},
        "none": None,
    }
    assert type(out["steps"]) is int and type(out["flag"]) is bool
    assert json.loads(json.dumps(out)) == out  # nothing json.dumps needs a default for


def test_lenient_mode_writes_keys_as_json_does_and_objects_as_text() -> None:
    class Thing:
        def __str__(self) -> str:
            return "a thing"

    out = plain({2: "a", 1.5: "b", True: "c", None: "d", "x": Thing()})
    assert out == json.loads(json.dumps({2: "a", 1.5: "b", True: "c", None: "d", "x": "a thing"}))


def test_finite_writes_nan_and_infinity_as_none() -> None:
    assert plain([math.nan, math.inf, 1.0], finite=True) == [None, None, 1.0]
    out = plain([math.nan, -math.inf])
    assert math.isnan(out[0]) and out[1] == -math.inf


def test_strict_mode_names_where_the_unsavable_value_is() -> None:
    assert plain({"a": (1, np.int32(2))}, where="settings") == {"a": [1, 2]}
    with pytest.raises(ValueError, match=r"settings\['a'\]\['b'\] holds object"):
        plain({"a": {"b": object()}}, where="settings")
    with pytest.raises(ValueError, match=r"meta keys must be strings, got 3"):
        plain({3: 1}, where="meta")
    with pytest.raises(ValueError, match=r"kwargs\['w'\] holds ndarray"):
        plain({"w": np.zeros(2)}, where="kwargs")


def test_strict_plain_turns_tuples_and_numpy_scalars_into_plain_values() -> None:
    value = {"a": (1, np.float32(0.5)), "b": [None, True, "x", {"c": np.int64(3)}]}
    out = plain(value, where="settings")
    assert out == {"a": [1, 0.5], "b": [None, True, "x", {"c": 3}]}
    assert type(out["a"][1]) is float and type(out["b"][3]["c"]) is int
    assert value["a"] == (1, np.float32(0.5))  # the input is left as it was


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ({1: "x"}, r"^settings keys must be strings, got 1$"),
        ({"a": {2: "x"}}, r"^settings\['a'\] keys must be strings"),
        ({"a": [0, object()]}, r"^settings\['a'\]\[1\] holds object; only numbers, strings"),
        ({"a": np.zeros(2)}, r"^settings\['a'\] holds ndarray"),
    ],
)
def test_strict_plain_names_where_the_unsaveable_value_stands(value: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        plain(value, where="settings")
