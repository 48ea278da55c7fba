"""The contract every registered evasion attack keeps (STYLE.md, "Tests mirror the tree").

Parametrised over ``registry.available("evasion")``, so an attack registered later is
covered without editing this file. Each attack is built from its defaults, with a small
``steps`` where it has that setting, and run on the session's digits MLP.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch
from _contract import bad_setting_test
from torch import Tensor, nn

from advml import registry
from advml.errors import UnsupportedModelError
from advml.evasion import AdversarialResult, EvasionAttack
from advml.models import BaseClassifier, TorchClassifier

# The tree attacks need a tree model, not the digits MLP: tests/trees/test_contract.py
# holds them to the same contract on a gradient-boosted ensemble.
ATTACKS = [n for n in registry.available("evasion") if n not in ("tree_exact", "tree_fast")]
N = 48  # test samples per call: enough to see every behaviour, fast
TOL = 1e-5

# Values that are invalid for a setting of this name, wherever an attack has it.
INVALID_BY_NAME: dict[str, list[tuple[Any, type[Exception]]]] = {
    "eps": [(-0.1, ValueError)],
    "steps": [(0, ValueError), (-1, ValueError), (2.5, TypeError)],
    "step_size": [(0, ValueError), (-0.01, ValueError)],
    "batch_size": [(0, ValueError), (-8, ValueError)],
    "restarts": [(0, ValueError)],
    "seed": [(-1, ValueError)],
    "norm": [("3", ValueError), (3, ValueError)],
    "loss": [("foo", ValueError)],
    "targeted": [("yes", TypeError), (1, TypeError)],
}

# Settings that switch an attack's use of its seed on, where it has them.
RANDOMISING: dict[str, Any] = {"random_start": True, "untargeted_target": "random"}


def build(name: str, **settings: Any) -> EvasionAttack:
    """``name`` with default settings, a small ``steps`` where it exists, and ``settings``."""
    schema = registry.schema("evasion", name)
    quick: dict[str, Any] = {"steps": 5} if "steps" in schema else {}
    if "max_queries" in schema:  # query-based attacks: a small budget keeps the suite fast
        quick["max_queries"] = 200
    attack = registry.create("evasion", name, **{**quick, **settings})
    assert isinstance(attack, EvasionAttack)
    return attack


@pytest.fixture(params=ATTACKS)
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def data(digits_data: Any) -> tuple[np.ndarray, np.ndarray]:
    """Copies of the first ``N`` test digits and their labels."""
    return digits_data.x_test[:N].copy(), digits_data.y_test[:N].copy()


def has(name: str, setting: str) -> bool:
    return setting in registry.schema("evasion", name)


def ball(attack: EvasionAttack) -> tuple[str, float] | None:
    eps = getattr(attack, "eps", None)
    return None if eps is None else (getattr(attack, "norm", "inf"), float(eps))


def assert_in_threat_model(
    attack: EvasionAttack, model: TorchClassifier, x: np.ndarray, x_adv: np.ndarray
) -> None:
    low, high = model.bounds
    assert x_adv.min() >= low - TOL and x_adv.max() <= high + TOL
    threat = ball(attack)
    if threat is not None:
        norm, eps = threat
        d = (x_adv.astype(np.float64) - x.astype(np.float64)).reshape(len(x), -1)
        sizes = np.abs(d).max(1) if norm == "inf" else np.linalg.norm(d, axis=1)
        assert sizes.max() <= eps + TOL, f"{norm}-norm {sizes.max()} > eps {eps}"


# -- shapes, types, threat model -------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_in_numpy_out(name: str, digits_mlp: TorchClassifier, data: Any, dtype: Any) -> None:
    x, y = data
    x = x.astype(dtype)
    result = build(name).generate(digits_mlp, x, y)
    assert isinstance(result.x_adv, np.ndarray)
    assert result.x_adv.shape == x.shape
    assert result.x_adv.dtype == dtype
    for field in (result.y, result.y_adv, result.success, result.l0, result.l2, result.linf):
        assert isinstance(field, np.ndarray) and field.shape == (N,)
    assert result.queries.shape == (N,)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tensor_in_tensor_out(
    name: str, digits_mlp: TorchClassifier, data: Any, dtype: torch.dtype
) -> None:
    x, y = data
    xt = torch.as_tensor(x).to(dtype)
    result = build(name).generate(digits_mlp, xt, torch.as_tensor(y))
    assert isinstance(result.x_adv, Tensor)
    assert result.x_adv.shape == xt.shape
    assert result.x_adv.dtype == dtype
    assert result.x_adv.device == xt.device
    assert not result.x_adv.requires_grad
    # Labels given as a tensor give the same attack as labels given as numpy.
    np.testing.assert_array_equal(result.y, y)


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_output_within_bounds_and_eps(
    name: str, digits_mlp: TorchClassifier, data: Any, norm: str
) -> None:
    if norm != "inf" and not has(name, "norm"):
        pytest.skip(f"{name} has no norm setting")
    x, y = data
    settings = {"norm": norm} if has(name, "norm") else {}
    if has(name, "eps"):
        settings["eps"] = 0.2 if norm == "inf" else 1.0
    attack = build(name, **settings)
    result = attack.generate(digits_mlp, x, y)
    assert_in_threat_model(attack, digits_mlp, x, result.x_adv)
    # And the attack did something: an attack that returns x passes every check above.
    assert result.success.any()


def test_bounds_respected_on_a_shifted_range(name: str, make_linear: Any) -> None:
    # Bounds other than [0, 1]: an attack that clamps to [0, 1] breaks here.
    model = make_linear([[1.0, 0.0, -1.0], [0.0, 1.0, 1.0]], bounds=(-3.0, 5.0))
    x = np.array([[-2.9, 4.9, 0.0], [4.95, -2.95, 1.0], [0.5, 0.4, -2.99]], dtype=np.float32)
    settings: dict[str, Any] = {"eps": 2.0} if has(name, "eps") else {}
    if has(name, "gamma"):
        settings["gamma"] = 1.0  # JSMA: any fraction below 2/3 allows no pair of 3 features
    attack = build(name, **settings)
    result = attack.generate(model, x)
    assert_in_threat_model(attack, model, x, result.x_adv)
    assert result.success.any()


# -- no side effects ----------------------------------------------------------------------


def test_numpy_input_not_mutated(name: str, digits_mlp: TorchClassifier, data: Any) -> None:
    x, y = data
    x_before, y_before = x.copy(), y.copy()
    build(name).generate(digits_mlp, x, y)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(y, y_before)


def test_tensor_input_not_mutated(name: str, digits_mlp: TorchClassifier, data: Any) -> None:
    x, y = (torch.as_tensor(a) for a in data)
    x_before, y_before = x.clone(), y.clone()
    result = build(name).generate(digits_mlp, x, y)
    assert torch.equal(x, x_before) and torch.equal(y, y_before)
    assert result.x_adv.data_ptr() != x.data_ptr()


class ModeSpy(nn.Module):
    """Records the training flag of every forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[bool] = []

    def forward(self, x: Tensor) -> Tensor:
        self.seen.append(self.training)
        return x


