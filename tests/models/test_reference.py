"""Reference models: the accuracy the audit's default models must reach, and their cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from advml.data import load_dataset
from advml.metrics import accuracy
from advml.models.reference import _cache_name, default_architecture, reference_model


def test_digits_mlp_reaches_95_percent_and_is_reused(tmp_path: Path) -> None:
    data = load_dataset("digits")
    assert default_architecture(data) == "mlp"
    model, info = reference_model(data, cache_dir=tmp_path, show_progress=False)
    assert info["trained_now"] and info["architecture"] == "mlp"
    assert accuracy(model, data.x_test, data.y_test) >= 0.95
    again, info2 = reference_model(data, cache_dir=tmp_path, show_progress=False)
    assert info2["trained_now"] is False
    assert np.array_equal(again.predict(data.x_test), model.predict(data.x_test))


def test_unreadable_cached_model_is_retrained(tmp_path: Path) -> None:
    data = load_dataset("breast-cancer")
    path = tmp_path / f"reference-{_cache_name(data)}-mlp-seed0.pt"
    path.write_bytes(b"not a model")
    model, info = reference_model(data, cache_dir=tmp_path, show_progress=False)
    assert info["trained_now"]
    assert accuracy(model, data.x_test, data.y_test) >= 0.9


@pytest.mark.slow
def test_mnist_5k_cnn_reaches_95_percent(tmp_path: Path) -> None:
    data = load_dataset("mnist-5k")
    assert default_architecture(data) == "cnn"
    model, _ = reference_model(data, cache_dir=tmp_path, show_progress=False)
    assert accuracy(model, data.x_test, data.y_test) >= 0.95
