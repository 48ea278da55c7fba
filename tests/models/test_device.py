"""Where the work runs (``--device``), GPU chunk sizing and bf16 autocast, on a CPU.

The CUDA paths are tested here with injected memory figures and a fake "GPU present"
check; tests/models/test_device_cuda.py runs the real thing where a GPU is present. The
``meta`` device stands in for "a device that is not the CPU": a CPU tensor mixed into a
computation on the model's device raises there, as it would on a GPU.
"""

from __future__ import annotations

import ast
import copy
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from advml.audit import AuditConfig
from advml.audit.config_file import config_to_yaml, parse_config
from advml.cli import main
from advml.errors import AdvmlError
from advml.evasion import PGD
from advml.evasion._gradient import iterate
from advml.models import SklearnClassifier, TorchClassifier, train
from advml.models.architectures import build
from advml.runtime import device as dev
from advml.runtime.device import (
    DeviceUnavailableError,
    chunk_for_memory,
    place,
    resolve_device,
)
from tests._user_models import bn_cnn, gelu_mlp

needs_cpu_only = pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
SRC = Path(dev.__file__).resolve().parents[1]


# -- resolve_device ---------------------------------------------------------------------
def test_auto_and_cpu_resolve_to_the_cpu_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_auto_picks_the_gpu_when_torch_sees_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(DeviceUnavailableError, match=r"2 GPU\(s\), numbered 0 to 1"):
        resolve_device("cuda:2", name="--device")


@needs_cpu_only
def test_cuda_without_a_gpu_is_a_clear_error_naming_the_parameter() -> None:
    with pytest.raises(DeviceUnavailableError, match=r"--device cuda asks for a GPU") as err:
        resolve_device("cuda", name="--device")
    assert "--device cpu" in str(err.value) and "--device auto" in str(err.value)
    assert isinstance(err.value, AdvmlError) and isinstance(err.value, ValueError)
    # The Python API: not torch's bare AssertionError from module.to("cuda").
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    with pytest.raises(DeviceUnavailableError, match=r"device='cuda' asks for a GPU"):
        TorchClassifier(net, input_shape=(4,), n_classes=3, device="cuda")


@pytest.mark.parametrize("spec", ["tpu", "gpu", "cuda:x", ""])
def test_unknown_devices_are_refused_with_the_choices(spec: str) -> None:
    with pytest.raises(DeviceUnavailableError, match="auto, cpu, cuda or cuda:N"):
        resolve_device(spec, name="--device")


def test_a_non_string_device_is_refused() -> None:
    with pytest.raises(DeviceUnavailableError, match="must be a string"):
        resolve_device(3)  # type: ignore[arg-type]


