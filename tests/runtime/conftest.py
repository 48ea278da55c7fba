"""Fixtures shared by the executor tests of the audit's sections."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from _user_models import residual_cnn

from advml.data import Dataset, load_dataset
from advml.models import TorchClassifier, train


@pytest.fixture(scope="session")
def digits() -> Dataset:
    """The built-in digits dataset (the audits' data)."""
    return load_dataset("digits")


@pytest.fixture(scope="session")
def user_model(digits: Dataset) -> TorchClassifier:
    """A residual BatchNorm/GELU network defined outside advml, trained 4 epochs (seed 0).
    Shared: deep-copy it before changing it."""
    torch.manual_seed(0)
    model = TorchClassifier(residual_cnn(), input_shape=(1, 8, 8), n_classes=10, bounds=(0.0, 1.0))
    train(model, digits.x_train, digits.y_train, epochs=4, seed=0, show_progress=False)
    model.module.eval()
    return model


@pytest.fixture(scope="module")
def local_ray_started() -> Iterator[None]:
    """A local Ray with 2 CPUs for the module, shut down after it."""
    ray = pytest.importorskip("ray")
    from advml.runtime.executors import RayExecutor

    if ray.is_initialized():
        ray.shutdown()
    RayExecutor(workers=2)
    yield
    ray.shutdown()
