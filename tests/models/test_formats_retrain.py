"""A network loaded from a TorchScript or torch.export file can be re-initialised and
retrained: the audit's backdoor section runs on the user's own architecture."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from advml.audit import AuditConfig, run_audit
from advml.models import TorchClassifier, load_model
from advml.models.reinit import not_reinitialisable
from advml.models.torch import reinitialise


def _bn_gelu_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(1, 6, 3, padding=1),
            bn=nn.BatchNorm2d(6),
            act=nn.GELU(),
            pool=nn.AvgPool2d(2),
            flat=nn.Flatten(),
            fc=nn.Linear(6 * 16, 10),
        )
    )
    net.bn.running_mean.uniform_(-0.3, 0.3)
    net.bn.running_var.uniform_(0.5, 2.0)
    return net.eval()


def _torchscript(tmp_path: Path) -> TorchClassifier:
    net = _bn_gelu_net()
    x = torch.rand(2, 1, 8, 8)
    torch.jit.save(torch.jit.trace(net, x), str(tmp_path / "net.ts"))
    model = load_model(tmp_path / "net.ts", input_shape=(1, 8, 8), bounds=(0, 1))
    assert isinstance(model, TorchClassifier)
    return model


def test_torchscript_network_is_reinitialised_like_pytorch_would(tmp_path: Path) -> None:
    model = _torchscript(tmp_path)
    assert not_reinitialisable(model.module) == []
    a, b = model.reinitialised(1), model.reinitialised(1)
    state, fresh = model.module.state_dict(), a.module.state_dict()
    for name in ("inner.conv.weight", "inner.fc.weight", "inner.fc.bias"):
        assert not torch.equal(fresh[name], state[name])
        torch.testing.assert_close(fresh[name], b.module.state_dict()[name], rtol=0, atol=0)
    # PyTorch's defaults: |w| <= 1/sqrt(fan_in); batch norm back to the identity.
    assert float(fresh["inner.fc.weight"].abs().max()) <= 1 / np.sqrt(96)
    assert float(fresh["inner.conv.weight"].abs().max()) <= 1 / np.sqrt(9)
    assert torch.equal(fresh["inner.bn.weight"], torch.ones(6))
    assert torch.equal(fresh["inner.bn.running_var"], torch.ones(6))
    assert torch.equal(fresh["inner.bn.running_mean"], torch.zeros(6))
    # The original is untouched.
    torch.testing.assert_close(
        model.module.state_dict()["inner.fc.weight"], state["inner.fc.weight"]
    )


def test_export_graph_is_reinitialised(tmp_path: Path) -> None:
    net = _bn_gelu_net()
    dims = ({0: torch.export.Dim("batch")},)
    program = torch.export.export(net, (torch.rand(2, 1, 8, 8),), dynamic_shapes=dims)
    torch.export.save(program, str(tmp_path / "net.pt2"))
    model = load_model(tmp_path / "net.pt2", bounds=(0, 1))
    assert isinstance(model, TorchClassifier)
    twin = model.clone()
    # (seed 0 would draw the very weights _bn_gelu_net drew: PyTorch's own defaults)
    assert reinitialise(twin.module, 5) == []
    changed = [
        k
        for k, v in twin.module.state_dict().items()
        if k.endswith("weight") and not torch.equal(v, model.module.state_dict()[k])
    ]
    assert changed == ["inner.conv.weight", "inner.fc.weight"]  # batch norm's were ones


def _backdoor_config(model_path: Path) -> AuditConfig:
    return AuditConfig.quick(
        model=str(model_path),
        model_bounds=[0, 1],
        n_samples=60,
        sections=("backdoor",),
        section_settings={
            "backdoor": {
                "train_samples": None,
                "epochs": 10,
                "pruning_steps": 3,
                "strip_overlays": 4,
                "examples": 2,
            }
        },
    )


@pytest.mark.slow  # ~40 s: the copy is trained for 10 epochs on the digits
def test_backdoor_section_runs_on_a_converted_onnx_users_network(tmp_path: Path) -> None:
    net = _bn_gelu_net()
    dims = ({0: torch.export.Dim("batch")},)
    torch.onnx.export(net, (torch.rand(2, 1, 8, 8),), str(tmp_path / "net.onnx"),
                      dynamic_shapes=dims, verbose=False)  # fmt: skip
    report = run_audit(_backdoor_config(tmp_path / "net.onnx")).report
    assert report["model"]["loaded"]["access"] == "white-box"
    assert not report["skipped_sections"], report["skipped_sections"]
    section = report["sections"]["backdoor"]
    numbers = section.get("numbers", section)
    # The copy of the user's architecture, retrained on poisoned data, learned the task
    # (far above the 10% of chance on the digits) and the trigger.
    assert numbers["clean_accuracy"] > 0.5
    assert numbers["attack_success"] > 0.3


def test_backdoor_section_says_why_a_torchscript_network_is_skipped(tmp_path: Path) -> None:
    _torchscript(tmp_path)
    report = run_audit(_backdoor_config(tmp_path / "net.ts")).report
    (skipped,) = report["skipped_sections"]
    assert "TorchScript" in str(skipped) and "--model-factory" in str(skipped)