@needs_cpu_only
def test_the_cli_says_which_flag_before_any_work(capsys: pytest.CaptureFixture[str]) -> None:
    # No dataset is loaded and no model trained: the error comes first.
    code = main(["attack", "--device", "cuda", "--dataset", "no-such-dataset", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--device cuda asks for a GPU" in err and "no-such-dataset" not in err


def test_the_cli_rejects_an_unknown_precision(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["attack", "--precision", "fp8"])
    assert "--precision" in capsys.readouterr().err


# -- TorchClassifier.to and place --------------------------------------------------------
def _cnn(preprocessing: bool = True) -> TorchClassifier:
    torch.manual_seed(0)
    module = build("cnn", input_shape=(1, 8, 8), n_classes=10, channels=(4, 8), hidden=16)
    module.eval()
    return TorchClassifier(
        module,
        input_shape=(1, 8, 8),
        n_classes=10,
        preprocessing=(0.5, 0.25) if preprocessing else None,
    )


def test_to_moves_network_normalisation_and_masks() -> None:
    model = _cnn()
    model.set_unit_mask(model.layer_names[0], [True, False, True, True])
    assert model.to("meta") is model
    assert model.device == torch.device("meta")
    assert all(p.device.type == "meta" for p in model.module.parameters())
    assert model._mean is not None and model._mean.device.type == "meta"
    assert model._std is not None and model._std.device.type == "meta"
    mask = model.unit_mask(model.layer_names[0])
    assert mask is not None and mask.device.type == "meta"
    out = model.forward(torch.empty(3, 1, 8, 8, device="meta"))
    assert out.shape == (3, 10) and out.device.type == "meta"


def test_place_moves_a_torch_model_and_sets_its_precision() -> None:
    model = place(_cnn(), "cpu", "bf16")
    assert model.device == torch.device("cpu") and model.precision == "bf16"
    assert place(model, "cpu", None).precision == "bf16"  # None keeps the model's own


def test_place_leaves_a_scikit_learn_model_and_says_bf16_does_not_apply(
    digits_data: object,
) -> None:
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(0).random((40, 4)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(np.int64)
    model = SklearnClassifier(LogisticRegression().fit(x, y), input_shape=(4,), bounds=(0, 1))
    with pytest.warns(UserWarning, match="precision=bf16 applies to PyTorch models only"):
        assert place(model, "cpu", "bf16") is model
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        place(model, "auto", None)  # auto on a scikit-learn model: nothing to say


def test_precision_is_checked() -> None:
    with pytest.raises(ValueError, match="precision must be one of float32, bf16"):
        TorchClassifier(nn.Linear(4, 3), input_shape=(4,), n_classes=3, precision="fp16")  # type: ignore[arg-type]


def test_bf16_changes_the_fingerprint_and_float32_keeps_it() -> None:
    a, b = _cnn(), _cnn()
    assert a.fingerprint() == b.fingerprint()
    b.precision = "bf16"
    assert a.fingerprint() != b.fingerprint()
    assert b.clone().precision == "bf16"


# -- the audit config --------------------------------------------------------------------
def test_config_device_and_precision_round_trip_through_yaml() -> None:
    config = parse_config("hardware:\n  device: cuda:1\n  precision: bf16\n")
    assert (config.device, config.precision) == ("cuda:1", "bf16")
    assert parse_config(config_to_yaml(config)) == config
    assert AuditConfig().device is None and AuditConfig().precision is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"device": "gpu"}, "device must be auto, cpu, cuda or cuda:N, got 'gpu'"),
        ({"device": 0}, "device must be auto, cpu, cuda or cuda:N, got 0"),
        ({"precision": "fp16"}, "precision"),
    ],
)
def test_config_refuses_a_bad_device_or_precision(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AuditConfig(**changes)  # type: ignore[arg-type]


def test_config_file_error_names_the_line() -> None:
    with pytest.raises(ValueError, match=r"line 2: hardware.device: device must be"):
        parse_config("hardware:\n  device: gpu\n")


# -- chunk sizing --------------------------------------------------------------------------
def test_chunk_for_memory_arithmetic() -> None:
    gib, mib = 2**30, 2**20
    # Half of 10 GiB over 5 MiB per input: 1024 inputs.
    assert chunk_for_memory(free_bytes=10 * gib, bytes_per_input=5 * mib) == 1024
    # Fixed workspace comes off first: (5 GiB - 1 GiB) / 5 MiB = 819.2 -> 816 (a multiple of 8).
    assert chunk_for_memory(free_bytes=10 * gib, bytes_per_input=5 * mib, fixed_bytes=gib) == 816
    # Capped above, floored below (an out-of-memory error names the memory; a chunk of 1
    # would hide the problem behind a slow run).
    assert chunk_for_memory(free_bytes=140 * gib, bytes_per_input=1000) == dev.MAX_GPU_CHUNK
    assert chunk_for_memory(free_bytes=mib, bytes_per_input=mib) == 16
    assert chunk_for_memory(free_bytes=gib, bytes_per_input=0) == dev.MAX_GPU_CHUNK
    assert chunk_for_memory(free_bytes=gib, bytes_per_input=gib / 100, fraction=1.0) == 96


def _fake_gpu(
    monkeypatch: pytest.MonkeyPatch, *, free: int, reserved: int = 0, allocated: int = 0
) -> list[tuple[int, ...]]:
    """torch.cuda's memory figures injected, and measure_pass recording its calls."""
    calls: list[tuple[int, ...]] = []
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 80 * 2**30))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: reserved)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: allocated)

    def measure(
        forward: object, shape: tuple[int, ...], device: object, **kw: object
    ) -> tuple[float, float]:
        calls.append(shape)
        return 3 * 2**20, 2**28  # 3 MiB per input, 256 MiB fixed

    monkeypatch.setattr(dev, "measure_pass", measure)
    return calls


