"""save_model / load_model: round trips, and files that must never run code."""

from __future__ import annotations

import functools
import pickle
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import skops.io
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from advml.errors import UntrustedFileError
from advml.models import (
    CallableClassifier,
    SklearnClassifier,
    TorchClassifier,
    architectures,
    load_model,
    save_model,
)


@functools.cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    return (x[:400] / 16.0).astype(np.float32), y[:400].astype(np.int64)


@functools.cache
def _logreg() -> LogisticRegression:
    x, y = _digits()
    return LogisticRegression(max_iter=500).fit(x.astype(np.float64), y)


def _torch_model(name: str) -> TorchClassifier:
    torch.manual_seed(0)
    if name == "cnn":
        net = architectures.build("cnn", input_shape=(1, 8, 8), n_classes=10, channels=(4, 8))
    else:
        net = architectures.build("mlp", input_shape=(1, 8, 8), n_classes=10, hidden=(32,))
    return TorchClassifier(
        net.eval(), input_shape=(1, 8, 8), n_classes=10, preprocessing=(0.5, 0.25)
    )


def _images() -> torch.Tensor:
    return torch.as_tensor(_digits()[0][:50].reshape(-1, 1, 8, 8))


class _Payload:
    """Unpickling this runs ``open(marker, 'w')``: the classic malicious model file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


class _Doubler(TransformerMixin, BaseEstimator):
    """A harmless custom transformer: a type from outside sklearn/numpy/scipy."""

    def fit(self, x: Any, y: Any = None) -> _Doubler:
        return self

    def transform(self, x: Any) -> Any:
        return np.asarray(x) * 2.0


# -- PyTorch ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["cnn", "mlp"])
def test_torch_round_trip(name: str, tmp_path: Path) -> None:
    model = _torch_model(name)
    path = save_model(model, tmp_path / f"{name}.pt")
    loaded = load_model(path)

    assert isinstance(loaded, TorchClassifier) and path == tmp_path / f"{name}.pt"
    assert (loaded.input_shape, loaded.n_classes, loaded.bounds) == ((1, 8, 8), 10, (0.0, 1.0))
    x = _images()
    with torch.no_grad():
        assert torch.equal(loaded.logits(x), model.logits(x))
    np.testing.assert_array_equal(loaded.predict(x.numpy()), model.predict(x.numpy()))
    assert not loaded.module.training  # ready for inference


def test_torch_file_is_plain_data(tmp_path: Path) -> None:
    path = save_model(_torch_model("mlp"), tmp_path / "m.pt")
    data = torch.load(path, weights_only=True)
    assert data["format"] == "advml-torch" and data["version"] == 1
    assert data["architecture"] == "mlp"
    assert data["architecture_kwargs"] == {
        "input_shape": [1, 8, 8],
        "n_classes": 10,
        "hidden": [32],
    }
    assert data["preprocessing"] == [0.5, 0.25]
    assert data["input_shape"] == [1, 8, 8] and data["bounds"] == [0.0, 1.0]
    assert all(isinstance(v, torch.Tensor) for v in data["state_dict"].values())


def test_unit_masks_survive_the_round_trip(tmp_path: Path) -> None:
    model = _torch_model("cnn")
    keep = np.array([True, False, True, True, False, True, True, True])
    model.set_unit_mask("conv2", keep)
    loaded = load_model(save_model(model, tmp_path / "pruned.pt"))
    assert isinstance(loaded, TorchClassifier)
    mask = loaded.unit_mask("conv2")
    assert mask is not None and np.array_equal(mask.numpy(), keep)
    x = _images()
    with torch.no_grad():
        assert torch.equal(loaded.logits(x), model.logits(x))


def test_hand_built_module_with_named_architecture(tmp_path: Path) -> None:
    net = architectures.mlp(input_shape=(1, 8, 8), n_classes=10, hidden=(16,)).eval()
    model = TorchClassifier(net, input_shape=(1, 8, 8), n_classes=10)
    kwargs = {"input_shape": (1, 8, 8), "n_classes": 10, "hidden": (16,)}
    loaded = load_model(
        save_model(model, tmp_path / "m.pt", architecture="mlp", architecture_kwargs=kwargs)
    )
    x = _images().numpy()
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    with pytest.raises(ValueError, match="does not rebuild this model"):
        save_model(
            model,
            tmp_path / "bad.pt",
            architecture="mlp",
            architecture_kwargs={**kwargs, "hidden": (8,)},
        )
    with pytest.raises(ValueError, match="unknown architecture 'resnet'"):
        save_model(model, tmp_path / "bad.pt", architecture="resnet")


def test_module_changed_after_build_is_saved_without_architecture(tmp_path: Path) -> None:
    # Transfer learning: a reference network given a new 3-class head.
    model = _torch_model("mlp")
    model.module.out = torch.nn.Linear(32, 3)
    model = TorchClassifier(model.module.eval(), input_shape=(1, 8, 8), n_classes=3)
    with pytest.warns(UserWarning, match="no longer matches"):
        path = save_model(model, tmp_path / "tuned.pt")
    with pytest.raises(ValueError, match="module="):
        load_model(path)
    fresh = architectures.build("mlp", input_shape=(1, 8, 8), n_classes=10, hidden=(32,))
    fresh.out = torch.nn.Linear(32, 3)
    x = _images().numpy()
    np.testing.assert_array_equal(load_model(path, module=fresh).predict(x), model.predict(x))


def test_unnamed_module_needs_module_to_load(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()
    model = TorchClassifier(net, input_shape=(1, 8, 8), n_classes=10)
    path = save_model(model, tmp_path / "custom.pt")
    with pytest.raises(ValueError, match="module="):
        load_model(path)
    fresh = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    loaded = load_model(path, module=fresh)
    x = _images().numpy()
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    wrong = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    with pytest.raises(ValueError, match="do not fit the network"):
        load_model(path, module=wrong)


def test_bare_state_dict_and_newer_versions_are_explained(tmp_path: Path) -> None:
    torch.save(_torch_model("mlp").module.state_dict(), tmp_path / "sd.pt")
    with pytest.raises(ValueError, match="--model-factory"):
        load_model(tmp_path / "sd.pt")
    torch.save({"format": "advml-torch", "version": 99}, tmp_path / "new.pt")
    with pytest.raises(ValueError, match=r"newer advml \(advml file format 99, this one reads"):
        load_model(tmp_path / "new.pt")


@pytest.mark.parametrize("version", [None, "1", True, 0, 1.0])
def test_a_damaged_version_is_named(tmp_path: Path, version: object) -> None:
    torch.save({"format": "advml-torch", "version": version}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=rf"damaged advml file: invalid version {version!r}$"):
        load_model(tmp_path / "bad.pt")


# -- scikit-learn ----------------------------------------------------------------------
def test_skops_round_trip(tmp_path: Path) -> None:
    x, _ = _digits()
    model = SklearnClassifier(_logreg(), bounds=(0.0, 1.0), input_shape=(1, 8, 8))
    path = save_model(model, tmp_path / "lr.skops")
    loaded = load_model(path)

    assert isinstance(loaded, SklearnClassifier) and loaded.white_box
    assert loaded.input_shape == (1, 8, 8) and loaded.bounds == (0.0, 1.0)
    images = x.reshape(-1, 1, 8, 8)
    np.testing.assert_array_equal(loaded.predict(images), model.predict(images))
    np.testing.assert_allclose(loaded.predict_proba(images), model.predict_proba(images))


def test_skops_allows_sklearn_internal_types(tmp_path: Path) -> None:
    x, y = _digits()
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
    path = save_model(SklearnClassifier(forest, bounds=(0, 1)), tmp_path / "rf.skops")
    assert "sklearn.tree._tree.Tree" in skops.io.get_untrusted_types(file=path)
    np.testing.assert_array_equal(load_model(path).predict(x), forest.predict(x))


def test_skops_with_a_custom_type_is_refused_unless_trusted(tmp_path: Path) -> None:
    x, y = _digits()
    est = make_pipeline(_Doubler(), LogisticRegression(max_iter=500)).fit(x, y)
    model = SklearnClassifier(est, bounds=(0, 1), input_shape=(64,))
    path = save_model(model, tmp_path / "custom.skops")
    with pytest.raises(UntrustedFileError, match=r"_Doubler.*trust=True"):
        load_model(path)
    trusted = load_model(path, trust=True)
    np.testing.assert_array_equal(trusted.predict(x), est.predict(x))


def test_skops_with_a_function_reference_is_refused(tmp_path: Path) -> None:
    # builtins.eval is from builtins but is a function, not a class: refused.
    est = make_pipeline(FunctionTransformer(eval), LogisticRegression())
    skops.io.dump(
        {
            "format": "advml-sklearn",
            "version": 1,
            "estimator": est,
            "bounds": [0.0, 1.0],
            "input_shape": [64],
        },
        tmp_path / "eval.skops",
    )
    with pytest.raises(UntrustedFileError, match=r"builtins\.eval"):
        load_model(tmp_path / "eval.skops")


def test_bare_estimator_skops_needs_bounds(tmp_path: Path) -> None:
    x, _ = _digits()
    skops.io.dump(_logreg(), tmp_path / "bare.skops")
    with pytest.raises(ValueError, match=r"bounds="):
        load_model(tmp_path / "bare.skops")
    loaded = load_model(tmp_path / "bare.skops", bounds=(0, 1))
    np.testing.assert_array_equal(loaded.predict(x), _logreg().predict(x))


def test_sklearn_model_must_go_to_a_skops_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.skops"):
        save_model(SklearnClassifier(_logreg(), bounds=(0, 1)), tmp_path / "lr.pkl")


# -- pickles -----------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".pkl", ".joblib"])
def test_pickle_is_refused_unless_trusted(suffix: str, tmp_path: Path) -> None:
    x, _ = _digits()
    path = tmp_path / f"lr{suffix}"
    if suffix == ".joblib":
        joblib.dump(_logreg(), path)
    else:
        path.write_bytes(pickle.dumps(_logreg()))
    with pytest.raises(UntrustedFileError, match=r"run code from the file.*trust=True"):
        load_model(path, bounds=(0, 1))
    with pytest.raises(ValueError, match="bounds="):
        load_model(path, trust=True)
    loaded = load_model(path, trust=True, bounds=(0, 1))
    assert isinstance(loaded, SklearnClassifier) and loaded.white_box
    np.testing.assert_array_equal(loaded.predict(x), _logreg().predict(x))


@pytest.mark.parametrize("name", ["model.pkl", "model.pt", "model.bin"])
def test_malicious_pickle_never_runs(name: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    (tmp_path / name).write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(UntrustedFileError):
        load_model(tmp_path / name)
    assert not marker.exists()


def test_malicious_torch_file_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    torch.save({"format": "advml-torch", "payload": _Payload(marker)}, tmp_path / "m.pt")
    with pytest.raises(UntrustedFileError, match="beyond tensors"):
        load_model(tmp_path / "m.pt")
    assert not marker.exists()


# -- damaged and unknown files -------------------------------------------------------------
def _good_file(kind: str, tmp_path: Path) -> bytes:
    if kind == "torch":
        path = save_model(_torch_model("mlp"), tmp_path / "good.pt")
    else:
        path = save_model(SklearnClassifier(_logreg(), bounds=(0, 1)), tmp_path / "good.skops")
    return path.read_bytes()


@pytest.mark.parametrize("kind", ["torch", "skops"])
@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_damaged_files_raise_value_error_naming_the_path(
    kind: str, damage: str, tmp_path: Path
) -> None:
    data = bytearray(_good_file(kind, tmp_path))
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        middle = len(data) // 2
        data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    path = tmp_path / ("model.pt" if kind == "torch" else "model.skops")
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"truncated|corrupt|damaged") as info:
        load_model(path)
    assert str(path) in str(info.value)
    assert info.value.__cause__ is None  # no torch/zipfile traceback chained in


def test_random_bytes_are_an_unknown_format(tmp_path: Path) -> None:
    path = tmp_path / "noise.pt"
    path.write_bytes(np.random.default_rng(0).bytes(2048).replace(b"\x80", b"\x00", 1))
    with pytest.raises(ValueError, match=r"not a model file advml can read.*supported") as info:
        load_model(path)
    assert str(path) in str(info.value)


def test_missing_file_and_unsupported_model(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nothing\.pt"):
        load_model(tmp_path / "nothing.pt")
    fn = CallableClassifier(lambda b: b, input_shape=(3,), n_classes=3, bounds=(0, 1))
    with pytest.raises(TypeError, match="TorchClassifier and SklearnClassifier"):
        save_model(fn, tmp_path / "fn.pt")  # type: ignore[arg-type]
