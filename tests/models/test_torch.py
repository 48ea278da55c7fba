"""TorchClassifier: normalisation, the numpy/tensor boundary, queries, modes, layers, masks."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from advml.errors import QueryBudgetExceededError, UnsupportedModelError
from advml.models import CallableClassifier, Classifier, TorchClassifier
from advml.models.torch import reinitialise, require_torch


@pytest.fixture
def mlp(digits_mlp: TorchClassifier) -> TorchClassifier:
    """A private copy of the trained digits MLP (masks and modes may be changed)."""
    return TorchClassifier(copy.deepcopy(digits_mlp.module), input_shape=(1, 8, 8), n_classes=10)


def test_is_a_classifier(digits_mlp: TorchClassifier) -> None:
    assert isinstance(digits_mlp, Classifier)
    assert digits_mlp.has_gradients and digits_mlp.has_scores
    assert digits_mlp.device == torch.device("cpu")
    assert digits_mlp.bounds == (0.0, 1.0)
    assert "TorchClassifier" in repr(digits_mlp)


def test_digits_mlp_is_accurate(digits_mlp: TorchClassifier, digits_data: Any) -> None:
    accuracy = (digits_mlp.predict(digits_data.x_test) == digits_data.y_test).mean()
    assert accuracy >= 0.9


def test_module_must_be_a_module() -> None:
    with pytest.raises(TypeError, match="module"):
        TorchClassifier(lambda x: x, input_shape=(2,), n_classes=2)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("settings", "culprit"),
    [
        ({"n_classes": 1}, "n_classes"),
        ({"n_classes": 2.5}, "n_classes"),
        ({"input_shape": (0, 2)}, "input_shape"),
        ({"input_shape": ()}, "input_shape"),
        ({"input_shape": "ab"}, "input_shape"),
        ({"bounds": (1.0, 0.0)}, "bounds"),
        ({"bounds": (0.0, float("inf"))}, "bounds"),
        ({"bounds": 1.0}, "bounds"),
        ({"batch_size": 0}, "batch_size"),
        ({"query_budget": -1}, "query_budget"),
    ],
)
def test_bad_settings_raise_naming_them(settings: dict[str, Any], culprit: str) -> None:
    base: dict[str, Any] = {"input_shape": (2,), "n_classes": 2}
    with pytest.raises((TypeError, ValueError), match=culprit):
        TorchClassifier(nn.Linear(2, 2), **{**base, **settings})


# -- normalisation inside the adapter ------------------------------------------------------


def test_normalisation_is_applied_inside(make_linear: Any) -> None:
    # logits [0, x0 + x1]: on raw inputs in [0, 1] always class 1 (or a tie); after
    # (x - 0.5) / 0.25 the class depends on which side of 0.5 the mean of x lies.
    module = make_linear([[0.0, 0.0], [1.0, 1.0]]).module
    raw = TorchClassifier(module, input_shape=(2,), n_classes=2)
    normed = TorchClassifier(module, input_shape=(2,), n_classes=2, preprocessing=(0.5, 0.25))
    x = np.array([[0.1, 0.2], [0.9, 0.8], [0.3, 0.4]], dtype=np.float32)
    np.testing.assert_array_equal(raw.predict(x), [1, 1, 1])
    np.testing.assert_array_equal(normed.predict(x), [0, 1, 0])
    xt = torch.as_tensor(x)
    torch.testing.assert_close(normed.logits(xt), module((xt - 0.5) / 0.25))
    torch.testing.assert_close(normed.forward(xt), module((xt - 0.5) / 0.25))
    # Gradients flow through the normalisation to the raw input (chain rule: 1 / std).
    xg = xt.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(normed.logits(xg)[:, 1].sum(), xg)
    torch.testing.assert_close(grad, torch.full_like(xt, 4.0))


@pytest.mark.parametrize(
    ("mean", "std"),
    [
        (0.2, 0.5),
        ([0.1, 0.2, 0.3], [1.0, 2.0, 4.0]),
        (np.array([0.1, 0.2, 0.3]), (0.5, 0.25, 2.0)),
        (np.arange(12).reshape(3, 2, 2) / 10, np.full((3, 2, 2), 0.5)),
        (torch.tensor([0.3, 0.2, 0.1]), 2.0),
    ],
)
def test_per_channel_and_full_shape_statistics(mean: Any, std: Any) -> None:
    model = TorchClassifier(
        nn.Flatten(), input_shape=(3, 2, 2), n_classes=12, preprocessing=(mean, std)
    )
    x = torch.rand(5, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    m = np.asarray(mean, dtype=np.float32)
    s = np.asarray(std, dtype=np.float32)
    if m.ndim == 1:
        m = m.reshape(3, 1, 1)
    if s.ndim == 1:
        s = s.reshape(3, 1, 1)
    expected = ((x.numpy() - m) / s).reshape(5, -1)
    np.testing.assert_allclose(model.forward(x).numpy(), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("preprocessing", "match"),
    [
        (([0.1, 0.2], 1.0), "preprocessing mean"),
        ((0.0, [1.0, 1.0, 1.0, 1.0]), "preprocessing std"),
        ((np.zeros((2, 2)), 1.0), "preprocessing mean"),
        ((0.0, 0.0), "std must be > 0"),
        ((0.0, [1.0, -1.0, 1.0]), "std must be > 0"),
        ((0.5,), "pair"),
        ((0.1, 0.2, 0.3), "pair"),
        (0.5, "pair"),
    ],
)
def test_bad_preprocessing_raises(preprocessing: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TorchClassifier(
            nn.Flatten(), input_shape=(3, 2, 2), n_classes=12, preprocessing=preprocessing
        )


# -- the numpy / tensor boundary -------------------------------------------------------------


def test_numpy_in_numpy_out(digits_mlp: TorchClassifier, digits_data: Any) -> None:
    x = digits_data.x_test[:20]
    proba = digits_mlp.predict_proba(x)
    labels = digits_mlp.predict(x)
    assert isinstance(proba, np.ndarray) and proba.shape == (20, 10)
    assert isinstance(labels, np.ndarray) and labels.shape == (20,)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    assert (proba >= 0).all()
    np.testing.assert_array_equal(labels, proba.argmax(1))
    # float64 and lists are accepted and give the same answers.
    np.testing.assert_array_equal(digits_mlp.predict(x.astype(np.float64)), labels)
    np.testing.assert_array_equal(digits_mlp.predict(x.tolist()), labels)


def test_tensor_in_tensor_out(digits_mlp: TorchClassifier, digits_data: Any) -> None:
    x = digits_data.x_test[:20]
    xt = torch.as_tensor(x)
    proba = digits_mlp.predict_proba(xt)
    labels = digits_mlp.predict(xt)
    assert isinstance(proba, Tensor) and isinstance(labels, Tensor)
    assert proba.device == xt.device and not proba.requires_grad
    np.testing.assert_allclose(proba.numpy(), digits_mlp.predict_proba(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(labels.numpy(), digits_mlp.predict(x))
    # A tensor that needs gradients is accepted; predictions carry none.
    assert not digits_mlp.predict_proba(xt.clone().requires_grad_(True)).requires_grad


@pytest.mark.parametrize("batch_size", [1, 7, 64, 1000])
def test_batch_size_does_not_change_answers(
    digits_mlp: TorchClassifier, digits_data: Any, batch_size: int, assert_labels_match: Any
) -> None:
    x = digits_data.x_test[:100]
    # Another batch shape blocks the float32 GEMMs differently (tests/conftest.py's policy):
    # labels agree wherever the argmax is clear, probabilities to float32 tolerance.
    with torch.no_grad():
        logits = digits_mlp.logits(torch.as_tensor(x))
    assert_labels_match(digits_mlp.predict(x, batch_size=batch_size), logits)
    np.testing.assert_allclose(
        digits_mlp.predict_proba(x, batch_size=batch_size),
        digits_mlp.predict_proba(x),
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.parametrize("batch_size", [0, -1, 2.5])
def test_bad_batch_size_per_call_raises(digits_mlp: TorchClassifier, batch_size: Any) -> None:
    x = np.zeros((3, 1, 8, 8), np.float32)
    for call in (digits_mlp.predict, digits_mlp.predict_proba):
        with pytest.raises((TypeError, ValueError), match="batch_size"):
            call(x, batch_size=batch_size)
    with pytest.raises((TypeError, ValueError), match="batch_size"):
        digits_mlp.activations(x, "fc1", batch_size=batch_size)


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (np.zeros((3, 8, 8), np.float32), "shape"),
        (np.zeros((1, 8, 8), np.float32), r"x\[None\]"),
        (np.zeros((3, 64), np.float32), "reshape"),
        (np.zeros((0, 1, 8, 8), np.float32), "empty"),
        (np.full((2, 1, 8, 8), np.nan, np.float32), "NaN"),
    ],
)
def test_bad_inputs_raise_naming_x(digits_mlp: TorchClassifier, x: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        digits_mlp.predict(x)
    with pytest.raises(ValueError, match=r"\bx\b"):
        digits_mlp.predict_proba(torch.as_tensor(x))


# -- queries --------------------------------------------------------------------------------


def test_every_input_counts_once(mlp: TorchClassifier, digits_data: Any) -> None:
    x = digits_data.x_test[:30]
    assert mlp.query_count == 0
    mlp.predict(x, batch_size=7)
    assert mlp.query_count == 30
    mlp.predict_proba(x[:5])
    assert mlp.query_count == 35
    mlp.logits(torch.as_tensor(x[:2]))
    mlp.predict_labels(torch.as_tensor(x[:3]))
    assert mlp.query_count == 40
    mlp.forward(torch.as_tensor(x))  # training's entry point is not a query
    assert mlp.query_count == 40
    mlp.reset_queries()
    assert mlp.query_count == 0


@pytest.mark.parametrize("batch_size", [None, 2])
def test_query_budget(digits_mlp: TorchClassifier, digits_data: Any, batch_size: Any) -> None:
    model = TorchClassifier(digits_mlp.module, input_shape=(1, 8, 8), n_classes=10, query_budget=12)
    x = digits_data.x_test
    model.predict(x[:10], batch_size=batch_size)
    with pytest.raises(QueryBudgetExceededError, match="query_budget=12"):
        model.predict(x[:5], batch_size=batch_size)
    assert model.query_count == 10  # a refused call spends nothing
    with pytest.raises(QueryBudgetExceededError):
        model.predict_proba(x[:3], batch_size=batch_size)
    assert model.query_count == 10
    model.predict(x[:2], batch_size=batch_size)  # exactly the budget is allowed
    assert model.query_count == 12
    with pytest.raises(QueryBudgetExceededError):
        model.logits(torch.as_tensor(x[:1]))
    model.reset_queries()
    model.predict(x[:12])
    assert model.query_count == 12


def test_query_budget_stops_an_attack(digits_mlp: TorchClassifier, digits_data: Any) -> None:
    from advml.evasion import PGD

    model = TorchClassifier(
        digits_mlp.module, input_shape=(1, 8, 8), n_classes=10, query_budget=100
    )
    with pytest.raises(QueryBudgetExceededError):
        PGD(eps=0.1, steps=10).generate(model, digits_data.x_test[:20], digits_data.y_test[:20])


# -- modes ----------------------------------------------------------------------------------


def test_evaluating_restores_each_submodules_mode(mlp: TorchClassifier) -> None:
    module = mlp.module
    module.train()
    module.fc2.eval()
    before = {name: m.training for name, m in module.named_modules()}
    assert len(set(before.values())) == 2  # genuinely mixed
    with mlp.evaluating():
        assert not any(m.training for m in module.modules())
    assert {name: m.training for name, m in module.named_modules()} == before


def test_evaluating_restores_modes_after_an_error(mlp: TorchClassifier) -> None:
    mlp.module.train()
    with pytest.raises(RuntimeError, match="boom"), mlp.evaluating():
        raise RuntimeError("boom")
    assert all(m.training for m in mlp.module.modules())


def test_predictions_use_eval_mode(digits_mlp: TorchClassifier, digits_data: Any) -> None:
    # With dropout p=0.9 active, two predictions would disagree; in eval mode they agree
    # with the network without dropout.
    module = nn.Sequential(nn.Dropout(0.9), copy.deepcopy(digits_mlp.module)).train()
    model = TorchClassifier(module, input_shape=(1, 8, 8), n_classes=10)
    x = digits_data.x_test[:50]
    np.testing.assert_array_equal(model.predict(x), digits_mlp.predict(x))
    assert module.training and module[0].training


# -- layers ---------------------------------------------------------------------------------


def test_layer_names(mlp: TorchClassifier, small_cnn: TorchClassifier) -> None:
    assert mlp.layer_names == ["flatten", "fc1", "relu1", "fc2", "relu2", "out"]
    assert mlp.layer_names == [n for n, _ in mlp.module.named_modules() if n]
    assert {"conv1", "conv2", "fc1", "out"} <= set(small_cnn.layer_names)


def _hooked(module: nn.Module, layer: nn.Module, x: Tensor) -> Tensor:
    seen: list[Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: seen.append(out.detach()))
    try:
        with torch.no_grad():
            module(x)
    finally:
        handle.remove()
    return seen[0]


@pytest.mark.parametrize("layer", ["fc1", "relu2", "out"])
def test_activations_equal_a_manual_hook(
    mlp: TorchClassifier, digits_data: Any, layer: str
) -> None:
    x = digits_data.x_test[:40]
    expected = _hooked(mlp.module, getattr(mlp.module, layer), torch.as_tensor(x))
    got = mlp.activations(x, layer, batch_size=16)
    assert isinstance(got, np.ndarray)
    # Batches of 16 against one of 40: the float32 GEMMs block differently by batch size
    # (measured: up to 3.8e-6 on logits of about 10, AVX-512), so float32 tolerance, with
    # an atol scaled to the layer's values for the ones near 0.
    scale = float(np.abs(expected.numpy()).max())
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-5, atol=1e-5 * scale)
    got_t = mlp.activations(torch.as_tensor(x), layer)
    assert isinstance(got_t, Tensor)
    torch.testing.assert_close(got_t, expected)
    assert mlp.query_count == 80


def test_cnn_activations_and_units(small_cnn: TorchClassifier, digits_data: Any) -> None:
    x = digits_data.x_test[:10]
    conv2 = small_cnn.activations(x, "conv2")
    assert conv2.shape == (10, 8, 4, 4)
    expected = _hooked(small_cnn.module, small_cnn.module.conv2, torch.as_tensor(x))
    np.testing.assert_allclose(conv2, expected.numpy(), rtol=1e-5, atol=1e-6)
    before = small_cnn.query_count
    assert small_cnn.n_units("conv1") == 4
    assert small_cnn.n_units("conv2") == 8
    assert small_cnn.n_units("fc1") == 16
    assert small_cnn.query_count == before  # a shape probe is not a query


def test_n_units_of_the_mlp(mlp: TorchClassifier) -> None:
    assert mlp.n_units("fc1") == 256
    assert mlp.n_units("out") == 10
    assert mlp.query_count == 0


def test_unit_mask_zeroes_those_units(
    mlp: TorchClassifier, digits_data: Any, assert_labels_match: Any
) -> None:
    x = digits_data.x_test
    keep = np.ones(256, dtype=bool)
    keep[::2] = False  # drop half of fc1
    before_act = mlp.activations(x, "fc1")
    before_pred = mlp.predict(x)
    mlp.set_unit_mask("fc1", keep)
    after_act = mlp.activations(x, "fc1")
    np.testing.assert_array_equal(after_act[:, ~keep], 0.0)
    np.testing.assert_allclose(after_act[:, keep], before_act[:, keep], rtol=1e-5, atol=1e-6)
    # The same as a network whose pruned units have zero weights and bias.
    pruned = copy.deepcopy(mlp.module)
    with torch.no_grad():
        pruned.fc1.weight[~torch.as_tensor(keep)] = 0.0
        pruned.fc1.bias[~torch.as_tensor(keep)] = 0.0
    with torch.no_grad():
        expected = pruned(torch.as_tensor(x))
    # One batch of 360 against the model's batches of 256 and 104: float32 tolerance.
    np.testing.assert_allclose(
        mlp.predict_proba(x), torch.softmax(expected, 1).numpy(), rtol=1e-5, atol=1e-5
    )
    after_pred = mlp.predict(x)
    assert_labels_match(after_pred, expected)
    assert (after_pred != before_pred).any()  # half a layer gone changes some answers
    mask = mlp.unit_mask("fc1")
    assert mask is not None and mask.dtype == torch.bool
    np.testing.assert_array_equal(mask.numpy(), keep)
    assert mlp.unit_mask("fc2") is None
    # The weights themselves are untouched.
    assert torch.count_nonzero(mlp.module.fc1.weight[~torch.as_tensor(keep)]) > 0
    mlp.clear_unit_masks()
    assert mlp.unit_mask("fc1") is None
    np.testing.assert_array_equal(mlp.predict(x), before_pred)
    np.testing.assert_allclose(mlp.activations(x, "fc1"), before_act, rtol=1e-5, atol=1e-6)


def test_unit_mask_can_be_replaced_and_used_on_conv_channels(
    small_cnn: TorchClassifier, digits_data: Any
) -> None:
    x = digits_data.x_test[:30]
    keep = torch.tensor([True, False, True, True, False, True, True, True])
    small_cnn.set_unit_mask("conv2", keep)
    act = small_cnn.activations(x, "conv2")
    np.testing.assert_array_equal(act[:, [1, 4]], 0.0)
    assert np.abs(act[:, [0, 2]]).sum() > 0
    # Replacing the mask keeps one hook: every channel masked makes the network's output
    # independent of the input (only the later layers' biases are left).
    small_cnn.set_unit_mask("conv2", [False] * 8)
    act = small_cnn.activations(x, "conv2")
    np.testing.assert_array_equal(act, 0.0)
    proba = small_cnn.predict_proba(x)
    # Equal rows of one batch may still be summed by different GEMM micro-kernels (the
    # tail rows of a block): float32 tolerance, far below any dependence on the input.
    np.testing.assert_allclose(proba, np.broadcast_to(proba[0], proba.shape), rtol=1e-5, atol=1e-5)
    small_cnn.clear_unit_masks()
    assert np.abs(small_cnn.activations(x, "conv2")[:, 1]).sum() > 0


def test_masks_on_two_layers_apply_together(mlp: TorchClassifier, digits_data: Any) -> None:
    x = digits_data.x_test[:20]
    mlp.set_unit_mask("fc1", np.arange(256) < 128)
    mlp.set_unit_mask("fc2", np.arange(256) >= 128)
    np.testing.assert_array_equal(mlp.activations(x, "fc1")[:, 128:], 0.0)
    np.testing.assert_array_equal(mlp.activations(x, "fc2")[:, :128], 0.0)
    mlp.clear_unit_masks()
    assert mlp.activations(x, "fc2")[:, :128].any()


@pytest.mark.parametrize("call", ["activations", "n_units", "set_unit_mask"])
@pytest.mark.parametrize("layer", ["conv9", ""])
def test_unknown_layer_lists_the_layers(mlp: TorchClassifier, call: str, layer: str) -> None:
    args: dict[str, tuple[Any, ...]] = {
        "activations": (np.zeros((1, 1, 8, 8), np.float32), layer),
        "n_units": (layer,),
        "set_unit_mask": (layer, np.ones(3, bool)),
    }
    with pytest.raises(UnsupportedModelError, match="fc1, relu1, fc2"):
        getattr(mlp, call)(*args[call])


@pytest.mark.parametrize(
    "keep", [np.ones(255, bool), np.ones(257, bool), np.ones((16, 16), bool), []]
)
def test_wrong_mask_shape_raises(mlp: TorchClassifier, keep: Any) -> None:
    with pytest.raises(ValueError, match="keep"):
        mlp.set_unit_mask("fc1", keep)
    assert mlp.unit_mask("fc1") is None


def test_clone_is_independent_and_keeps_the_masks(mlp: TorchClassifier, digits_data: Any) -> None:
    x = digits_data.x_test[:50]
    keep = np.ones(256, dtype=bool)
    keep[:128] = False
    mlp.set_unit_mask("fc1", keep)
    masked = mlp.predict_proba(x)
    twin = mlp.clone()
    np.testing.assert_allclose(twin.predict_proba(x), masked, rtol=1e-5, atol=1e-6)
    assert twin.unit_mask("fc1") is not None and twin.query_count == len(x)  # its own count
    # The twin carries its own mask hooks only: the original's masks no longer reach it.
    mlp.clear_unit_masks()
    np.testing.assert_allclose(twin.predict_proba(x), masked, rtol=1e-5, atol=1e-6)
    twin.clear_unit_masks()
    np.testing.assert_allclose(twin.predict_proba(x), mlp.predict_proba(x), rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        next(twin.module.parameters()).add_(1.0)
    assert not torch.equal(next(twin.module.parameters()), next(mlp.module.parameters()))


def test_fingerprint_follows_the_weights_and_normalisation(mlp: TorchClassifier) -> None:
    """The audit's cache keys: same weights, same key; any changed weight, a new key."""
    key = mlp.fingerprint()
    assert key == mlp.clone().fingerprint()
    normalised = TorchClassifier(
        mlp.module, input_shape=(1, 8, 8), n_classes=10, preprocessing=(0.5, 0.25)
    )
    assert normalised.fingerprint() != key
    with torch.no_grad():
        next(mlp.module.parameters()).view(-1)[0] += 1e-3
    assert mlp.fingerprint() != key


