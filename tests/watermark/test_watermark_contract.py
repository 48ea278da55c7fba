"""The contract every registered watermark scheme and removal attack keeps.

Parametrised over the registry, so a scheme registered later is covered without editing
this file: same key, same watermark; settings validated, naming the parameter; the
caller's model unchanged; keys that survive a round trip through their file.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from _contract import bad_setting_test

from advml import registry
from advml.models import CallableClassifier, TorchClassifier
from advml.watermark import (
    RemovalAttack,
    Verification,
    WatermarkScheme,
    load_key,
    save_key,
    verify,
)

# Settings that make each scheme embed in about a second on the digits MLP.
QUICK: dict[str, dict[str, Any]] = {
    "uchida": {"bits": 32, "epochs": 1},
    "adi": {"n_triggers": 12, "trigger_batch": 12, "epochs": 1},
    "content": {"n_triggers": 12, "trigger_batch": 12, "epochs": 1},
    "noise": {"n_triggers": 12, "trigger_batch": 12, "epochs": 1},
    "unrelated": {"n_triggers": 12, "trigger_batch": 12, "epochs": 1},
    "frontier": {"n_triggers": 12, "trigger_batch": 12, "epochs": 1, "candidates": 300},
}

SCHEMES = registry.available("watermark")
ATTACKS = registry.available("watermark_removal")

pytestmark = pytest.mark.filterwarnings("ignore:this frontier-stitching key is not calibrated")


def scheme(name: str, **settings: Any) -> WatermarkScheme:
    built = registry.create("watermark", name, **{**QUICK.get(name, {}), **settings})
    assert isinstance(built, WatermarkScheme)
    return built


def test_the_families_hold_the_issue_s_components() -> None:
    assert set(SCHEMES) >= {"uchida", "adi", "content", "noise", "unrelated", "frontier"}
    assert set(ATTACKS) >= {
        "ftll",
        "ftal",
        "rtll",
        "rtal",
        "prune",
        "fine_prune",
        "preprocess",
        "distill",
    }


test_bad_settings_raise_naming_the_parameter = bad_setting_test(
    {"watermark": SCHEMES, "watermark_removal": ATTACKS}, negative=-1, text=[("", ValueError)]
)


def state(model: TorchClassifier) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.module.state_dict().items()}


@pytest.fixture(scope="module")
def embedded(digits_mlp: TorchClassifier, digits_data: Any) -> dict[str, Any]:
    """Each scheme embedded twice with one key and once with another, on one model."""
    out: dict[str, Any] = {}
    before = state(digits_mlp)
    queries = digits_mlp.query_count  # the session's model may have answered other tests
    for name in SCHEMES:
        s = scheme(name)
        out[name] = (
            s.embed(digits_mlp, digits_data.x_train, digits_data.y_train, key="owner"),
            s.embed(digits_mlp, digits_data.x_train, digits_data.y_train, key="owner"),
            s.embed(digits_mlp, digits_data.x_train, digits_data.y_train, key="someone else"),
        )
    after = state(digits_mlp)
    out["unchanged"] = all(torch.equal(before[k], after[k]) for k in before)
    out["mode"] = digits_mlp.module.training
    out["queries"] = digits_mlp.query_count - queries
    return out


@pytest.fixture(params=SCHEMES)
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_the_callers_model_is_not_changed(embedded: dict[str, Any]) -> None:
    assert embedded["unchanged"]
    assert embedded["mode"] is False
    assert embedded["queries"] == 0


def test_same_key_same_watermark(name: str, embedded: dict[str, Any]) -> None:
    first, again, other = embedded[name]
    assert first.key.same_material(again.key)
    for k, v in state(first.model).items():
        assert torch.equal(v, state(again.model)[k]), k
    assert not first.key.same_material(other.key)
    assert first.model is not again.model


def test_the_result_is_a_verified_copy(
    name: str, embedded: dict[str, Any], digits_mlp: TorchClassifier
) -> None:
    marked = embedded[name][0]
    assert marked.model is not digits_mlp
    assert marked.scheme == name and marked.key.scheme == name
    assert isinstance(marked.verification, Verification)
    assert marked.verification.n == marked.key.size
    assert marked.model.query_count == 0
    assert marked.model.module.training is False


def test_the_key_file_round_trips(name: str, embedded: dict[str, Any], tmp_path: Any) -> None:
    marked = embedded[name][0]
    path = save_key(marked.key, tmp_path / "owner.key.npz")
    loaded = load_key(path)
    assert loaded.same_material(marked.key)
    assert dict(loaded.meta) == dict(marked.key.meta)
    again = verify(marked.model, loaded)
    assert again.matches == marked.verification.matches
    assert again.chance_probability == pytest.approx(marked.verification.chance_probability)
    # No pickle anywhere in the file: numpy can read it with pickling disabled.
    with np.load(path, allow_pickle=False) as data:
        assert all(data[f].dtype != object for f in data.files)


def test_verification_through_a_black_box(name: str, embedded: dict[str, Any]) -> None:
    marked = embedded[name][0]
    white = marked.model

    def api(x: np.ndarray) -> np.ndarray:
        return np.asarray(white.predict(x))

    black = CallableClassifier(
        api, input_shape=white.input_shape, n_classes=10, bounds=white.bounds, returns="labels"
    )
    result = verify(black, marked.key)
    if registry.get("watermark", name).white_box_verification:  # type: ignore[attr-defined]
        # Not an exception: "not verified", the reason, and no claim either way.
        assert not result.verified and not result.applicable
        assert result.reason is not None and "white-box" in result.reason
        assert result.queries == 0 == black.query_count
        return
    assert result.reason is None and result.applicable
    assert result.queries == marked.key.size == black.query_count
    assert result.matches == marked.verification.matches


def test_a_key_from_another_scheme_is_refused(name: str, embedded: dict[str, Any]) -> None:
    other = next(n for n in SCHEMES if n != name)
    with pytest.raises(ValueError, match=other):
        scheme(name).verify(embedded[name][0].model, embedded[other][0].key)


def test_a_model_of_another_shape_is_not_verified_and_says_why(
    name: str, embedded: dict[str, Any]
) -> None:
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(5, 10), torch.nn.Linear(10, 10))
    wrong = TorchClassifier(net, input_shape=(5,), n_classes=10)
    key = embedded[name][0].key
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = verify(wrong, key)
    assert not result.verified and result.reason is not None
    assert (result.matches, result.n, result.chance_probability) == (0, key.size, 1.0)
    assert result.queries == 0 == wrong.query_count
    assert result.summary()["reason"] == result.reason


@pytest.mark.parametrize("attack_name", ATTACKS)
def test_removal_attacks_leave_the_model_alone(
    attack_name: str, embedded: dict[str, Any], digits_data: Any
) -> None:
    marked = embedded["adi"][0].model
    before = state(marked)
    attack = registry.create("watermark_removal", attack_name)
    assert isinstance(attack, RemovalAttack)
    if "epochs" in registry.schema("watermark_removal", attack_name):
        attack = attack.set_params(epochs=1)  # type: ignore[assignment]
    x, y = digits_data.x_test[:200].copy(), digits_data.y_test[:200].copy()
    x0 = x.copy()
    result = attack.remove(marked, x, y)
    np.testing.assert_array_equal(x, x0)
    assert result.model is not marked
    assert result.attack == attack_name
    after = state(marked)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert marked.module.training is False
    predictions = np.asarray(result.model.predict(digits_data.x_test[:50]))
    assert predictions.shape == (50,)
    marked.reset_queries()
