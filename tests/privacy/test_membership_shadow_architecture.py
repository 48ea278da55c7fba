"""Shadow models are copies of the target's own architecture, not advml's MLP.

A user's network (here a BatchNorm + GELU CNN defined in this file, wrapped in
:class:`TorchClassifier`) is attacked without a ``train_fn``: every shadow must be a
fresh, re-initialised copy of that network. Where no copy can be made, the attack says
which fallback it uses.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from advml.models import TorchClassifier, train
from advml.models.torch import reinitialise
from advml.privacy.membership import LiRA, LossThreshold, ShadowModels
from advml.privacy.membership.base import default_train_fn


class BNGeluNet(nn.Module):
    """Conv -> BatchNorm -> GELU -> pool -> linear; nothing of advml's reference nets."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.GELU()
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.act(self.bn(self.conv(x)))).flatten(1))


class WithBareParameter(nn.Module):
    """A module whose own parameter no reset_parameters() covers."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.flatten(1)) * self.scale


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data[:60] / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    return x, d.target[:60].astype(np.int64)


def custom_target(digits: tuple[np.ndarray, np.ndarray]) -> TorchClassifier:
    x, y = digits
    torch.manual_seed(0)
    model = TorchClassifier(BNGeluNet(), input_shape=(1, 8, 8), n_classes=10)
    train(model, x[:30], y[:30], epochs=3, val_fraction=0.0, patience=None, show_progress=False)
    return model


def module_types(model: TorchClassifier) -> list[tuple[str, type]]:
    return [(name, type(m)) for name, m in model.module.named_modules()]


def test_reinitialise_draws_fresh_seeded_weights_and_resets_batchnorm(
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    target = custom_target(digits)
    assert float(target.module.bn.running_mean.abs().sum()) > 0  # trained statistics
    twin = target.clone()
    assert reinitialise(twin.module, 3) == []
    bn = twin.module.bn
    assert torch.equal(bn.running_mean, torch.zeros(4))
    assert torch.equal(bn.running_var, torch.ones(4))
    assert int(bn.num_batches_tracked) == 0
    for (name, p), q in zip(
        twin.module.named_parameters(), target.module.parameters(), strict=True
    ):
        if name not in ("bn.weight", "bn.bias"):  # BatchNorm's affine resets to 1 and 0
            assert not torch.equal(p, q), name
    again = target.reinitialised(3)
    for p, q in zip(twin.module.parameters(), again.module.parameters(), strict=True):
        assert torch.equal(p, q)  # same seed, same weights
    odd = TorchClassifier(WithBareParameter(), input_shape=(1, 8, 8), n_classes=10)
    assert reinitialise(odd.clone().module, 0) == ["scale"]


def test_default_shadows_are_fresh_copies_of_a_custom_architecture(
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    target = custom_target(digits)
    x, y = digits
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning for a network it can copy
        fitted = LiRA(n_shadow=2, shadow_epochs=1, seed=1).fit(target, x, y)
    shadows = fitted.state.shadows
    assert len(shadows) == 2
    for shadow in shadows:
        assert isinstance(shadow, TorchClassifier)
        assert shadow.module is not target.module
        assert module_types(shadow) == module_types(target)
        assert shadow.preprocessing == target.preprocessing and shadow.bounds == target.bounds
        # Trained from a fresh start on its own half: not the target's weights.
        assert not torch.equal(shadow.module.conv.weight, target.module.conv.weight)
    # The two shadows start from different seeds.
    assert not torch.equal(shadows[0].module.head.weight, shadows[1].module.head.weight)


def test_the_trainer_builds_the_target_architecture_for_every_shadow_attack(
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    target = custom_target(digits)
    x, y = digits
    trainer = default_train_fn(target, architecture="same", epochs=1, lr=1e-3, batch_size=16)
    shadow = trainer(x[:20], y[:20], 5)
    assert isinstance(shadow, TorchClassifier) and module_types(shadow) == module_types(target)
    # Threshold and Shokri attacks take the same default, without a warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LossThreshold(shadow_epochs=1).fit(target, x, y)
        ShadowModels(n_shadow=1, shadow_epochs=1).fit(target, x, y)
    mlp = default_train_fn(target, architecture="mlp", epochs=1, lr=1e-3, batch_size=16)
    assert module_types(mlp(x[:20], y[:20], 5)) != module_types(target)


def test_a_network_that_cannot_be_reinitialised_falls_back_with_a_warning(
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    x, y = digits
    odd = TorchClassifier(WithBareParameter(), input_shape=(1, 8, 8), n_classes=10)
    with pytest.warns(UserWarning, match=r"LossThreshold: the target's parameters scale") as w:
        LossThreshold(shadow_epochs=1).fit(odd, x, y)
    assert "reference MLP" in str(w[0].message)
    assert w[0].filename == __file__  # points at the caller's fit
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # asked for explicitly: no warning
        LossThreshold(shadow_epochs=1, shadow_architecture="mlp").fit(odd, x, y)