def test_describe_names_the_network_and_its_size(mlp: TorchClassifier) -> None:
    n_params = sum(p.numel() for p in mlp.module.parameters())
    assert mlp.describe() == f"PyTorch mlp ({n_params:,} parameters), white-box"

    class Outside(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(64, 10)

        def forward(self, x: Tensor) -> Tensor:
            return self.fc(x.flatten(1))

    model = TorchClassifier(Outside(), input_shape=(1, 8, 8), n_classes=10)
    assert model.describe() == "PyTorch Outside (650 parameters), white-box"


class _BatchNormNet(nn.Module):
    """A network defined outside advml, with BatchNorm and one bare parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 64, 10)
        self.temperature = nn.Parameter(torch.ones(1))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1)) / self.temperature


def test_reinitialised_draws_seeded_fresh_weights_and_keeps_the_original() -> None:
    torch.manual_seed(0)
    model = TorchClassifier(_BatchNormNet(), input_shape=(1, 8, 8), n_classes=10)
    with torch.no_grad():
        model.module.bn.weight.fill_(3.0)
        model.module.temperature.fill_(2.0)
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    state = torch.random.get_rng_state()
    a, b, c = model.reinitialised(1), model.reinitialised(1), model.reinitialised(2)
    assert torch.equal(torch.random.get_rng_state(), state)  # global state untouched
    assert all(torch.equal(v, model.module.state_dict()[k]) for k, v in before.items())
    wa, wb, wc = (m.module.state_dict() for m in (a, b, c))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not torch.equal(wa["conv.weight"], wc["conv.weight"])
    assert not torch.equal(wa["conv.weight"], before["conv.weight"])
    assert torch.equal(wa["bn.weight"], torch.ones(4))  # BatchNorm reset too
    # no reset_parameters() covers the bare parameter: it keeps its value, and is named
    assert float(wa["temperature"]) == 2.0
    fresh = copy.deepcopy(model.module)
    assert reinitialise(fresh, 1) == ["temperature"]


def test_require_torch_names_who_needs_what() -> None:
    torch_model = TorchClassifier(_BatchNormNet(), input_shape=(1, 8, 8), n_classes=10)
    assert require_torch(torch_model, "Uchida") is torch_model
    api = CallableClassifier(
        lambda x: np.zeros((len(x), 10)), input_shape=(1, 8, 8), n_classes=10, bounds=(0, 1)
    )
    with pytest.raises(
        UnsupportedModelError,
        match=r"Uchida needs a white-box.*its layer weights; got CallableClassifier",
    ):
        require_torch(api, "Uchida", "its layer weights")


def test_white_box_protocol_is_the_torch_adapter_and_no_restricted_view(
    digits_mlp: TorchClassifier,
) -> None:
    from advml.defences.output import Rounding
    from advml.models import WhiteBox
    from advml.models.access import restrict_access

    assert isinstance(digits_mlp, WhiteBox) and isinstance(digits_mlp.clone(), WhiteBox)
    # Views that limit what an adversary sees must not pass as white-box by accident.
    for access in ("scores", "labels"):
        assert not isinstance(restrict_access(digits_mlp, access), WhiteBox), access
    assert not isinstance(Rounding(decimals=1).wrap(digits_mlp), WhiteBox)
    answers = CallableClassifier(
        lambda x: np.full((len(x), 10), 0.1), input_shape=(64,), n_classes=10, bounds=(0, 16)
    )
    assert isinstance(answers, Classifier) and not isinstance(answers, WhiteBox)