def test_eval_mode_used_and_train_mode_restored(
    name: str, digits_mlp: TorchClassifier, data: Any
) -> None:
    # Dropout with p=0.99 in front of the network: in train mode it wipes out almost every
    # input feature at random, so two runs could only agree if the attack used eval mode.
    spy = ModeSpy()
    module = nn.Sequential(spy, nn.Dropout(0.99), copy.deepcopy(digits_mlp.module))
    model = TorchClassifier(module, input_shape=(1, 8, 8), n_classes=10)
    module.train()
    module[2].fc1.eval()  # a mixed state must come back as it was
    modes = [m.training for m in module.modules()]
    x, y = data
    attack = build(name)
    first = attack.generate(model, x, y)
    second = attack.generate(model, x, y)
    assert [m.training for m in module.modules()] == modes
    assert spy.seen and not any(spy.seen), "the model ran in train mode during the attack"
    np.testing.assert_array_equal(first.x_adv, second.x_adv)
    np.testing.assert_array_equal(first.y_adv, second.y_adv)


def test_parameter_gradients_untouched(name: str, digits_mlp: TorchClassifier, data: Any) -> None:
    module = copy.deepcopy(digits_mlp.module)
    model = TorchClassifier(module, input_shape=(1, 8, 8), n_classes=10)
    x, y = data
    build(name).generate(model, x, y)
    assert all(p.grad is None for p in module.parameters())
    # Gradients the caller had already accumulated are left exactly as they were.
    for p in module.parameters():
        p.grad = torch.full_like(p, 0.25)
    build(name).generate(model, x, y)
    assert all(torch.equal(p.grad, torch.full_like(p, 0.25)) for p in module.parameters())
    assert all(p.requires_grad for p in module.parameters())


