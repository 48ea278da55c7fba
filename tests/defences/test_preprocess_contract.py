"""The contract every registered preprocessing defence keeps.

Parametrised over ``registry.available("preprocess")``, so a preprocessor registered later
is covered without editing this file. Fitted preprocessors (the autoencoder) are fitted
once, briefly, on the digits training split.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch
from _contract import bad_setting_test

from advml import registry
from advml.defences.preprocess import STRENGTHS, DefendedClassifier, Preprocessor
from advml.evasion import PGD
from advml.models import TorchClassifier

PREPS = registry.available("preprocess")
N = 24
_FITTED: dict[tuple[str, str, tuple[float, float]], Preprocessor] = {}


def build(
    name: str, x_train: np.ndarray, bounds: tuple[float, float] = (0.0, 1.0), **settings: Any
) -> Preprocessor:
    """``name`` with ``settings``, fitted (quickly, once per settings) where it must be."""
    cls = registry.get("preprocess", name)
    if cls.needs_fit:  # type: ignore[attr-defined]
        settings = {"epochs": 3, **settings}
        key = (name, repr(sorted(settings.items())), bounds)
        if key not in _FITTED:
            prep = registry.create("preprocess", name, **settings)
            low, high = bounds
            prep.fit(x_train * (high - low) + low, bounds=bounds, show_progress=False)  # type: ignore[attr-defined]
            _FITTED[key] = prep
        return _FITTED[key]
    prep = registry.create("preprocess", name, **settings)
    assert isinstance(prep, Preprocessor)
    return prep


@pytest.fixture(params=PREPS)
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def x(digits_data: Any) -> np.ndarray:
    return digits_data.x_test[:N].copy()


@pytest.fixture
def x_train(digits_data: Any) -> np.ndarray:
    return digits_data.x_train


# -- registry and settings -------------------------------------------------------------------


def test_registry_entry(name: str) -> None:
    cls = registry.get("preprocess", name)
    assert issubclass(cls, Preprocessor)
    assert cls.name == name and cls.family == "preprocess"
    assert isinstance(cls.differentiable, bool) and isinstance(cls.randomised, bool)
    schema = registry.schema("preprocess", name)
    assert schema["strength"]["default"] == "medium"
    for setting, spec in schema.items():
        assert spec["doc"].strip(), f"{name}.{setting} has no description in the docstring"
        assert spec["type"] and spec["type"] != "Any", f"{name}.{setting} has no annotation"
        assert not spec["required"], f"{name}.{setting} has no default"
    # Every preset names explicit parameters of the constructor, for every strength.
    assert set(cls.presets) == set(STRENGTHS)
    for preset in cls.presets.values():
        assert set(preset) <= set(schema)
    prep = registry.create("preprocess", name)
    assert prep.get_params() == {s: spec["default"] for s, spec in schema.items()}
    with pytest.raises(ValueError, match="unknown setting"):
        registry.create("preprocess", name, no_such_setting=1)
    with pytest.raises(TypeError):
        cls("high")  # type: ignore[call-arg]  # keyword-only settings


test_bad_setting_raises_naming_it = bad_setting_test({"preprocess": PREPS}, negative=-1)


def test_explicit_parameter_overrides_the_preset(name: str) -> None:
    cls = registry.get("preprocess", name)
    for param, low_value in cls.presets["low"].items():  # type: ignore[attr-defined]
        prep = registry.create("preprocess", name, strength="high", **{param: low_value})
        assert prep.resolved()[param] == low_value  # type: ignore[attr-defined]
        assert (
            registry.create("preprocess", name, strength="high").resolved()[param]
            == (  # type: ignore[attr-defined]
                cls.presets["high"][param]  # type: ignore[attr-defined]
            )
        )


# -- shapes, types, bounds -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_in_numpy_out(name: str, x: np.ndarray, x_train: np.ndarray, dtype: Any) -> None:
    xs = x.astype(dtype)
    out = build(name, x_train)(xs)
    assert isinstance(out, np.ndarray) and out.shape == xs.shape and out.dtype == dtype
    assert np.isfinite(out).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tensor_in_tensor_out(
    name: str, x: np.ndarray, x_train: np.ndarray, dtype: torch.dtype
) -> None:
    xt = torch.as_tensor(x).to(dtype)
    out = build(name, x_train)(xt)
    assert isinstance(out, torch.Tensor) and out.shape == xt.shape and out.dtype == dtype
    assert not out.requires_grad


@pytest.mark.parametrize("strength", STRENGTHS)
def test_output_within_bounds(name: str, x: np.ndarray, x_train: np.ndarray, strength: str) -> None:
    out = build(name, x_train, strength=strength)(x)
    assert out.min() >= -1e-6 and out.max() <= 1 + 1e-6


def test_bounds_respected_on_a_shifted_range(name: str, x: np.ndarray, x_train: np.ndarray) -> None:
    # Bounds other than [0, 1]: a preprocessor that assumes [0, 1] breaks here.
    bounds = (-2.0, 3.0)
    shifted = x * 5.0 - 2.0
    prep = build(name, x_train, bounds=bounds)
    out = prep(shifted, bounds=bounds)
    assert out.min() >= -2.0 - 1e-5 and out.max() <= 3.0 + 1e-5
    # It changes the inputs by about as much as on [0, 1], scaled by the width (5).
    unit = build(name, x_train)(x)
    if not prep.randomised and not prep.needs_fit:
        np.testing.assert_allclose((out + 2.0) / 5.0, unit, atol=2e-3)


def test_input_not_mutated(name: str, x: np.ndarray, x_train: np.ndarray) -> None:
    before = x.copy()
    out = build(name, x_train)(x)
    np.testing.assert_array_equal(x, before)
    assert not np.shares_memory(out, x)
    xt = torch.as_tensor(x)
    out_t = build(name, x_train)(xt)
    assert torch.equal(xt, torch.as_tensor(before)) and out_t.data_ptr() != xt.data_ptr()


def test_preprocessor_unchanged_by_use(name: str, x: np.ndarray, x_train: np.ndarray) -> None:
    prep = build(name, x_train)
    before = copy.deepcopy(prep.get_params())
    prep(x)
    assert prep.get_params() == before


def test_it_changes_the_input(name: str, x: np.ndarray, x_train: np.ndarray) -> None:
    # A preprocessor that returns its input passes every other check here.
    out = build(name, x_train, strength="high")(x)
    assert np.abs(out - x).mean() > 0.01


def test_stronger_setting_changes_more(name: str, x: np.ndarray, x_train: np.ndarray) -> None:
    if registry.get("preprocess", name).needs_fit:  # type: ignore[attr-defined]
        pytest.skip(f"{name}'s strength sets its training, not a distortion size")
    change = [float(np.abs(build(name, x_train, strength=s)(x) - x).mean()) for s in STRENGTHS]
    assert change[0] < change[1] < change[2], change


# -- randomness ------------------------------------------------------------------------------


def test_same_settings_same_result(name: str, x: np.ndarray, x_train: np.ndarray) -> None:
    np.testing.assert_array_equal(build(name, x_train)(x), build(name, x_train)(x))


def test_randomness_is_declared(name: str, x: np.ndarray, x_train: np.ndarray) -> None:
    prep = build(name, x_train)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    first = prep(x, generator=g1)
    second = prep(x, generator=g2)
    if prep.randomised:
        assert not np.array_equal(first, second)
        assert not np.array_equal(
            registry.create("preprocess", name, seed=0)(x),  # type: ignore[operator]
            registry.create("preprocess", name, seed=1)(x),  # type: ignore[operator]
        )
    else:
        np.testing.assert_array_equal(first, second)


def test_differentiable_flag_is_honest(name: str, x: np.ndarray, x_train: np.ndarray) -> None:
    prep = build(name, x_train)
    xt = torch.as_tensor(x).requires_grad_(True)
    out = prep.apply(xt, (0.0, 1.0), torch.Generator().manual_seed(0))
    if prep.differentiable:
        (grad,) = torch.autograd.grad(
            (out * torch.linspace(0, 1, out.numel()).view_as(out)).sum(), xt
        )
        assert torch.isfinite(grad).all() and (grad != 0).float().mean() > 0.5


# -- as a defence in front of a model ------------------------------------------------------


@pytest.mark.parametrize("backward", ["pipeline", "bpda"])
def test_defended_model_is_a_classifier_every_attack_accepts(
    name: str, x: np.ndarray, x_train: np.ndarray, digits_mlp: TorchClassifier, backward: str
) -> None:
    prep = build(name, x_train)
    grads = [None if p.grad is None else p.grad.clone() for p in digits_mlp.module.parameters()]
    defended = DefendedClassifier(digits_mlp, prep, backward=backward)  # type: ignore[arg-type]
    pred = defended.predict(x)
    assert pred.shape == (N,) and pred.dtype == np.int64
    proba = defended.predict_proba(x)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    result = PGD(eps=0.1, steps=3).generate(defended, x)
    assert np.abs(result.x_adv - x).max() <= 0.1 + 1e-6
    for p, before in zip(digits_mlp.module.parameters(), grads, strict=True):
        assert (p.grad is None and before is None) or torch.equal(p.grad, before)


# -- bad inputs ----------------------------------------------------------------------------


def test_bad_inputs_raise_naming_them(name: str, x: np.ndarray, x_train: np.ndarray) -> None:
    prep = build(name, x_train)
    nan = x.copy()
    nan[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"\bx\b"):
        prep(nan)
    with pytest.raises(ValueError, match=r"\bx\b"):
        prep(x[:0])
    with pytest.raises(ValueError, match=r"\bbounds\b"):
        prep(x, bounds=(1.0, 0.0))
    if prep.image_only:
        with pytest.raises(ValueError, match="images"):
            prep(x.reshape(N, -1))
