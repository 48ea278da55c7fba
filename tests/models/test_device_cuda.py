"""Everything on a GPU: each attack, training loops, the command line and the whole
audit on a CUDA model, checking that results come back where the inputs were and nothing
mixes devices (a CPU tensor meeting a CUDA one raises). Skipped without CUDA; the
session that has a GPU runs it (see docs/benchmarks.md, "Hardware")."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from advml import registry
from advml.audit import AuditConfig, run_audit
from advml.cli import main
from advml.evasion.base import EvasionAttack
from advml.models import TorchClassifier, train
from advml.runtime.device import attack_chunk_size, resolve_device
from tests._user_models import bn_cnn

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

# Attacks that need another model or other attacks as settings: covered by the audit.
NEEDS_MORE = {"transfer", "strongest"}


@pytest.fixture(scope="module")
def gpu_model(digits_data: Any) -> TorchClassifier:
    """A user's BatchNorm CNN trained on the GPU (2 epochs)."""
    torch.manual_seed(0)
    model = TorchClassifier(bn_cnn(), input_shape=(1, 8, 8), n_classes=10, device="cuda")
    train(model, digits_data.x_train, digits_data.y_train, epochs=2, seed=0, show_progress=False)
    model.module.eval()
    return model


def _build(name: str) -> EvasionAttack:
    schema = registry.schema("evasion", name)
    quick: dict[str, Any] = {"steps": 5} if "steps" in schema else {}
    if "max_queries" in schema:
        quick["max_queries"] = 100
    attack = registry.create("evasion", name, **quick)
    assert isinstance(attack, EvasionAttack)
    return attack


@pytest.mark.parametrize("name", [n for n in registry.available("evasion") if n not in NEEDS_MORE])
def test_every_attack_runs_on_the_gpu(
    name: str, gpu_model: TorchClassifier, digits_data: Any
) -> None:
    attack = _build(name)
    x, y = digits_data.x_test[:16], digits_data.y_test[:16]
    out = attack.generate(gpu_model, x, y)  # numpy in, numpy out
    assert isinstance(out.x_adv, np.ndarray) and out.x_adv.shape == x.shape
    assert out.x_adv.min() >= 0.0 and out.x_adv.max() <= 1.0
    xt = torch.as_tensor(x, device="cuda")
    yt = torch.as_tensor(y, device="cuda")
    out_t = attack.generate(gpu_model, xt, yt)  # CUDA in, CUDA out
    assert isinstance(out_t.x_adv, torch.Tensor) and out_t.x_adv.device.type == "cuda"
    eps = getattr(attack, "eps", None)
    if eps is not None and getattr(attack, "norm", "inf") == "inf":
        assert float((out_t.x_adv - xt).abs().max()) <= eps + 1e-5


def test_gpu_chunk_is_sized_from_memory(gpu_model: TorchClassifier) -> None:
    chunk = attack_chunk_size(gpu_model)
    assert chunk is not None and chunk >= 16 and chunk % 8 == 0
    assert _build("pgd")._auto_batch_size(gpu_model) == chunk


def test_bf16_pgd_on_the_gpu(gpu_model: TorchClassifier, digits_data: Any) -> None:
    model = gpu_model.clone()
    model.precision = "bf16"
    x, y = digits_data.x_test[:200], digits_data.y_test[:200]
    result = registry.create("evasion", "pgd", eps=0.2, steps=20).generate(model, x, y)
    assert result.x_adv.dtype == np.float32
    assert float(np.abs(result.x_adv - x).max()) <= 0.2 + 1e-6
    assert result.success_rate > 0.5


@pytest.mark.parametrize("method", ["pgd_training", "trades", "fgsm_training"])
def test_robust_training_on_the_gpu(
    method: str, gpu_model: TorchClassifier, digits_data: Any
) -> None:
    defence = registry.create("robust_training", method, epochs=1, seed=0)
    trained = defence.fit(
        gpu_model.reinitialised(1), digits_data.x_train, digits_data.y_train, show_progress=False
    )
    assert trained.model.device.type == "cuda"
    assert next(trained.model.module.parameters()).device.type == "cuda"


def test_to_moves_a_cpu_model_to_the_gpu_and_back(digits_mlp: TorchClassifier) -> None:
    model = copy.deepcopy(digits_mlp)
    model.set_unit_mask(model.layer_names[1], np.ones(model.n_units(model.layer_names[1]), bool))
    labels = model.predict(np.zeros((2, 1, 8, 8), np.float32))
    model.to("cuda")
    assert model.device == resolve_device("cuda")
    np.testing.assert_array_equal(model.predict(np.zeros((2, 1, 8, 8), np.float32)), labels)
    model.to("cpu")
    assert next(model.module.parameters()).device.type == "cpu"


def test_the_cli_attacks_on_the_gpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "adv.npz"
    code = main(
        [
            "attack", "--dataset", "digits", "--device", "cuda", "--attack", "pgd",
            "--eps", "0.1", "--n-samples", "50", "--quiet", "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert out.exists()


@pytest.mark.slow
def test_the_quick_audit_runs_every_section_on_the_gpu(tmp_path: Path) -> None:
    result = run_audit(
        AuditConfig.quick(device="cuda", n_samples=100), out=tmp_path, show_progress=False
    )
    report = result.report
    assert report["environment"]["device"].startswith("cuda")
    assert report["sections"], "no section ran"
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["environment"]["device"].startswith("cuda")