def test_attack_object_unchanged_by_use(name: str, digits_mlp: TorchClassifier, data: Any) -> None:
    attack = build(name)
    before = copy.deepcopy(attack.get_params())
    result = attack.generate(digits_mlp, *data)
    assert attack.get_params() == before
    assert dict(result.params) == before


# -- randomness -----------------------------------------------------------------------------


def test_same_settings_same_result(name: str, digits_mlp: TorchClassifier, data: Any) -> None:
    x, y = data
    first = build(name).generate(digits_mlp, x, y)
    second = build(name).generate(digits_mlp, x, y)
    np.testing.assert_array_equal(first.x_adv, second.x_adv)
    np.testing.assert_array_equal(first.queries, second.queries)


def test_different_seeds_differ(name: str, digits_mlp: TorchClassifier, data: Any) -> None:
    schema = registry.schema("evasion", name)
    if "seed" not in schema:
        pytest.skip(f"{name} has no seed setting")
    # Attacks that are deterministic by default are checked with their randomness on.
    extra = {k: v for k, v in RANDOMISING.items() if k in schema}
    x, y = data
    first = build(name, seed=0, **extra).generate(digits_mlp, x, y)
    second = build(name, seed=1, **extra).generate(digits_mlp, x, y)
    assert not np.array_equal(first.x_adv, second.x_adv)


# -- settings -------------------------------------------------------------------------------


test_bad_setting_raises_naming_it = bad_setting_test({"evasion": ATTACKS}, by_name=INVALID_BY_NAME)


def test_schema_covers_the_cases_the_contract_names() -> None:
    # The table-driven checks above only run where a setting exists; make sure they ran.
    settings = {s for name in ATTACKS for s in registry.schema("evasion", name)}
    assert {"eps", "steps", "batch_size", "norm", "loss", "targeted"} <= settings


def test_eps_zero_returns_an_equal_copy(name: str, digits_mlp: TorchClassifier, data: Any) -> None:
    if not has(name, "eps"):
        pytest.skip(f"{name} has no eps setting")
    x, y = data
    result = build(name, eps=0.0).generate(digits_mlp, x, y)
    np.testing.assert_array_equal(result.x_adv, x)
    assert result.x_adv is not x and not np.shares_memory(result.x_adv, x)
    xt = torch.as_tensor(x)
    result_t = build(name, eps=0.0).generate(digits_mlp, xt, y)
    assert torch.equal(result_t.x_adv, xt)
    assert result_t.x_adv is not xt and result_t.x_adv.data_ptr() != xt.data_ptr()
    assert not result.success[result.y == digits_mlp.predict(x)].any()
    assert (result.l0 == 0).all() and (result.linf == 0).all()


# -- labels ---------------------------------------------------------------------------------


def test_targeted_without_y_raises(name: str, digits_mlp: TorchClassifier, data: Any) -> None:
    if not has(name, "targeted"):
        pytest.skip(f"{name} has no targeted setting")
    with pytest.raises(ValueError, match=r"\by\b"):
        build(name, targeted=True).generate(digits_mlp, data[0])


def test_targeted_success_means_reaching_the_target(
    name: str, digits_mlp: TorchClassifier, data: Any
) -> None:
    if not has(name, "targeted"):
        pytest.skip(f"{name} has no targeted setting")
    x, y = data
    target = (y + 1) % 10
    result = build(name, targeted=True).generate(digits_mlp, x, target)
    assert result.targeted
    np.testing.assert_array_equal(result.y, target)
    np.testing.assert_array_equal(result.success, result.y_adv == target)
    assert result.success.any()


