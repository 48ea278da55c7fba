"""The contract every registered extraction attack keeps, parametrised over the registry.

Each attack runs with small settings against a white-box digits MLP seen only through
queries, and against a multinomial logistic regression (where equation solving applies).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from advml import registry
from advml.errors import UnsupportedModelError
from advml.extraction import ExtractionAttack, ExtractionResult
from advml.models import CallableClassifier, Classifier, SklearnClassifier, TorchClassifier

ATTACKS = registry.available("extraction")
QUICK: dict[str, dict[str, Any]] = {
    "copycat": {"queries": 60, "rounds": 2, "epochs": 2, "min_steps": 10},
    "equation_solving": {},
}
INVALID: dict[str, list[tuple[Any, type[Exception]]]] = {
    "queries": [(0, ValueError), (2.5, TypeError)],
    "rounds": [(0, ValueError)],
    "epochs": [(0, ValueError)],
    "min_steps": [(-1, ValueError)],
    "batch_size": [(0, ValueError)],
    "lr": [(0, ValueError)],
    "confidence": [(0, ValueError), (1.5, ValueError)],
    "step": [(0, ValueError)],
    "tau": [(0, ValueError)],
    "seed": [(-1, ValueError)],
    "augment": [(1, TypeError)],
    "semi_supervised": [("yes", TypeError)],
}
BAD = [
    (name, setting, value, error)
    for name in ATTACKS
    for setting, spec in registry.schema("extraction", name).items()
    for value, error in (
        [("not-a-choice", ValueError)] if spec["type"].startswith("Literal") else []
    )
    + INVALID.get(setting, [])
]


@pytest.fixture(params=ATTACKS)
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def softmax_victim(digits_data: Any) -> SklearnClassifier:
    x = digits_data.x_train.reshape(len(digits_data.x_train), -1)
    est = LogisticRegression(max_iter=2000).fit(x, digits_data.y_train)
    return SklearnClassifier(est, bounds=(0.0, 1.0), input_shape=(1, 8, 8))


def build(name: str, **settings: Any) -> ExtractionAttack:
    attack = registry.create("extraction", name, **{**QUICK.get(name, {}), **settings})
    assert isinstance(attack, ExtractionAttack)
    return attack


def run(name: str, victim: Classifier, data: Any, **settings: Any) -> ExtractionResult:
    return build(name, **settings).extract(
        victim, data.x_train[:300], x_eval=data.x_test, y_eval=data.y_test, n_random=500
    )


def test_registry_entry(name: str) -> None:
    cls = registry.get("extraction", name)
    assert issubclass(cls, ExtractionAttack) and cls.name == name
    for setting, spec in registry.schema("extraction", name).items():
        assert spec["doc"], f"{name}.{setting} has no description in the docstring"
        assert not spec["required"]
    with pytest.raises(ValueError, match="unknown setting"):
        registry.create("extraction", name, no_such_setting=1)
    with pytest.raises(TypeError):
        cls(5)  # type: ignore[call-arg]


@pytest.mark.parametrize(("name", "setting", "value", "error"), BAD)
def test_bad_setting_raises_naming_it(
    name: str, setting: str, value: Any, error: type[Exception]
) -> None:
    with pytest.raises(error, match=rf"\b{setting}\b"):
        registry.create("extraction", name, **{setting: value})


def test_result_is_consistent(
    name: str, softmax_victim: SklearnClassifier, digits_data: Any
) -> None:
    victim = copy.deepcopy(softmax_victim)
    victim.reset_queries()
    result = run(name, victim, digits_data)
    assert isinstance(result, ExtractionResult) and result.attack == name
    assert isinstance(result.stolen, TorchClassifier) and result.stolen.has_gradients
    assert result.stolen.input_shape == victim.input_shape
    assert victim.query_count == result.queries + result.eval_queries
    assert result.eval_queries == len(digits_data.x_test) + 500
    assert 0 <= result.fidelity <= 1 and 0 <= result.fidelity_random <= 1
    agree = result.stolen.predict(digits_data.x_test) == victim.predict(digits_data.x_test)
    assert result.fidelity == pytest.approx(agree.mean())
    assert result.curve and result.curve[-1].queries == result.queries
    assert result.summary()["queries"] == result.queries
    with pytest.raises(AttributeError):
        result.queries = 0  # type: ignore[misc]


def test_same_seed_same_result(
    name: str, softmax_victim: SklearnClassifier, digits_data: Any
) -> None:
    first = run(name, softmax_victim, digits_data)
    second = run(name, softmax_victim, digits_data)
    # Equal up to float rounding: BLAS may sum in another order from run to run.
    assert [p.queries for p in first.curve] == [p.queries for p in second.curve]
    np.testing.assert_allclose(
        [p.fidelity for p in first.curve], [p.fidelity for p in second.curve], atol=1e-3
    )
    x = torch.as_tensor(digits_data.x_test)
    with torch.no_grad():
        torch.testing.assert_close(
            first.stolen.logits(x), second.stolen.logits(x), atol=1e-4, rtol=1e-4
        )


def test_victim_and_inputs_unchanged(
    name: str, digits_mlp: TorchClassifier, digits_data: Any
) -> None:
    module = copy.deepcopy(digits_mlp.module)
    module.train()
    victim = TorchClassifier(module, input_shape=(1, 8, 8), n_classes=10)
    state = {k: v.clone() for k, v in module.state_dict().items()}
    pool = digits_data.x_train[:300].copy()
    pool_before = pool.copy()
    attack = build(name)
    params = copy.deepcopy(attack.get_params())
    attack.extract(victim, pool, x_eval=digits_data.x_test, n_random=100)
    np.testing.assert_array_equal(pool, pool_before)
    assert module.training
    assert all(torch.equal(v, module.state_dict()[k]) for k, v in state.items())
    assert all(p.grad is None for p in module.parameters())
    assert attack.get_params() == params


def test_not_a_classifier_raises(name: str, digits_mlp: TorchClassifier) -> None:
    with pytest.raises(TypeError, match="Classifier"):
        build(name).extract(digits_mlp.module)  # type: ignore[arg-type]


def test_bad_eval_data_raises_naming_it(
    name: str, digits_mlp: TorchClassifier, digits_data: Any
) -> None:
    attack = build(name)
    pool = digits_data.x_train[:300]
    with pytest.raises(ValueError, match=r"\bx_eval\b"):
        attack.extract(digits_mlp, pool, x_eval=digits_data.x_test + 2.0)
    with pytest.raises(ValueError, match=r"\by_eval\b"):
        attack.extract(digits_mlp, pool, x_eval=digits_data.x_test, y_eval=digits_data.y_test[:-1])
    with pytest.raises(ValueError, match=r"\bn_random\b"):
        attack.extract(digits_mlp, pool, n_random=-1)


def test_label_only_victim(name: str, digits_mlp: TorchClassifier, digits_data: Any) -> None:
    api = CallableClassifier(
        lambda b: digits_mlp.predict(b),
        input_shape=(1, 8, 8),
        n_classes=10,
        bounds=(0, 1),
        returns="labels",
    )
    attack = build(name)
    if attack.needs_scores:
        with pytest.raises(UnsupportedModelError):
            attack.extract(api, digits_data.x_train[:300])
        assert api.query_count == 0  # refused before asking anything
    else:
        result = attack.extract(api, digits_data.x_train[:300], n_random=0)
        assert result.outputs == "labels"