def test_cuda_chunk_size_from_free_memory_measured_once(monkeypatch: pytest.MonkeyPatch) -> None:
    gib = 2**30
    calls = _fake_gpu(monkeypatch, free=20 * gib, reserved=gib, allocated=gib // 2)
    key = nn.Linear(2, 2)
    shape = (3, 32, 32)
    per_input = 3 * 2**20 + dev.ATTACK_COPIES * 4 * math.prod(shape)
    # Free to this process: the driver's free memory plus what torch caches unused.
    room = 0.5 * (20 * gib + gib // 2) - 2**28
    expected = int(room // per_input)
    expected -= expected % 8
    device = torch.device("cuda:0")
    assert dev.cuda_chunk_size(key, lambda x: x, shape, device) == expected
    assert dev.cuda_chunk_size(key, lambda x: x, shape, device) == expected
    assert calls == [shape]  # measured once per model and input shape
    dev.cuda_chunk_size(key, lambda x: x, (3, 64, 64), device)
    assert calls == [shape, (3, 64, 64)]


def test_attacks_use_the_models_chunk_on_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default chunk comes from the model's attack_chunk_size() when it gives one
    (on CUDA); here a CPU model made to answer as a GPU one would."""
    model = _cnn(preprocessing=False)
    x = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    attack = PGD(eps=0.1, steps=2)
    assert model.attack_chunk_size() is None  # on the CPU: the CPU default applies
    assert attack._auto_batch_size(model) == 1024
    monkeypatch.setattr(TorchClassifier, "attack_chunk_size", lambda self: 16)
    sizes: list[int] = []
    original = TorchClassifier._logits

    def logits(self: TorchClassifier, xb: torch.Tensor) -> torch.Tensor:
        sizes.append(xb.shape[0])
        return original(self, xb)

    monkeypatch.setattr(TorchClassifier, "_logits", logits)
    attack.generate(model, x, torch.zeros(40, dtype=torch.long))
    assert max(sizes) == 16 and sizes.count(8) > 0  # 16 + 16 + 8


def test_attack_chunk_size_is_none_off_cuda() -> None:
    assert dev.attack_chunk_size(_cnn()) is None
    assert dev.attack_chunk_size(object()) is None


# -- tensors stay on the model's device ---------------------------------------------------
@pytest.mark.parametrize("norm", ["inf", "2"])
@pytest.mark.parametrize("early_stop", [False])
@pytest.mark.parametrize("make", [_cnn, lambda: _user(bn_cnn), lambda: _user(gelu_mlp)])
def test_gradient_loop_keeps_every_tensor_on_the_models_device(
    norm: str, early_stop: bool, make: object
) -> None:
    """PGD's, BIM's and FGSM's step loop on a model on the ``meta`` device: any tensor
    made on the CPU inside the loop and mixed in would raise."""
    model = make()  # type: ignore[operator]
    model.to("meta")
    x = torch.empty(5, *model.input_shape, device="meta")
    y = torch.zeros(5, dtype=torch.long, device="meta")
    for random_start, loss in ((True, "ce"), (False, "margin")):
        x_adv, queries = iterate(
            model,
            x,
            y,
            eps=0.1,
            norm=norm,  # type: ignore[arg-type]
            step_size=0.02,
            steps=3,
            targeted=False,
            loss=loss,  # type: ignore[arg-type]
            random_start=random_start,
            early_stop=early_stop,
            generator=torch.Generator(),
        )
        assert x_adv.device.type == "meta" and queries.device.type == "meta"
        assert x_adv.shape == x.shape


def _user(factory: object) -> TorchClassifier:
    torch.manual_seed(0)
    net = factory()  # type: ignore[operator]
    net.eval()
    return TorchClassifier(net, input_shape=(1, 8, 8), n_classes=10)


def test_a_training_step_keeps_every_tensor_on_the_models_device() -> None:
    """One step of advml's training loss and an optimiser step, on the ``meta`` device."""
    from advml.models.training import cross_entropy  # the default loss of train()

    model = _user(bn_cnn).to("meta")
    model.module.train()
    opt = torch.optim.SGD(model.module.parameters(), lr=0.1, momentum=0.9)
    x = torch.empty(8, 1, 8, 8, device="meta")
    y = torch.zeros(8, dtype=torch.long, device="meta")
    loss = cross_entropy(model, x, y)
    loss.backward()
    opt.step()
    assert loss.device.type == "meta"


# Modules whose loops run on the model's device every step: a tensor factory there must
# say where (device=..., or **kwargs that carry it), or be a *_like of a device tensor.
PER_STEP_MODULES = [
    "evasion/_gradient.py",
    "evasion/pgd.py",
    "evasion/apgd.py",
    "evasion/cw.py",
    "evasion/fgsm.py",
    "evasion/bim.py",
    "evasion/deepfool.py",
    "evasion/base.py",
    "models/training.py",
    "runtime/device.py",
]
FACTORIES = {
    "tensor", "zeros", "ones", "full", "empty", "arange", "rand", "randn", "randint",
    "randperm", "eye", "linspace", "as_tensor", "from_numpy",
}  # fmt: skip
# Deliberate CPU tensors: (module, line text fragment) -> why.
ALLOWED = {
    ("models/training.py", "perm = torch.randperm(n, generator=gen)"): "numpy indices of the "
    "validation split, drawn on the CPU generator (the same split on every device)",
    ("models/training.py", "t = torch.as_tensor(y)"): "labels from numpy, moved on the next line",
    ("evasion/base.py", "yt = torch.as_tensor("): "labels from numpy, moved on the next line",
}


def _factory_calls_without_device(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    lines = path.read_text().splitlines()
    # torch.randperm(n, generator=g).to(device): made on the CPU on purpose (the CPU
    # generator gives the same numbers everywhere), then moved at once.
    moved = {
        id(node.func.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "to"
    }
    found = []
    for node in ast.walk(tree):
        if id(node) in moved:
            continue
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        func = node.func
        if not (isinstance(func.value, ast.Name) and func.value.id == "torch"):
            continue
        if func.attr not in FACTORIES:
            continue
        keywords = {k.arg for k in node.keywords}
        if "device" in keywords or None in keywords:  # None: **kwargs
            continue
        found.append((node.lineno, lines[node.lineno - 1].strip()))
    return found


def test_per_step_modules_make_no_tensor_without_a_device() -> None:
    problems = []
    for rel in PER_STEP_MODULES:
        for lineno, text in _factory_calls_without_device(SRC / rel):
            if any(rel == m and frag in text for (m, frag) in ALLOWED):
                continue
            problems.append(f"{rel}:{lineno}: {text}")
    assert not problems, "tensor made without device= in a per-step module:\n" + "\n".join(problems)


def test_the_static_check_finds_a_cpu_tensor(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import torch\n"
        "def f(x):\n"
        "    a = torch.zeros(x.shape[0], device=x.device)\n"
        "    b = torch.zeros(x.shape[0])\n"
        "    c = torch.rand(3, **kw)\n"
        "    d = torch.randperm(3, generator=g).to(x.device)\n"
        "    return a + b + c + d\n"
    )
    assert _factory_calls_without_device(bad) == [(4, "b = torch.zeros(x.shape[0])")]


# -- bf16 ----------------------------------------------------------------------------------
@pytest.mark.parametrize("make", ["reference", "gelu", "bn_cnn"])
def test_pgd_in_bf16_finds_adversarial_examples_within_the_ball(
    digits_data: object, digits_mlp: TorchClassifier, make: str
) -> None:
    """bf16 autocast on the CPU: the attack still works, stays within eps and the bounds,
    and returns float32."""
    data = digits_data
    x = data.x_test[:100]  # type: ignore[attr-defined]
    y = data.y_test[:100]  # type: ignore[attr-defined]
    if make == "reference":
        model = copy.deepcopy(digits_mlp)
    else:
        model = _user(gelu_mlp if make == "gelu" else bn_cnn)
        model.module.train()
        train(
            model,
            data.x_train,  # type: ignore[attr-defined]
            data.y_train,  # type: ignore[attr-defined]
            epochs=8,
            seed=0,
            show_progress=False,
        )
        model.module.eval()
    model.precision = "bf16"
    logits = model.logits(torch.as_tensor(x))
    assert logits.dtype == torch.float32
    clean = float((logits.argmax(1).numpy() == y).mean())
    assert clean > 0.8
    eps = 0.2
    result = PGD(eps=eps, steps=20).generate(model, x, y)
    assert result.x_adv.dtype == np.float32
    assert float(np.abs(result.x_adv - x).max()) <= eps + 1e-6
    assert result.x_adv.min() >= 0.0 and result.x_adv.max() <= 1.0
    # The float32 model judges: examples crafted in bf16 fool it too.
    model.precision = "float32"
    fooled = model.predict(result.x_adv) != y
    assert fooled.mean() > 0.5, fooled.mean()


def test_training_in_bf16_learns(digits_data: object) -> None:
    data = digits_data
    model = _user(gelu_mlp)
    model.precision = "bf16"
    model.module.train()
    history = train(
        model,
        data.x_train,  # type: ignore[attr-defined]
        data.y_train,  # type: ignore[attr-defined]
        epochs=3,
        seed=0,
        show_progress=False,
    )
    model.module.eval()
    acc = float((model.predict(data.x_test) == data.y_test).mean())  # type: ignore[attr-defined]
    assert acc > 0.8 and history.epochs_run == 3


# -- the weights check before every attack ------------------------------------------------
def test_unchanged_weights_are_checked_once_and_a_change_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """check_finite_outputs skips a module whose tensors are unchanged since they were
    found finite (on a GPU its per-tensor kernels cost about 3 % of PGD-20 on a ResNet-18),
    and checks again after any in-place change."""
    from advml.models import checks

    model = _cnn(preprocessing=False)
    calls = {"n": 0}
    real = torch.isfinite

    def counting(t: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        return real(t)

    monkeypatch.setattr(torch, "isfinite", counting)
    checks.check_finite_outputs(model)
    first = calls["n"]
    assert first > 0
    checks.check_finite_outputs(model)
    assert calls["n"] == first  # unchanged: not checked again
    with torch.no_grad():
        model.module.conv1.weight[0, 0, 0, 0] = float("nan")  # in place: the version moves
    with pytest.raises(checks.NonFiniteModelError, match="NaN or infinite"):
        checks.check_finite_outputs(model)
    with torch.no_grad():
        model.module.conv1.weight[0, 0, 0, 0] = 0.0
    checks.check_finite_outputs(model)  # repaired: checked and found finite again
    bad = copy.deepcopy(model)  # another module: checked on its own
    with torch.no_grad():
        bad.module.conv1.weight.fill_(float("inf"))
    with pytest.raises(checks.NonFiniteModelError):
        checks.check_finite_outputs(bad)


def test_audit_print_config_carries_device_and_precision(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["audit", "--device", "cpu", "--precision", "bf16", "--print-config"])
    text = capsys.readouterr().out
    assert code == 0
    config = parse_config(text)
    assert (config.device, config.precision) == ("cpu", "bf16")
    assert "hardware:" in text


@pytest.mark.parametrize(
    "command",
    [
        ["attack"], ["audit"], ["extract"], ["poison"], ["defend"], ["membership"],
        ["invert"], ["adversarial-train"], ["serve"], ["watermark", "embed"],
        ["watermark", "verify"], ["watermark", "attack"],
    ],
)  # fmt: skip
def test_every_model_command_takes_device_and_precision(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    text = capsys.readouterr().out
    assert "--device DEVICE" in text and "--precision" in text


def test_a_defence_in_front_takes_the_inner_models_gpu_chunk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from advml import registry

    model = _cnn(preprocessing=False)
    wrapped = registry.create("output_defence", "rounding").wrap(model)
    assert wrapped.attack_chunk_size() is None  # on the CPU
    monkeypatch.setattr(TorchClassifier, "attack_chunk_size", lambda self: 40)
    assert wrapped.attack_chunk_size() == 40
    assert PGD()._auto_batch_size(wrapped) == 40
    assert model.query_count == 0 and wrapped.query_count == 0
