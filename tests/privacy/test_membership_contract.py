"""The contract every registered membership attack keeps (STYLE.md, "Tests mirror the tree").

Parametrised over ``registry.available("membership")``: each attack is built with quick
shadow settings where it has them and run on a tiny model and pool.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import numpy as np
import pytest
import torch
from _contract import bad_setting_test
from torch import Tensor, nn

from advml import registry
from advml.errors import UnsupportedModelError
from advml.models import CallableClassifier, TorchClassifier
from advml.models.architectures import build as build_net
from advml.privacy.membership import FittedMembershipAttack, MembershipAttack, MembershipResult

ATTACKS = registry.available("membership")
N = 40

QUICK = {"shadow_epochs": 2, "n_shadow": 2, "n_perturbations": 3}


def make(name: str, **settings: Any) -> MembershipAttack:
    schema = registry.schema("membership", name)
    quick = {k: v for k, v in QUICK.items() if k in schema}
    attack = registry.create("membership", name, **{**quick, **settings})
    assert isinstance(attack, MembershipAttack)
    return attack


INVALID_BY_NAME: dict[str, list[tuple[Any, type[Exception]]]] = {
    "n_shadow": [(0, ValueError)],
    "shadow_epochs": [(0, ValueError)],
    "shadow_lr": [(0, ValueError), (-1.0, ValueError)],
    "shadow_batch_size": [(0, ValueError)],
    "seed": [(-1, ValueError)],
    "population_fpr": [(0, ValueError), (1.5, ValueError)],
    "n_perturbations": [(0, ValueError)],
    "noise": [(0, ValueError)],
}


@pytest.fixture(params=ATTACKS)
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def tiny() -> tuple[TorchClassifier, np.ndarray, np.ndarray]:
    """A small MLP trained on 20 of 40 digits, and the 40 digits."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data[:N] / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = digits.target[:N].astype(np.int64)
    torch.manual_seed(0)
    net = build_net("mlp", input_shape=(1, 8, 8), n_classes=10, hidden=(16,))
    model = TorchClassifier(net, input_shape=(1, 8, 8), n_classes=10)
    from advml.models import train

    train(model, x[:20], y[:20], epochs=5, val_fraction=0.0, patience=None, show_progress=False)
    return model, x, y


def test_fit_then_infer(name: str, tiny: Any) -> None:
    model, x, y = tiny
    attack = make(name)
    before = copy.deepcopy(attack.get_params())
    fitted = attack.fit(model, x, y)
    assert isinstance(fitted, FittedMembershipAttack)
    assert attack.get_params() == before, "fit changed the attack's settings"
    result = fitted.infer(model, x, y)
    assert isinstance(result, MembershipResult)
    assert result.scores.shape == (N,) and result.scores.dtype == np.float64
    assert np.isfinite(result.scores).all()
    np.testing.assert_array_equal(result.is_member, result.scores >= result.threshold)
    assert result.attack == name and dict(result.params) == before
    assert result.queries >= N
    metrics = result.metrics(np.arange(N) < 20)
    assert 0.0 <= metrics.auc <= 1.0
    with pytest.raises(AttributeError):
        result.threshold = 0.0  # type: ignore[misc]


def test_same_seed_same_result(name: str, tiny: Any) -> None:
    model, x, y = tiny
    first = make(name, seed=3).fit(model, x, y).infer(model, x, y)
    second = make(name, seed=3).fit(model, x, y).infer(model, x, y)
    np.testing.assert_array_equal(first.scores, second.scores)
    assert first.threshold == second.threshold


def test_inputs_not_mutated(name: str, tiny: Any) -> None:
    model, x, y = tiny
    xc, yc = x.copy(), y.copy()
    fitted = make(name).fit(model, xc, yc)
    xt, yt = torch.as_tensor(xc), torch.as_tensor(yc)
    fitted.infer(model, xt, yt)
    np.testing.assert_array_equal(xc, x)
    np.testing.assert_array_equal(yc, y)
    assert torch.equal(xt, torch.as_tensor(x)) and torch.equal(yt, torch.as_tensor(y))


def test_model_mode_and_gradients_untouched(name: str, tiny: Any) -> None:
    model, x, y = tiny
    module = copy.deepcopy(model.module)
    twin = TorchClassifier(module, input_shape=(1, 8, 8), n_classes=10)
    module.train()
    module.fc1.eval()
    modes = [m.training for m in module.modules()]
    state = {k: v.clone() for k, v in module.state_dict().items()}
    for p in module.parameters():
        p.grad = torch.full_like(p, 0.25)
    make(name).fit(twin, x, y).infer(twin, x, y)
    assert [m.training for m in module.modules()] == modes
    assert all(torch.equal(p.grad, torch.full_like(p, 0.25)) for p in module.parameters())
    assert all(torch.equal(v, module.state_dict()[k]) for k, v in state.items())


