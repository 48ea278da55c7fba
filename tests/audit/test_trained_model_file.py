"""A model file made by ``advml train`` is one of advml's reference networks: the
sections that train copies of the audited model (backdoor) run for it, as for the
audit's own reference model; a file of another network is still skipped with the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from advml.audit import AuditConfig, run_audit
from advml.audit.run import _reference_build
from advml.cli import main
from advml.data import load_dataset
from advml.models import TorchClassifier, build_architecture, save_model

TINY: dict[str, Any] = {"epochs": 2, "pruning_steps": 4, "fine_pruning_epochs": 1}


def _config(model: Path) -> AuditConfig:
    return AuditConfig.quick(
        model=str(model),
        sections=("backdoor",),
        n_samples=60,
        section_settings={"backdoor": TINY},
    )


def test_reference_build_is_recognised_only_as_built() -> None:
    ds = load_dataset("digits")
    mlp = build_architecture("mlp", input_shape=ds.input_shape, n_classes=ds.n_classes)
    model = TorchClassifier(mlp, input_shape=ds.input_shape, n_classes=ds.n_classes)
    assert _reference_build(model, ds) == {"architecture": "mlp", "retrain": "reference recipe"}
    wider = build_architecture("mlp", input_shape=ds.input_shape, n_classes=10, hidden=(64,))
    other = TorchClassifier(wider, input_shape=ds.input_shape, n_classes=ds.n_classes)
    assert _reference_build(other, ds) == {}  # another network than the reference one
    mnist = load_dataset("mnist-5k")
    assert _reference_build(model, mnist) == {}  # built for another dataset
    plain = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    user = TorchClassifier(plain, input_shape=ds.input_shape, n_classes=ds.n_classes)
    assert _reference_build(user, ds) == {}  # a user's own module


@pytest.mark.slow
def test_backdoor_runs_for_a_model_made_by_advml_train(tmp_path: Path) -> None:
    path = tmp_path / "digits-mlp.pt"
    assert main(["train", "--dataset", "digits", "--out", str(path), "--quiet"]) == 0
    result = run_audit(_config(path), out=tmp_path / "audit", show_progress=False)
    assert result.report["skipped_sections"] == []
    section = result.report["sections"]["backdoor"]
    assert section["n_poisoned"] == round(0.1 * section["n_train"])


def test_backdoor_retrains_another_network_of_the_user(tmp_path: Path) -> None:
    ds = load_dataset("digits")
    torch.manual_seed(0)
    # A registered architecture, but not the reference network (another hidden layer).
    module = build_architecture("mlp", input_shape=ds.input_shape, n_classes=10, hidden=(64,))
    path = save_model(
        TorchClassifier(module, input_shape=ds.input_shape, n_classes=ds.n_classes),
        tmp_path / "user.pt",
    )
    result = run_audit(_config(path), out=tmp_path / "audit", show_progress=False)
    # Not the reference network, but a PyTorch network advml can re-initialise and
    # train: the section retrains a fresh copy of the user's own architecture.
    assert result.report["skipped_sections"] == []
    section = result.report["sections"]["backdoor"]
    assert section["n_poisoned"] == round(0.1 * section["n_train"])