def test_without_y_the_models_predictions_are_attacked(
    name: str, digits_mlp: TorchClassifier, data: Any
) -> None:
    x, _ = data
    predicted = digits_mlp.predict(x)
    result = build(name).generate(digits_mlp, x)
    np.testing.assert_array_equal(result.y, predicted)
    np.testing.assert_array_equal(result.success, result.y_adv != predicted)


def test_misclassified_labels_are_used_as_given(
    name: str, digits_mlp: TorchClassifier, data: Any
) -> None:
    # With y given, y is what the attack moves away from, even where the model disagrees.
    x, _ = data
    wrong = (digits_mlp.predict(x) + 3) % 10
    result = build(name).generate(digits_mlp, x, wrong)
    np.testing.assert_array_equal(result.y, wrong)
    assert result.success.all()  # the model never said "wrong", and the attack kept it so


# -- bad inputs -----------------------------------------------------------------------------


def _bad_inputs(x: np.ndarray, y: np.ndarray) -> dict[str, tuple[np.ndarray, Any, str]]:
    nan = x.copy()
    nan[3, 0, 2, 2] = np.nan
    inf = x.copy()
    inf[0, 0, 0, 0] = np.inf
    return {
        "wrong shape": (x[:, 0], y, "x"),
        "flat": (x.reshape(len(x), -1), y, "x"),
        "one sample": (x[0], y[:1], "x"),
        "nan": (nan, y, "x"),
        "inf": (inf, y, "x"),
        "above bounds": (x + 1.5, y, "x"),
        "below bounds": (x - 0.5, y, "x"),
        "empty": (x[:0], y[:0], "x"),
        "label too large": (x, np.where(np.arange(len(y)) == 5, 10, y), "y"),
        "negative label": (x, np.where(np.arange(len(y)) == 5, -1, y), "y"),
        "fractional label": (x, y + 0.5, "y"),
        "one-hot labels": (x, np.eye(10)[y], "y"),
        "too few labels": (x, y[:-1], "y"),
    }


BAD_INPUT_CASES = list(_bad_inputs(np.zeros((4, 1, 8, 8)), np.zeros(4, dtype=int)))


@pytest.mark.parametrize("case", BAD_INPUT_CASES)
def test_bad_input_raises_naming_it(
    name: str, digits_mlp: TorchClassifier, data: Any, case: str
) -> None:
    x, y, culprit = _bad_inputs(*data)[case]
    with pytest.raises(ValueError, match=rf"\b{culprit}\b"):
        build(name).generate(digits_mlp, x, y)
    with pytest.raises(ValueError, match=rf"\b{culprit}\b"):
        build(name).generate(digits_mlp, torch.as_tensor(x), torch.as_tensor(y))


def test_model_that_is_not_a_classifier_raises(name: str, digits_mlp: TorchClassifier) -> None:
    with pytest.raises(TypeError, match="Classifier"):
        build(name).generate(digits_mlp.module, np.zeros((2, 1, 8, 8), np.float32))  # type: ignore[arg-type]


