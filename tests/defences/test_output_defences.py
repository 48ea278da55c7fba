"""Output hardening wrappers: the contract over every registered one, then each one's claim."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch

from advml import registry
from advml.defences.output import (
    PROBA_FLOOR,
    HardenedClassifier,
    LabelsOnly,
    NoisyScores,
    OutputDefence,
    Rounding,
    TopK,
)
from advml.errors import QueryBudgetExceededError, UnsupportedModelError
from advml.models import CallableClassifier, Classifier, TorchClassifier

DEFENCES = registry.available("output_defence")
BAD_SETTINGS: list[tuple[str, str, Any, type[Exception]]] = [
    ("top_k", "k", 0, ValueError),
    ("top_k", "k", 1.5, TypeError),
    ("rounding", "decimals", -1, ValueError),
    ("rounding", "decimals", "2", TypeError),
    ("noisy_scores", "scale", -0.1, ValueError),
    ("noisy_scores", "keep_label", 1, TypeError),
    ("noisy_scores", "seed", -1, ValueError),
]


@pytest.fixture(params=DEFENCES)
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def x(digits_data: Any) -> np.ndarray:
    return np.asarray(digits_data.x_test[:64])


def test_every_name_is_covered() -> None:
    assert set(DEFENCES) == {"top_k", "rounding", "labels_only", "noisy_scores"}


# -- the contract ---------------------------------------------------------------------------


def test_registry_entry(name: str) -> None:
    cls = registry.get("output_defence", name)
    assert issubclass(cls, OutputDefence) and cls.family == "output_defence"
    defence = registry.create("output_defence", name)
    for setting, spec in registry.schema("output_defence", name).items():
        assert spec["doc"], f"{name}.{setting} has no description"
        assert not spec["required"]
    assert defence.describe()
    with pytest.raises(ValueError, match="unknown setting"):
        registry.create("output_defence", name, no_such_setting=1)


@pytest.mark.parametrize(("name", "setting", "value", "error"), BAD_SETTINGS)
def test_bad_setting_raises_naming_it(
    name: str, setting: str, value: Any, error: type[Exception]
) -> None:
    with pytest.raises(error, match=rf"\b{setting}\b"):
        registry.create("output_defence", name, **{setting: value})


def test_hardened_model_is_a_black_box_classifier(
    name: str, digits_mlp: TorchClassifier, x: np.ndarray
) -> None:
    defence = registry.create("output_defence", name)
    assert isinstance(defence, OutputDefence)
    api = defence.wrap(digits_mlp)
    assert isinstance(api, Classifier) and isinstance(api, HardenedClassifier)
    assert api.has_gradients is False
    assert api.has_scores is (name != "labels_only")
    assert (api.input_shape, api.n_classes, api.bounds) == (
        digits_mlp.input_shape,
        digits_mlp.n_classes,
        digits_mlp.bounds,
    )
    # Every defence here keeps the label with its default settings: no cost in accuracy.
    np.testing.assert_array_equal(api.predict(x), digits_mlp.predict(x))
    revealed = api.revealed(x)
    assert revealed.shape == (len(x), 10) and (revealed >= 0).all()
    assert api.describe()


def test_queries_are_counted_on_both_and_budget_enforced(
    name: str, digits_mlp: TorchClassifier, x: np.ndarray
) -> None:
    model = copy.deepcopy(digits_mlp)
    model.reset_queries()
    api = registry.create("output_defence", name).wrap(model, query_budget=100)  # type: ignore[attr-defined]
    api.predict(x)
    assert api.query_count == len(x) and model.query_count == len(x)
    with pytest.raises(QueryBudgetExceededError, match="query_budget"):
        api.predict(x)
    assert api.query_count == len(x)


def test_input_and_model_unchanged(name: str, digits_mlp: TorchClassifier, x: np.ndarray) -> None:
    module = copy.deepcopy(digits_mlp.module)
    module.train()
    model = TorchClassifier(module, input_shape=(1, 8, 8), n_classes=10)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    x_before = x.copy()
    defence = registry.create("output_defence", name)
    params = copy.deepcopy(defence.get_params())
    api = defence.wrap(model)  # type: ignore[attr-defined]
    api.predict(x)
    if api.has_scores:
        api.predict_proba(x)
    np.testing.assert_array_equal(x, x_before)
    assert module.training  # the caller's mode comes back
    assert all(torch.equal(v, module.state_dict()[k]) for k, v in before.items())
    assert all(p.grad is None for p in module.parameters())
    assert defence.get_params() == params


def test_same_seed_same_answers(name: str, digits_mlp: TorchClassifier, x: np.ndarray) -> None:
    first = registry.create("output_defence", name).wrap(digits_mlp).revealed(x)  # type: ignore[attr-defined]
    second = registry.create("output_defence", name).wrap(digits_mlp).revealed(x)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(first, second)


def test_not_a_classifier_raises(name: str, digits_mlp: TorchClassifier) -> None:
    with pytest.raises(TypeError, match="Classifier"):
        registry.create("output_defence", name).wrap(digits_mlp.module)  # type: ignore[attr-defined]


# -- each defence's claim -------------------------------------------------------------------


def test_top_k_reveals_exactly_the_k_largest(digits_mlp: TorchClassifier, x: np.ndarray) -> None:
    p = digits_mlp.predict_proba(x)
    q = TopK(k=3).wrap(digits_mlp).revealed(x)
    assert ((q > 0).sum(1) == 3).all()
    top3 = np.argsort(-p, axis=1)[:, :3]
    rows = np.arange(len(x))[:, None]
    np.testing.assert_allclose(q[rows, top3], p[rows, top3], rtol=1e-5, atol=1e-7)
    # Hidden classes sit at the floor of the log-probabilities.
    logits = TopK(k=3).wrap(digits_mlp).logits(torch.as_tensor(x))
    hidden = torch.as_tensor(q == 0)
    assert torch.allclose(logits[hidden], torch.tensor(np.log(PROBA_FLOOR), dtype=torch.float32))
    # k above the number of classes changes nothing.
    np.testing.assert_allclose(TopK(k=50).wrap(digits_mlp).revealed(x), p, rtol=1e-5, atol=1e-7)


def test_rounding_rounds_and_keeps_the_label_on_ties(make_linear: Any) -> None:
    # Class 1 is ahead by a hair: 0.5 vs 0.5 after rounding to one decimal.
    model = make_linear([[0.0, 0.0], [0.001, 0.0]])
    xs = np.array([[0.9, 0.1], [0.2, 0.3]], dtype=np.float32)
    api = Rounding(decimals=1).wrap(model)
    q = api.revealed(xs)
    np.testing.assert_allclose(q, np.full((2, 2), 0.5))
    np.testing.assert_array_equal(api.predict(xs), [1, 1])
    np.testing.assert_array_equal(api.predict_proba(xs).argmax(1), [1, 1])
    p = model.predict_proba(xs)
    np.testing.assert_allclose(Rounding(decimals=3).wrap(model).revealed(xs), np.round(p, 3))


def test_labels_only_has_no_scores(digits_mlp: TorchClassifier, x: np.ndarray) -> None:
    api = LabelsOnly().wrap(digits_mlp)
    with pytest.raises(UnsupportedModelError, match="labels only"):
        api.predict_proba(x)
    with pytest.raises(UnsupportedModelError, match="labels only"):
        api.logits(torch.as_tensor(x))
    np.testing.assert_array_equal(api.revealed(x).argmax(1), digits_mlp.predict(x))
    # Labels only can stand in front of a model that is already label-only.
    label_api = CallableClassifier(
        lambda b: digits_mlp.predict(b),
        input_shape=(1, 8, 8),
        n_classes=10,
        bounds=(0, 1),
        returns="labels",
    )
    np.testing.assert_array_equal(LabelsOnly().wrap(label_api).predict(x), digits_mlp.predict(x))
    with pytest.raises(UnsupportedModelError, match="labels only"):
        Rounding().wrap(label_api)


def test_noisy_scores(digits_mlp: TorchClassifier, x: np.ndarray) -> None:
    p = digits_mlp.predict_proba(x)
    np.testing.assert_allclose(
        NoisyScores(scale=0.0).wrap(digits_mlp).revealed(x), p, rtol=1e-5, atol=1e-6
    )
    api = NoisyScores(scale=0.2).wrap(digits_mlp)
    q1, q2 = api.revealed(x), api.revealed(x)
    np.testing.assert_allclose(q1.sum(1), 1.0, atol=1e-5)
    assert np.abs(q1 - p).mean() > 0.02 and not np.array_equal(q1, q2)  # fresh noise per query
    np.testing.assert_array_equal(q1.argmax(1), p.argmax(1))
    loose = NoisyScores(scale=0.5, keep_label=False).wrap(digits_mlp)
    assert (loose.predict(x) != p.argmax(1)).any()
