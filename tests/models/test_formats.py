"""load_model on the files users bring: each format round-trips a network built here
(BatchNorm, GELU, a residual block) or a booster, and says which adapter it made."""

from __future__ import annotations

import functools
import importlib.util
import io
import json
import pickle
import sys
import tempfile
import textwrap
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from advml.errors import UntrustedFileError
from advml.models import (
    BoosterClassifier,
    OnnxRuntimeClassifier,
    TorchClassifier,
    how_loaded,
    load_model,
    save_model,
)
from advml.models.formats import onnx as onnx_format

RTOL, ATOL = 1e-5, 1e-6  # float32 scores of the same network computed twice

# The user's own code, as a file in the working folder: what --model-factory imports.
USER_CODE = textwrap.dedent(
    """
    import torch
    from torch import nn


    class Block(nn.Module):
        def __init__(self, width):
            super().__init__()
            self.conv = nn.Conv2d(width, width, 3, padding=1)
            self.bn = nn.BatchNorm2d(width)

        def forward(self, x):
            return torch.relu(x + self.bn(self.conv(x)))


    def make_net(width=8, num_classes=10):
        return nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.GELU(),
            Block(width),
            nn.AvgPool2d(2),
            nn.Flatten(),
            nn.Linear(width * 16, num_classes),
        )
    """
)


