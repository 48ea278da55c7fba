"""Fixtures for the watermark tests: models trained independently of any watermark."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from advml.models import TorchClassifier, train
from advml.models.architectures import build


@pytest.fixture(scope="session")
def independent_mlps(digits_data: Any) -> list[TorchClassifier]:
    """Two digits MLPs trained like ``digits_mlp`` but from other seeds (no watermark)."""
    models = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        module = build("mlp", input_shape=(1, 8, 8), n_classes=10)
        model = TorchClassifier(module, input_shape=(1, 8, 8), n_classes=10)
        train(
            model,
            digits_data.x_train,
            digits_data.y_train,
            epochs=10,
            seed=seed,
            show_progress=False,
        )
        model.reset_queries()
        models.append(model)
    return models
