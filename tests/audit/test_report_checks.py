"""The flawed-evaluation checklist fires on a deliberately masked model (input
quantisation zeroes the gradients; a randomised model attacked without EOT) and stays
silent on the reference model (Carlini et al. 2019 §5; Athalye et al. 2018)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from advml.audit import AuditConfig, run_audit
from advml.audit.sections._checks import defence_checks
from advml.data import load_dataset
from advml.models import TorchClassifier
from advml.models.reference import reference_model


class _Quantise(nn.Module):
    """Rounds inputs to 4 levels: the forward pass is exact, the gradient is zero."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x * 3) / 3


class _Noise(nn.Module):
    """Adds fresh Gaussian noise on every call, in eval mode too (a randomised defence)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.3 * torch.randn_like(x)


def _audit(model: Any, ds: Any) -> dict[str, Any]:
    config = AuditConfig.quick(
        sections=("evasion",), n_samples=80, eps=(0.0, 0.1, 0.2), attacks=("fgsm", "pgd")
    )
    return run_audit(config, model=model, dataset=ds, show_progress=False).report["sections"][
        "evasion"
    ]


@pytest.fixture(scope="module")
def digits() -> Any:
    return load_dataset("digits")


@pytest.fixture(scope="module")
def mlp(digits: Any) -> TorchClassifier:
    model, _ = reference_model(digits, architecture="mlp", show_progress=False)
    return model


def _wrap(front: nn.Module, model: TorchClassifier, ds: Any) -> TorchClassifier:
    return TorchClassifier(
        nn.Sequential(front, model.module).eval(),
        input_shape=ds.input_shape,
        n_classes=ds.n_classes,
        bounds=ds.bounds,
    )


def _status(section: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in section["evaluation_checks"]}


def test_the_checks_stay_silent_on_the_reference_model(digits: Any, mlp: TorchClassifier) -> None:
    section = _audit(mlp, digits)
    status = _status(section)
    assert "fail" not in status.values(), section["evaluation_checks"]
    assert status["unbounded"] == status["gradients"] == status["convergence"] == "pass"
    assert section["verdict"]["label"] != "evaluation not conclusive"


def test_quantised_inputs_zero_the_gradients_and_the_checks_fire(
    digits: Any, mlp: TorchClassifier
) -> None:
    section = _audit(_wrap(_Quantise(), mlp, digits), digits)
    status = _status(section)
    assert status["gradients"] == "fail"
    assert status["unbounded"] == "fail"  # PGD cannot move without a gradient
    verdict = section["verdict"]
    assert verdict["label"] == "evaluation not conclusive"
    assert verdict["level"] != "pass"
    assert "gradients" in verdict["checks_failed"]
    assert "not conclusive" in verdict["text"]


def test_a_randomised_model_attacked_without_eot_fails_its_check(
    digits: Any, mlp: TorchClassifier
) -> None:
    torch.manual_seed(0)
    section = _audit(_wrap(_Noise(), mlp, digits), digits)
    assert _status(section)["randomness"] == "fail"
    assert section["verdict"]["label"] == "evaluation not conclusive"


def test_a_randomised_defence_without_eot_fails_the_defence_checks() -> None:
    row = {
        "name": "gaussian_noise",
        "randomised": True,
        "adaptive_method": "bpda",
        "eot_samples": 1,
        "standard_robust_accuracy": 0.6,
        "adaptive_robust_accuracy": 0.3,
    }
    status = {c["name"]: c["status"] for c in defence_checks([row])}
    assert status["eot-gaussian_noise"] == "fail"
    assert status["adaptive-gaussian_noise"] == "pass"
    fixed = {**row, "adaptive_method": "bpda+eot", "eot_samples": 4}
    assert all(c["status"] == "pass" for c in defence_checks([fixed]))