class _Spy(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.seen: list[bool] = []

    def forward(self, x: Tensor) -> Tensor:
        self.seen.append(self.training)
        out: Tensor = self.inner(x)
        return out


def test_target_queried_in_eval_mode(name: str, tiny: Any) -> None:
    model, x, y = tiny
    spy = _Spy(copy.deepcopy(model.module))
    twin = TorchClassifier(spy, input_shape=(1, 8, 8), n_classes=10)
    spy.train()
    make(name).fit(twin, x, y).infer(twin, x, y)
    assert spy.seen and not any(spy.seen)


def test_works_through_a_callable_with_counted_queries(name: str, tiny: Any) -> None:
    model, x, y = tiny
    attack = make(name)
    returns = "probs" if attack.needs_scores else "labels"

    def api(batch: np.ndarray) -> np.ndarray:
        if returns == "labels":
            return np.asarray(model.predict(batch))
        return np.asarray(model.predict_proba(batch)).round(3)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        black = CallableClassifier(
            api, input_shape=(1, 8, 8), n_classes=10, bounds=(0, 1), returns=returns
        )
        fitted = attack.fit(black, x, y)
        result = fitted.infer(black, x, y)
    messages = [str(w.message) for w in caught]
    # Rounded probabilities are renormalised, and said so.
    assert any("renormalised" in m for m in messages) == (returns == "probs")
    # A black box cannot be copied: shadows fall back on the reference MLP, and say so.
    trains_shadows = getattr(attack, "calibration", "shadow") == "shadow"
    fallback = [m for m in messages if "reference MLP" in m]
    assert len(fallback) == int(trains_shadows)
    if trains_shadows:
        assert "CallableClassifier" in fallback[0] and type(attack).__name__ in fallback[0]
    assert black.query_count == fitted.fit_queries + result.queries
    assert result.queries >= N and np.isfinite(result.scores).all()


def test_label_only_model_refused_by_score_attacks(name: str, tiny: Any) -> None:
    model, x, y = tiny
    attack = make(name)
    if not attack.needs_scores:
        pytest.skip(f"{name} works on labels")
    black = CallableClassifier(
        lambda b: np.asarray(model.predict(b)),
        input_shape=(1, 8, 8),
        n_classes=10,
        bounds=(0, 1),
        returns="labels",
    )
    with pytest.raises(UnsupportedModelError, match="label_only"):
        attack.fit(black, x, y)
    assert black.query_count == 0


test_bad_setting_raises_naming_it = bad_setting_test(
    {"membership": ATTACKS}, by_name=INVALID_BY_NAME
)


@pytest.mark.parametrize(
    ("case", "culprit"),
    [("nan", "x"), ("shape", "x"), ("bounds", "x"), ("label", "y"), ("count", "y")],
)
def test_bad_input_raises_naming_it(name: str, tiny: Any, case: str, culprit: str) -> None:
    model, x, y = tiny
    x, y = x.copy(), y.copy()
    if case == "nan":
        x[0, 0, 0, 0] = np.nan
    elif case == "shape":
        x = x.reshape(N, -1)
    elif case == "bounds":
        x = x + 2.0
    elif case == "label":
        y[0] = 10
    else:
        y = y[:-1]
    with pytest.raises(ValueError, match=rf"\b{culprit}\b"):
        make(name).fit(model, x, y)


def test_not_a_classifier_raises(name: str, tiny: Any) -> None:
    model, x, y = tiny
    with pytest.raises(TypeError, match="Classifier"):
        make(name).fit(model.module, x, y)  # type: ignore[arg-type]


def test_registry_entry(name: str) -> None:
    cls = registry.get("membership", name)
    assert issubclass(cls, MembershipAttack)
    assert cls.name == name and cls.family == "membership"
    schema = registry.schema("membership", name)
    for setting, spec in schema.items():
        assert spec["doc"].strip(), f"{name}.{setting} has no description in the docstring"
        assert spec["type"] and spec["type"] != "Any"
        assert not spec["required"]
    attack = registry.create("membership", name)
    assert attack.get_params() == {s: spec["default"] for s, spec in schema.items()}
    with pytest.raises(TypeError):
        cls(0.1)  # type: ignore[call-arg]