class NoGradients(BaseClassifier):
    """Scores computed out of sight: a black-box model with probabilities."""

    has_gradients = False

    def __init__(self, module: nn.Module) -> None:
        super().__init__(input_shape=(1, 8, 8), n_classes=10, bounds=(0.0, 1.0))
        self.module = module

    def _logits(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            out: Tensor = self.module(x)
        return out


class LabelsOnly(NoGradients):
    has_scores = False

    def _labels(self, x: Tensor) -> Tensor:
        return super()._logits(x).argmax(1)


@pytest.mark.parametrize("kind", [NoGradients, LabelsOnly])
def test_model_without_needed_capability_raises(
    name: str, digits_mlp: TorchClassifier, data: Any, kind: type[NoGradients]
) -> None:
    attack = build(name)
    model = kind(digits_mlp.module)
    needs = attack.needs_gradients or (attack.needs_scores and not model.has_scores)
    if not needs:
        pytest.skip(f"{name} works without the model's gradients")
    with pytest.raises(UnsupportedModelError, match=type(attack).__name__):
        attack.generate(model, *data)
    assert model.query_count == 0  # refused before asking the model anything


# -- the result -----------------------------------------------------------------------------


def test_result_fields_are_consistent(
    name: str, digits_mlp: TorchClassifier, data: Any, assert_labels_match: Any
) -> None:
    x, y = data
    attack = build(name)
    queries_before = digits_mlp.query_count
    result = attack.generate(digits_mlp, x, y)
    assert isinstance(result, AdversarialResult)
    assert result.attack == name and result.targeted is False
    assert result.n == N
    np.testing.assert_array_equal(result.y, y)
    # The model's labels of x_adv, read again: an input left on the decision boundary may
    # go either way between two float32 evaluations, so compare where the argmax is clear.
    with torch.no_grad():
        assert_labels_match(result.y_adv, digits_mlp.logits(torch.as_tensor(result.x_adv)))
    assert result.success.dtype == bool
    np.testing.assert_array_equal(result.success, result.y_adv != y)
    assert result.success_rate == pytest.approx(result.success.mean())
    d = (result.x_adv.astype(np.float64) - x.astype(np.float64)).reshape(N, -1)
    np.testing.assert_array_equal(result.l0, (np.abs(d) > 1e-7).sum(1))
    np.testing.assert_allclose(result.l2, np.linalg.norm(d, axis=1), atol=TOL)
    np.testing.assert_allclose(result.linf, np.abs(d).max(1), atol=TOL)
    assert np.issubdtype(result.queries.dtype, np.integer)
    assert (result.queries > 0).all()
    # The model counted at least what the attack says it spent.
    assert digits_mlp.query_count - queries_before >= result.queries.sum()
    assert result.seconds >= 0
    summary = result.summary()
    assert set(summary) == {
        "attack",
        "targeted",
        "n",
        "success_rate",
        "median_l0",
        "median_l2",
        "median_linf",
        "mean_queries",
        "seconds",
    }
    assert summary["n"] == N and summary["success_rate"] == result.success_rate
    assert summary["median_l2"] == pytest.approx(float(np.median(result.l2[result.success])))
    assert summary["mean_queries"] == pytest.approx(result.queries.mean())
    with pytest.raises(AttributeError):
        result.seconds = 0.0  # type: ignore[misc]


def test_batch_size_splits_the_work(
    name: str, digits_mlp: TorchClassifier, data: Any, assert_labels_match: Any
) -> None:
    # Chunks of 7 (not dividing N) give a result for every sample, in order.
    x, y = data
    result = build(name, batch_size=7).generate(digits_mlp, x, y)
    assert result.x_adv.shape == x.shape and result.n == N
    # y_adv came from batches of 7, this check from one of N: the float32 logits differ in
    # the last bits, which can flip an adversarial input that sits on the boundary.
    with torch.no_grad():
        logits = digits_mlp.logits(torch.as_tensor(result.x_adv))
    assert_labels_match(result.y_adv, logits)
    assert (result.queries > 0).all()


# -- registry -------------------------------------------------------------------------------


def test_registry_entry(name: str) -> None:
    cls = registry.get("evasion", name)
    assert issubclass(cls, EvasionAttack)
    assert cls.name == name and cls.family == "evasion"
    schema = registry.schema("evasion", name)
    assert schema, f"{name} has no settings"
    for setting, spec in schema.items():
        assert spec["doc"].strip(), f"{name}.{setting} has no description in the docstring"
        assert spec["type"] and spec["type"] != "Any", f"{name}.{setting} has no annotation"
        assert not spec["required"], f"{name}.{setting} has no default"
    attack = registry.create("evasion", name)
    assert type(attack) is cls
    assert attack.get_params() == {s: spec["default"] for s, spec in schema.items()}
    with pytest.raises(ValueError, match="unknown setting"):
        registry.create("evasion", name, no_such_setting=1)
    with pytest.raises(TypeError):
        cls(0.1)  # type: ignore[call-arg]  # keyword-only settings


def test_set_params_returns_a_new_attack(name: str) -> None:
    attack = build(name)
    if not has(name, "batch_size"):
        pytest.skip(f"{name} has no batch_size setting")
    other = attack.set_params(batch_size=3)
    assert other is not attack and other.batch_size == 3 and attack.batch_size is None
    with pytest.raises(ValueError, match="no_such_setting"):
        attack.set_params(no_such_setting=1)
