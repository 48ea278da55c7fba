"""The evasion contract (tests/evasion/test_contract.py) for the tree attacks, on trees."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from advml import registry
from advml.evasion import AdversarialResult
from advml.models import SklearnClassifier

NAMES = ["tree_exact", "tree_fast"]


@pytest.fixture
def setup(fitted):
    est, x, y = fitted("gb", 3)
    return SklearnClassifier(est, bounds=(0.0, 1.0)), x[:12].astype(np.float32), y[:12]


@pytest.mark.parametrize("name", NAMES)
def test_numpy_and_tensor_in_out_inputs_untouched(name, setup):
    model, x, y = setup
    attack = registry.create("evasion", name)
    before = copy.deepcopy(attack.get_params())
    keep = x.copy()
    result = attack.generate(model, x, y)
    assert isinstance(result, AdversarialResult)
    assert isinstance(result.x_adv, np.ndarray) and result.x_adv.dtype == np.float32
    np.testing.assert_array_equal(x, keep)
    assert attack.get_params() == before
    xt = torch.as_tensor(x)
    out = attack.generate(model, xt, torch.as_tensor(y))
    assert isinstance(out.x_adv, torch.Tensor)
    np.testing.assert_array_equal(out.x_adv.numpy(), result.x_adv)  # deterministic
    # Fields agree: success is the label change, norms are those of x_adv - x.
    np.testing.assert_array_equal(result.success, result.y_adv != result.y)
    np.testing.assert_allclose(result.linf, np.abs(result.x_adv - x).max(axis=1), rtol=1e-6)
    assert (result.x_adv >= 0).all() and (result.x_adv <= 1).all()


@pytest.mark.parametrize("name", NAMES)
def test_eps_zero_returns_an_equal_copy_and_targeted_needs_y(name, setup):
    model, x, y = setup
    correct = model.predict(x) == y
    result = registry.create("evasion", name, eps=0.0).generate(model, x, y)
    np.testing.assert_array_equal(result.x_adv[correct], x[correct])
    with pytest.raises(ValueError, match="targeted"):
        registry.create("evasion", name, targeted=True).generate(model, x)


@pytest.mark.parametrize("name", NAMES)
def test_without_y_the_models_predictions_are_attacked_and_batches_agree(name, setup):
    model, x, _ = setup
    whole = registry.create("evasion", name).generate(model, x)
    np.testing.assert_array_equal(whole.y, model.predict(x))
    split = registry.create("evasion", name, batch_size=5).generate(model, x)
    np.testing.assert_array_equal(split.x_adv, whole.x_adv)
    np.testing.assert_array_equal(split.radius, whole.radius)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    ("setting", "value", "error"),
    [("eps", -0.1, ValueError), ("norm", "2", ValueError), ("batch_size", 0, ValueError),
     ("targeted", "yes", TypeError), ("integer", [-1], ValueError)],
)  # fmt: skip
def test_bad_settings_name_the_setting(name, setting, value, error):
    with pytest.raises(error, match=setting):
        registry.create("evasion", name, **{setting: value})