@pytest.fixture
def user_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working folder holds ``usernets_formats.py``; imported from there only."""
    (tmp_path / "usernets_formats.py").write_text(USER_CODE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "usernets_formats", raising=False)
    return tmp_path


@functools.cache
def _user_module() -> types.ModuleType:
    """The same code as a module with a source file (TorchScript reads the source)."""
    folder = Path(tempfile.mkdtemp(prefix="advml-usernets-"))
    (folder / "usernets_formats_src.py").write_text(USER_CODE)
    spec = importlib.util.spec_from_file_location(
        "usernets_formats_src", folder / "usernets_formats_src.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["usernets_formats_src"] = module
    spec.loader.exec_module(module)
    return module


def _user_net(width: int = 8) -> nn.Module:
    torch.manual_seed(0)
    net = _user_module().make_net(width=width)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):  # statistics that are not the identity
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
    return net.eval()


@functools.cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    return (x[:40] / 16.0).astype(np.float32).reshape(-1, 1, 8, 8), y[:40].astype(np.int64)


def _scores(net: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(net(torch.as_tensor(x)), 1).numpy()


def _same_answers(model: object, net: nn.Module) -> None:
    x, _ = _digits()
    np.testing.assert_allclose(model.predict_proba(x), _scores(net, x), rtol=RTOL, atol=ATOL)  # type: ignore[attr-defined]


# -- PyTorch formats ------------------------------------------------------------------
@pytest.mark.parametrize("how", ["script", "trace"])
def test_torchscript_is_white_box(tmp_path: Path, how: str) -> None:
    net = _user_net()
    x = torch.as_tensor(_digits()[0][:2])
    scripted = torch.jit.script(net) if how == "script" else torch.jit.trace(net, x)
    path = tmp_path / "net.ts"
    torch.jit.save(scripted, str(path))
    model = load_model(path, input_shape=(1, 8, 8), bounds=(0, 1))
    assert isinstance(model, TorchClassifier) and model.has_gradients
    assert model.n_classes == 10  # counted on the output
    report = how_loaded(model)
    assert report is not None and report.format == "torchscript"
    assert report.settings["classes"] == "10 from output size"
    _same_answers(model, net)


def test_torchscript_without_input_shape_names_the_flag(tmp_path: Path) -> None:
    path = tmp_path / "net.pt"  # the suffix of a state dict: the content decides
    torch.jit.save(torch.jit.script(_user_net()), str(path))
    with pytest.raises(ValueError, match=r"--input-shape 3,32,32 .Python: input_shape="):
        load_model(path, bounds=(0, 1))


@pytest.mark.parametrize("dynamic", [True, False])
def test_export_program_is_white_box_with_its_shape(tmp_path: Path, dynamic: bool) -> None:
    net = _user_net()
    x = torch.as_tensor(_digits()[0][:4])
    shapes = ({0: torch.export.Dim("batch")},) if dynamic else None
    path = tmp_path / "net.pt2"
    torch.export.save(torch.export.export(net, (x,), dynamic_shapes=shapes), str(path))
    model = load_model(path, bounds=(0, 1))  # shape and classes from the graph
    assert isinstance(model, TorchClassifier)
    assert model.input_shape == (1, 8, 8) and model.n_classes == 10
    report = how_loaded(model)
    assert report is not None and report.format == "torch.export"
    assert report.settings["input_shape"] == "(1, 8, 8) from graph"
    assert ("fixes the batch at 4" in report.reason) is not dynamic
    _same_answers(model, net)  # 40 inputs, also through a graph that fixes 4
    grad = torch.autograd.grad(model.logits(x.requires_grad_(True)).sum(), x)[0]
    assert bool(torch.isfinite(grad).all()) and float(grad.abs().sum()) > 0


def test_export_archive_with_pickled_weights_needs_trust(tmp_path: Path) -> None:
    net = _user_net()
    path = tmp_path / "net.pt2"
    torch.export.save(torch.export.export(net, (torch.as_tensor(_digits()[0][:2]),)), str(path))
    # Mark one weight as pickled, as a hostile archive would: torch.export.load would
    # then unpickle it with weights_only=False.
    hostile = tmp_path / "hostile.pt2"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(hostile, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith("model_weights_config.json"):
                config = json.loads(data)
                first = next(iter(config["config"].values()))
                first["use_pickle"] = True
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    with pytest.raises(UntrustedFileError, match="--trust-model-file"):
        load_model(hostile, bounds=(0, 1))


def test_state_dict_with_factory_from_the_working_folder(user_code: Path) -> None:
    net = _user_net(width=6)
    torch.save(net.state_dict(), user_code / "weights.pt")
    model = load_model(
        user_code / "weights.pt",
        factory="usernets_formats:make_net",
        factory_kwargs='{"width": 6}',
        input_shape="1,8,8",
        bounds="0,1",
    )
    assert isinstance(model, TorchClassifier)
    report = how_loaded(model)
    assert report is not None and report.format == "state_dict"
    assert "usernets_formats:make_net" in report.reason
    _same_answers(model, net)


def test_checkpoint_and_safetensors_load_into_the_factory(user_code: Path) -> None:
    from safetensors.torch import save_file

    net = _user_net()
    state = net.state_dict()
    torch.save({"epoch": 3, "model_state_dict": state}, user_code / "ckpt.pt")
    save_file({k: v.contiguous() for k, v in state.items()}, str(user_code / "w.safetensors"))
    for name, fmt in (("ckpt.pt", "state_dict"), ("w.safetensors", "safetensors")):
        model = load_model(
            user_code / name,
            factory="usernets_formats:make_net",
            input_shape=(1, 8, 8),
            bounds=(0, 1),
        )
        assert how_loaded(model).format == fmt  # type: ignore[union-attr]
        _same_answers(model, net)


def test_state_dict_errors_name_the_flags(user_code: Path) -> None:
    torch.save(_user_net().state_dict(), user_code / "w.pt")
    path = user_code / "w.pt"
    with pytest.raises(ValueError, match="--model-factory mynets:Net"):
        load_model(path, input_shape=(1, 8, 8), bounds=(0, 1))
    with pytest.raises(ValueError, match="cannot import module 'nosuchmodule'"):
        load_model(path, factory="nosuchmodule:Net", input_shape=(1, 8, 8), bounds=(0, 1))
    with pytest.raises(ValueError, match="has no 'Nett'"):
        load_model(path, factory="usernets_formats:Nett", input_shape=(1, 8, 8), bounds=(0, 1))
    with pytest.raises(ValueError, match=r"--model-kwargs .*JSON object"):
        load_model(path, factory="usernets_formats:make_net", factory_kwargs="{width: 6}")
    with pytest.raises(ValueError, match=r"weights do not fit.*--model-kwargs"):
        load_model(
            path,
            factory="usernets_formats:make_net",
            factory_kwargs={"width": 4},
            input_shape=(1, 8, 8),
            bounds=(0, 1),
        )
    with pytest.raises(ValueError, match=r"--model-factory .*package.module:callable"):
        load_model(path, factory="not a factory")


def test_advml_file_of_a_custom_module_loads_with_the_factory(user_code: Path) -> None:
    net = _user_net()
    model = TorchClassifier(net, input_shape=(1, 8, 8), n_classes=10, preprocessing=(0.5, 0.25))
    path = save_model(model, user_code / "custom.pt")
    with pytest.raises(ValueError, match="--model-factory"):
        load_model(path)
    loaded = load_model(path, factory="usernets_formats:make_net")
    assert isinstance(loaded, TorchClassifier) and loaded.preprocessing is not None
    x, _ = _digits()
    np.testing.assert_allclose(
        loaded.predict_proba(x), model.predict_proba(x), rtol=RTOL, atol=ATOL
    )


def test_whole_module_pickle_needs_trust(user_code: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(user_code))  # the class must be importable to unpickle
    import usernets_formats

    net = usernets_formats.make_net()
    net.load_state_dict(_user_net().state_dict())
    torch.save(net.eval(), user_code / "full.pt")
    with pytest.raises(UntrustedFileError, match="--trust-model-file"):
        load_model(user_code / "full.pt", input_shape=(1, 8, 8), bounds=(0, 1))
    model = load_model(user_code / "full.pt", trust=True, input_shape=(1, 8, 8), bounds=(0, 1))
    assert how_loaded(model).format == "pickle"  # type: ignore[union-attr]
    _same_answers(model, net)


# -- ONNX ------------------------------------------------------------------------------
def _onnx(net: nn.Module, path: Path, *, dynamic: bool = True) -> Path:
    x = torch.as_tensor(_digits()[0][:2] if dynamic else _digits()[0][:1])
    shapes = ({0: torch.export.Dim("batch")},) if dynamic else None
    torch.onnx.export(net, (x,), str(path), dynamic_shapes=shapes, verbose=False)
    return path


@pytest.mark.parametrize("dynamic", [True, False])
def test_onnx_converts_to_a_white_box_network(tmp_path: Path, dynamic: bool) -> None:
    net = _user_net()
    path = _onnx(net, tmp_path / "net.onnx", dynamic=dynamic)
    model = load_model(path, bounds=(0, 1))  # shape and classes from the graph
    assert isinstance(model, TorchClassifier) and model.input_shape == (1, 8, 8)
    report = how_loaded(model)
    assert report is not None and report.format == "onnx" and report.access == "white-box"
    assert "onnx2pytorch" in report.reason and "equal onnxruntime" in report.reason
    _same_answers(model, net)


def test_onnx_stays_black_box_when_the_conversion_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = _user_net()
    path = _onnx(net, tmp_path / "net.onnx")

    def unsupported(_proto: object) -> nn.Module:
        raise NotImplementedError("Conversion not implemented for op_type=Fancy")

    monkeypatch.setattr(onnx_format, "import_converter", lambda: unsupported)
    model = load_model(path, bounds=(0, 1))
    assert isinstance(model, OnnxRuntimeClassifier) and not model.has_gradients
    report = how_loaded(model)
    assert report is not None and report.access == "black-box (scores)"
    assert "op_type=Fancy" in report.reason
    _same_answers(model, net)


def test_onnx_stays_black_box_when_the_conversion_answers_differently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = _user_net()
    path = _onnx(net, tmp_path / "net.onnx")
    real = onnx_format.import_converter()

    class Shifted(nn.Module):  # a conversion that gets one constant wrong
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.inner(x)
            return out + torch.arange(out.shape[1]) * 1e-2

    def off_by_a_bit(proto: object) -> nn.Module:
        return Shifted(real(proto))

    monkeypatch.setattr(onnx_format, "import_converter", lambda: off_by_a_bit)
    model = load_model(path, bounds=(0, 1))
    assert isinstance(model, OnnxRuntimeClassifier)
    assert "differs from onnxruntime" in how_loaded(model).reason  # type: ignore[union-attr]


def test_onnx_softmax_output_gives_logits_of_the_same_probabilities(tmp_path: Path) -> None:
    net = nn.Sequential(_user_net(), nn.Softmax(dim=1)).eval()
    path = _onnx(net, tmp_path / "probs.onnx")
    model = load_model(path, bounds=(0, 1))
    x, _ = _digits()
    with torch.no_grad():
        expected = net(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(model.predict_proba(x), expected, rtol=RTOL, atol=ATOL)


def test_onnx_import_leaves_no_torchvision_stand_in() -> None:
    onnx_format.import_converter()
    assert "torchvision.ops" not in sys.modules or not (
        sys.modules["torchvision.ops"].__doc__ or ""
    ).startswith("advml's stand-in")


# -- boosters ------------------------------------------------------------------------
def _tabular() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.random((120, 5)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 1).astype(np.int64) + (x[:, 2] > 0.7)
    return x, y


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("suffix", [".json", ".ubj"])
def test_xgboost_files_answer_with_the_boosters_probabilities(
    tmp_path: Path, suffix: str, n_classes: int
) -> None:
    xgb = pytest.importorskip("xgboost")
    x, y = _tabular()
    y = np.minimum(y, n_classes - 1)
    params = (
        {"objective": "binary:logistic"}
        if n_classes == 2
        else {"objective": "multi:softprob", "num_class": n_classes}
    )
    booster = xgb.train({**params, "max_depth": 3}, xgb.DMatrix(x, label=y), 8)
    path = tmp_path / f"model{suffix}"
    booster.save_model(str(path))
    model = load_model(path, bounds=(0, 1))
    assert isinstance(model, BoosterClassifier) and model.n_classes == n_classes
    assert isinstance(model.booster, xgb.Booster)  # reachable for tree-aware tools
    expected = booster.predict(xgb.DMatrix(x))
    if n_classes == 2:
        expected = np.stack([1 - expected, expected], axis=1)
    np.testing.assert_allclose(model.predict_proba(x), expected, rtol=RTOL, atol=ATOL)
    assert how_loaded(model).format == "xgboost"  # type: ignore[union-attr]


def test_lightgbm_text_file_answers_with_the_boosters_probabilities(tmp_path: Path) -> None:
    lgb = pytest.importorskip("lightgbm")
    x, y = _tabular()
    booster = lgb.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1, "num_leaves": 4},
        lgb.Dataset(x, label=y),
        8,
    )
    path = tmp_path / "model.txt"
    booster.save_model(str(path))
    model = load_model(path, bounds=(0, 1))
    assert isinstance(model, BoosterClassifier) and isinstance(model.booster, lgb.Booster)
    np.testing.assert_allclose(model.predict_proba(x), booster.predict(x), rtol=RTOL, atol=ATOL)


def test_catboost_file_when_catboost_is_installed(tmp_path: Path) -> None:
    catboost = pytest.importorskip("catboost", reason="catboost is optional and not installed")
    x, y = _tabular()
    est = catboost.CatBoostClassifier(iterations=10, depth=3, verbose=False).fit(x, y)
    path = tmp_path / "model.cbm"
    est.save_model(str(path))
    model = load_model(path, bounds=(0, 1))
    np.testing.assert_allclose(model.predict_proba(x), est.predict_proba(x), rtol=1e-5, atol=1e-6)


def test_booster_needs_bounds_and_refuses_regression(tmp_path: Path) -> None:
    xgb = pytest.importorskip("xgboost")
    x, y = _tabular()
    booster = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(x, label=y > 0), 2)
    booster.save_model(str(tmp_path / "b.json"))
    with pytest.raises(ValueError, match="--bounds 0,1"):
        load_model(tmp_path / "b.json")
    reg = xgb.train({"objective": "reg:squarederror"}, xgb.DMatrix(x, label=y), 2)
    reg.save_model(str(tmp_path / "r.json"))
    with pytest.raises(ValueError, match="regression"):
        load_model(tmp_path / "r.json", bounds=(0, 1))
    with pytest.raises(ValueError, match="takes 5 features"):
        load_model(tmp_path / "b.json", bounds=(0, 1), input_shape=(6,))


# -- the sidecar and the settings ---------------------------------------------------------
def test_sidecar_gives_what_the_file_does_not_carry(tmp_path: Path) -> None:
    net = _user_net()
    torch.jit.save(torch.jit.script(net), str(tmp_path / "net.ts"))
    (tmp_path / "model.yaml").write_text(
        "input_shape: [1, 8, 8]\nclasses: [a, b, c, d, e, f, g, h, i, j]\nbounds: [0, 2]\n"
        "mean: 1.0\nstd: 2.0\n"
    )
    model = load_model(tmp_path / "net.ts")
    assert isinstance(model, TorchClassifier) and model.bounds == (0.0, 2.0)
    report = how_loaded(model)
    assert report is not None and report.class_names == tuple("abcdefghij")
    assert report.settings["bounds"] == "(0.0, 2.0) from model.yaml"
    # Normalisation inside the model: x in [0, 2] is seen by the network as (x - 1) / 2.
    x = _digits()[0] * 2
    np.testing.assert_allclose(
        model.predict_proba(x), _scores(net, (x - 1) / 2), rtol=RTOL, atol=ATOL
    )
    # Flags win over the sidecar.
    assert load_model(tmp_path / "net.ts", bounds="0,1").bounds == (0.0, 1.0)
    (tmp_path / "model.yaml").write_text("input_shape: [1, 8, 8]\nbound: [0, 1]\n")
    with pytest.raises(ValueError, match=r"unknown key.*bound"):
        load_model(tmp_path / "net.ts")


def test_factory_named_by_a_sidecar_needs_confirmation(user_code: Path) -> None:
    torch.save(_user_net().state_dict(), user_code / "w.pt")
    (user_code / "w.yaml").write_text(
        "factory: usernets_formats:make_net\ninput_shape: [1, 8, 8]\nbounds: [0, 1]\n"
    )
    with pytest.raises(UntrustedFileError, match="--model-factory usernets_formats:make_net"):
        load_model(user_code / "w.pt")
    assert isinstance(load_model(user_code / "w.pt", trust=True), TorchClassifier)
    confirmed = load_model(user_code / "w.pt", factory="usernets_formats:make_net")
    assert isinstance(confirmed, TorchClassifier)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"input_shape": "3,a"}, "--input-shape"),
        ({"input_shape": (0, 8)}, "--input-shape"),
        ({"bounds": "1,0"}, "--bounds"),
        ({"classes": 1}, "--classes"),
        ({"classes": "a,a"}, "--classes"),
        ({"std": "0"}, "--std"),
        ({"device": "gpu"}, "device must be"),
    ],
)
def test_invalid_settings_name_the_flag(tmp_path: Path, kwargs: dict, match: str) -> None:
    path = tmp_path / "net.ts"
    torch.jit.save(torch.jit.script(_user_net()), str(path))
    with pytest.raises(ValueError, match=match):
        load_model(path, **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a torch without a GPU")
def test_cuda_without_cuda_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "net.ts"
    torch.jit.save(torch.jit.script(_user_net()), str(path))
    with pytest.raises(ValueError, match=r"device='cuda' but .*use device='cpu'"):
        load_model(path, input_shape=(1, 8, 8), bounds=(0, 1), device="cuda")
    model = load_model(path, input_shape=(1, 8, 8), bounds=(0, 1), device="auto")
    assert model.device.type == "cpu"


# -- damaged and hostile files --------------------------------------------------------
def test_damaged_files_are_explained(tmp_path: Path) -> None:
    net = _user_net()
    onnx_path = _onnx(net, tmp_path / "net.onnx")
    data = onnx_path.read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a model file advml can read"):
        load_model(tmp_path / "cut.onnx", bounds=(0, 1))
    torch.jit.save(torch.jit.script(net), str(tmp_path / "net.ts"))
    ts = (tmp_path / "net.ts").read_bytes()
    (tmp_path / "cut.ts").write_bytes(ts[: len(ts) - 100])
    with pytest.raises(ValueError, match="truncated or corrupt archive"):
        load_model(tmp_path / "cut.ts")
    (tmp_path / "bad.txt").write_text("tree\nversion=v4\nnum_class=oops\n")
    with pytest.raises(ValueError, match="damaged lightgbm model file"):
        load_model(tmp_path / "bad.txt", bounds=(0, 1))
    (tmp_path / "bad.json").write_text('{"learner": 3, "version": [2, 0, 0]}')
    with pytest.raises(ValueError, match="damaged xgboost model file"):
        load_model(tmp_path / "bad.json", bounds=(0, 1))
    (tmp_path / "bad.safetensors").write_bytes((17).to_bytes(8, "little") + b"{not json at all}xx")
    with pytest.raises(ValueError, match=r"damaged .safetensors"):
        load_model(tmp_path / "bad.safetensors")


def test_plain_pickle_is_refused_without_trust(tmp_path: Path) -> None:
    class Boom:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("ran",))

    path = tmp_path / "model.bin"
    path.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(UntrustedFileError, match="--trust-model-file"):
        load_model(path)
    buffer = io.BytesIO()
    torch.save({"net": Boom()}, buffer)
    (tmp_path / "hostile.pt").write_bytes(buffer.getvalue())
    with pytest.raises(UntrustedFileError, match="--trust-model-file"):
        load_model(tmp_path / "hostile.pt")


def test_export_archive_with_tensor_constants_needs_no_trust(tmp_path: Path) -> None:
    class Scaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = _user_net()
            self.scale = torch.tensor([2.0])  # neither parameter nor buffer: a constant

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x) * self.scale

    net = Scaled().eval()
    path = tmp_path / "scaled.pt2"
    program = torch.export.export(net, (torch.as_tensor(_digits()[0][:2]),))
    torch.export.save(program, str(path))
    with zipfile.ZipFile(path) as archive:
        assert any("/data/constants/tensor_" in n for n in archive.namelist())
    model = load_model(path, bounds=(0, 1))
    _same_answers(model, net)
