"""Models for the backdoor-defence tests: one hand-built with a known backdoor unit, and
real digits networks trained on BadNets-poisoned data (seeded, seconds each)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from advml.models import TorchClassifier, train
from advml.models.architectures import build
from advml.poisoning import BadNets, PixelTrigger, PoisonedData, TabularTrigger


@dataclass(frozen=True)
class Backdoored:
    model: TorchClassifier
    clean_model: TorchClassifier
    poisoned: PoisonedData
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def hand_built() -> TorchClassifier:
    """Two classes on 3 features: class 0 iff x0 > x1, unless x2 (the trigger) is 1.

    ``fc1`` has three units: u0 = x0, u1 = x1 and the backdoor unit u2 = relu(10 x2 - 5),
    dormant on every input with x2 < 0.5. Logits: [u0 + 10 u2, u1].
    """
    fc1 = nn.Linear(3, 3)
    out = nn.Linear(3, 2)
    with torch.no_grad():
        fc1.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 10.0]]))
        fc1.bias.copy_(torch.tensor([0.0, 0.0, -5.0]))
        out.weight.copy_(torch.tensor([[1.0, 0, 10.0], [0, 1.0, 0]]))
        out.bias.zero_()
    net = nn.Sequential(OrderedDict(fc1=fc1, relu1=nn.ReLU(), out=out))
    return TorchClassifier(net, input_shape=(3,), n_classes=2)


def hand_data(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, 3)).astype(np.float32) * np.array([1, 1, 0.2], dtype=np.float32)
    return x, (x[:, 1] > x[:, 0]).astype(np.int64)


HAND_TRIGGER = TabularTrigger(features=(2,), values=(1.0,))


@pytest.fixture
def hand_model() -> TorchClassifier:
    return hand_built()


def _train(x: np.ndarray, y: np.ndarray, arch: str = "mlp") -> TorchClassifier:
    torch.manual_seed(0)
    net = build(arch, input_shape=(1, 8, 8), n_classes=10)
    model = TorchClassifier(net, input_shape=(1, 8, 8), n_classes=10)
    train(model, x, y, epochs=25, seed=0, patience=5, show_progress=False)
    return model


def _setup(digits_data: object, trigger: object) -> Backdoored:
    d = digits_data
    poisoned = BadNets(trigger=trigger, fraction=0.1, target=0).poison(  # type: ignore[arg-type]
        d.x_train,  # type: ignore[attr-defined]
        d.y_train,  # type: ignore[attr-defined]
        n_classes=10,
    )
    half = len(d.x_test) // 2  # type: ignore[attr-defined]
    return Backdoored(
        model=_train(poisoned.x, poisoned.y),
        clean_model=_train(d.x_train, d.y_train),  # type: ignore[attr-defined]
        poisoned=poisoned,
        x_val=d.x_test[:half],  # type: ignore[attr-defined]
        y_val=d.y_test[:half],  # type: ignore[attr-defined]
        x_test=d.x_test[half:],  # type: ignore[attr-defined]
        y_test=d.y_test[half:],  # type: ignore[attr-defined]
    )


@pytest.fixture(scope="session")
def digits_pixel_backdoor(digits_data: object) -> Backdoored:
    """Digits MLPs (seed 0): one trained with 10% BadNets single-pixel poisoning to
    label 0, one on the clean data; defender's clean validation half and test half of
    the test split. Shared: deep-copy before changing a model."""
    return _setup(digits_data, PixelTrigger(row=-1, col=-1))
