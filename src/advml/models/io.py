"""Saving and loading models without running code from the file.

A model file is data an attacker may have written: a pickle runs arbitrary code the
moment it is loaded. advml therefore writes

* PyTorch models as a plain dictionary of tensors, numbers and strings, read back with
  ``torch.load(..., weights_only=True)``, the network being rebuilt from a reference
  architecture's name (or given by the caller);
* scikit-learn models as ``.skops`` files, whose types are checked before loading: only
  classes from scikit-learn, NumPy, SciPy and Python's built-ins are allowed unless the
  caller trusts the file;

and refuses pickle/joblib files unless ``trust=True``.

:func:`load_model` also reads the files users bring (TorchScript, ``torch.export``,
ONNX, state dicts with a factory, XGBoost / LightGBM / CatBoost boosters; see
:mod:`advml.models.formats` and docs/models.md), recognised from their content.
"""

from __future__ import annotations

import builtins
import importlib
import io
import os
import pathlib
import pickle
import re
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from advml.errors import UntrustedFileError
from advml.models import architectures
from advml.models.base import BaseClassifier
from advml.models.formats import boosters, torch_files
from advml.models.formats import onnx as onnx_format
from advml.models.formats.spec import LoadReport, ModelSpec, read_sidecar, settings_record
from advml.models.sklearn import SklearnClassifier
from advml.models.torch import TorchClassifier
from advml.runtime.files import atomic_write, check_file_version
from advml.runtime.plain import plain
from advml.validation import check_bool

__all__ = ["LoadReport", "how_loaded", "load_model", "resolve_device", "save_model"]

TORCH_FORMAT = "advml-torch"
SKLEARN_FORMAT = "advml-sklearn"
FORMAT_VERSION = 1

_PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
_SAFE_ROOTS = ("sklearn", "numpy", "scipy")
_SUPPORTED = (
    "supported: advml's save_model files, TorchScript, torch.export .pt2, ONNX, state "
    "dicts (.pt, .safetensors) with --model-factory, .skops, XGBoost .json/.ubj, LightGBM "
    ".txt, CatBoost .cbm, and - only with --trust-model-file - pickle/joblib files; see "
    "docs/models.md"
)
_TRUST_HINT = (
    "pass trust=True (CLI: --trust-model-file) only for files you made yourself, or "
    "convert it to .skops"
)


# -- saving ------------------------------------------------------------------------------
def save_model(
    model: TorchClassifier | SklearnClassifier,
    path: str | os.PathLike[str],
    *,
    architecture: str | None = None,
    architecture_kwargs: dict[str, Any] | None = None,
) -> pathlib.Path:
    """Write ``model`` to ``path`` in a format that loads without running code.

    A :class:`~advml.models.TorchClassifier` becomes a ``torch.save`` file holding only
    tensors and plain data (weights, input shape, classes, bounds, normalisation, unit
    masks and the name of the architecture that rebuilds the network). A
    :class:`~advml.models.SklearnClassifier` becomes a ``.skops`` file. The file is
    written to a temporary name first and then renamed, so a crash never leaves half a
    model behind.

    Parameters
    ----------
    model : TorchClassifier or SklearnClassifier
        The model to save.
    path : str or path-like
        Destination; ``.pt`` is customary for PyTorch, ``.skops`` is required for
        scikit-learn.
    architecture : str, optional
        Name of the reference architecture (see :mod:`advml.models.architectures`) that
        rebuilds the network. Default: the one recorded by
        :func:`~advml.models.architectures.build` on the module, if any. Without one,
        :func:`load_model` needs the network passed as ``module=``.
    architecture_kwargs : dict, optional
        Keyword arguments of that architecture (plain numbers, strings and lists).

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    TypeError
        For models other than the two supported adapters.
    ValueError
        For a wrong suffix, an unknown architecture, or an architecture whose
        parameters do not match the model's weights.

    Examples
    --------
    >>> import tempfile, pathlib, torch
    >>> from advml.models import TorchClassifier, load_model, save_model
    >>> from advml.models.architectures import build
    >>> net = build("mlp", input_shape=(4,), n_classes=3, hidden=(8,))
    >>> model = TorchClassifier(net, input_shape=(4,), n_classes=3)
    >>> path = save_model(model, pathlib.Path(tempfile.mkdtemp()) / "mlp.pt")
    >>> x = torch.rand(5, 4)
    >>> bool((load_model(path).predict(x) == model.predict(x)).all())
    True
    """
    path = pathlib.Path(path)
    if isinstance(model, TorchClassifier):
        if path.suffix.lower() in (".skops", *_PICKLE_SUFFIXES):
            raise ValueError(
                f"path {str(path)!r} has the suffix of another format; save a PyTorch model "
                f"to a .pt file"
            )
        data = _torch_bytes(model, architecture, architecture_kwargs)
    elif isinstance(model, SklearnClassifier):
        if architecture is not None or architecture_kwargs is not None:
            raise ValueError(
                "architecture and architecture_kwargs apply to PyTorch models only; "
                "leave them out for a SklearnClassifier"
            )
        if path.suffix.lower() != ".skops":
            raise ValueError(
                f"path {str(path)!r}: a scikit-learn model is saved as a .skops file; "
                f"give a path ending in .skops"
            )
        data = _sklearn_bytes(model)
    else:
        raise TypeError(
            f"save_model supports TorchClassifier and SklearnClassifier, got "
            f"{type(model).__name__}; for a CallableClassifier save what its function calls"
        )
    _write_atomically(path, data)
    return path


def _torch_bytes(
    model: TorchClassifier, architecture: str | None, architecture_kwargs: dict[str, Any] | None
) -> bytes:
    name: str | None
    if architecture is None:
        if architecture_kwargs is not None:
            raise ValueError("architecture_kwargs needs architecture= (the architecture's name)")
        recorded = getattr(model.module, "advml_architecture", None)
        name, kwargs = recorded if recorded is not None else (None, {})
    else:
        name, kwargs = architecture, dict(architecture_kwargs or {})
    kwargs = plain(dict(kwargs), where="architecture_kwargs")
    state = {k: v.detach().cpu().clone() for k, v in model.module.state_dict().items()}
    if name is not None:
        try:
            _check_architecture(name, kwargs, state)
        except ValueError as e:
            if architecture is not None:
                raise
            # The recorded network was changed since build() (a new head for transfer
            # learning, say): save the weights alone rather than refuse.
            warnings.warn(
                f"the module no longer matches the architecture build() recorded ({e}); "
                f"saving without an architecture, so load_model will need module=",
                UserWarning,
                stacklevel=3,
            )
            name, kwargs = None, {}
    preprocessing = None
    if model.preprocessing is not None:
        mean, std = model.preprocessing
        preprocessing = [
            np.asarray(mean, dtype=np.float64).tolist(),
            np.asarray(std, dtype=np.float64).tolist(),
        ]
    masks = {}
    for layer in model.layer_names:
        mask = model.unit_mask(layer)
        if mask is not None:
            masks[layer] = mask.cpu().clone()
    payload = {
        "format": TORCH_FORMAT,
        "version": FORMAT_VERSION,
        "architecture": name,
        "architecture_kwargs": kwargs,
        "state_dict": state,
        "input_shape": list(model.input_shape),
        "n_classes": model.n_classes,
        "bounds": list(model.bounds),
        "preprocessing": preprocessing,
        "unit_masks": masks,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def _check_architecture(name: str, kwargs: dict[str, Any], state: dict[str, torch.Tensor]) -> None:
    """Fail at save time, not at load time, when the architecture cannot take the weights."""
    if name not in architectures.ARCHITECTURES:
        raise ValueError(
            f"unknown architecture {name!r}; available: "
            f"{', '.join(sorted(architectures.ARCHITECTURES))}, or pass architecture=None "
            f"and give module= to load_model"
        )
    try:
        rebuilt = architectures.build(name, **kwargs)
        rebuilt.load_state_dict(state, strict=True)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ValueError(
            f"architecture {name!r} with architecture_kwargs={kwargs!r} does not rebuild "
            f"this model: {_first_line(e)}"
        ) from None


def _sklearn_bytes(model: SklearnClassifier) -> bytes:
    import skops.io

    payload = {
        "format": SKLEARN_FORMAT,
        "version": FORMAT_VERSION,
        "estimator": model.estimator,
        "bounds": list(model.bounds),
        "input_shape": list(model.input_shape),
    }
    return bytes(skops.io.dumps(payload))


def _write_atomically(path: pathlib.Path, data: bytes) -> None:
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"cannot save to {str(path)!r}: folder {str(path.parent)!r} does not exist"
        )
    atomic_write(path, data)


# -- loading -----------------------------------------------------------------------------
def load_model(
    path: str | os.PathLike[str],
    *,
    module: nn.Module | None = None,
    trust: bool = False,
    device: torch.device | str | None = None,
    bounds: Sequence[float] | str | None = None,
    input_shape: Sequence[int] | str | None = None,
    classes: int | Sequence[str] | str | None = None,
    mean: float | Sequence[float] | str | None = None,
    std: float | Sequence[float] | str | None = None,
    factory: str | Callable[..., nn.Module] | None = None,
    factory_kwargs: dict[str, Any] | str | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> BaseClassifier:
    """Load a model file of any format advml reads, recognised from its content.

    ============================  =========================================  ===========
    file                          adapter                                    access
    ============================  =========================================  ===========
    advml ``save_model`` (.pt)    :class:`TorchClassifier` / Sklearn...      white-box
    TorchScript (``jit.save``)    :class:`TorchClassifier`                   white-box
    ``torch.export`` (.pt2)       :class:`TorchClassifier`                   white-box
    ONNX (.onnx)                  TorchClassifier when the graph converts    white-box
                                  and answers as onnxruntime does, else
                                  :class:`OnnxRuntimeClassifier`             black-box
    state dict (.pt/.safetensors) TorchClassifier of ``factory()``           white-box
    scikit-learn (.skops)         :class:`SklearnClassifier`                 white-box
    XGBoost/LightGBM/CatBoost     :class:`BoosterClassifier` (``.booster``)  scores
    pickle (only ``trust=True``)  by what it holds (an ``nn.Module``...)
    ============================  =========================================  ===========

    What a file does not carry comes from the keyword arguments, else from a sidecar
    YAML beside the file (``net.yaml`` for ``net.onnx``, else ``model.yaml``; keys
    ``input_shape``, ``classes``, ``bounds``, ``mean``, ``std``, ``factory``,
    ``factory_kwargs``), else from the file, else from ``defaults``. How the file loaded
    (format, adapter, why, and where each setting came from) is attached to the model as
    ``model.load_report`` (see :func:`how_loaded`).

    Nothing in the file is executed unless ``trust=True``: PyTorch files are read with
    ``torch.load(..., weights_only=True)``, ``torch.export`` archives are checked for
    pickled objects first, ``.skops`` files may hold only scikit-learn, NumPy, SciPy and
    built-in classes, and pickle/joblib files are refused. TorchScript archives run
    TorchScript code (not Python) from the file. The one path that runs Python code is
    ``factory``, which the caller names; a factory named by a sidecar file needs
    ``trust=True`` (or the same name passed as ``factory``).

    Parameters
    ----------
    path : str or path-like
        The model file.
    module : torch.nn.Module, optional
        Network to load the weights of an advml file into, instead of rebuilding the
        architecture it records.
    trust : bool
        Load pickle/joblib files, pickled objects inside ``torch.export`` archives and
        ``.skops`` types outside the allow-list, and honour a sidecar's ``factory``:
        all of which can run code from the file. Only for files you made yourself.
        Default False. Must be the bool ``True`` or ``False``.
    device : torch.device or str, optional
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (the GPU when there is one);
        CPU by default. A CUDA device on a torch without CUDA is refused with a message.
    bounds : (float, float) or "min,max", optional
        Valid input range (CLI ``--bounds``); overrides what the file stores.
    input_shape : tuple of int or "3,32,32", optional
        Shape of one input (``--input-shape``).
    classes : int, list of str or "10" / "cat,dog", optional
        Class count or class names (``--classes``). Default: from the file, else the
        size of the network's output.
    mean, std : float, sequence or "0.5,0.5,0.5", optional
        Normalisation applied inside the model, ``(x - mean) / std`` (``--mean``,
        ``--std``): inputs and ``bounds`` stay in the data's units. Scalars or one value
        per channel.
    factory : "package.module:callable" or callable, optional
        Builds the network a state dict (``.pt``, ``.safetensors``) or an advml file of a
        custom module is loaded into (``--model-factory``). The module is imported also
        from the working folder. This runs your code.
    factory_kwargs : dict or JSON text, optional
        Keyword arguments of ``factory`` (``--model-kwargs '{"num_classes": 10}'``).
    defaults : mapping, optional
        Values for the same keys used when nothing else gives them (the commands pass
        the dataset's ``input_shape``, ``classes`` and ``bounds``).

    Returns
    -------
    BaseClassifier
        The adapter, with ``load_report`` attached.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a file.
    UntrustedFileError
        If loading would run code from the file and ``trust=False``.
    TypeError
        If ``trust`` is not a bool.
    ValueError
        If the file is corrupt, truncated or of an unknown format, or a setting it
        needs is missing or invalid (the message names the flag that gives it).
    ImportError
        If the format needs a package that is not installed (with the install command).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from advml.models import SklearnClassifier, how_loaded, load_model, save_model
    >>> x = np.random.default_rng(0).random((30, 3))
    >>> est = LogisticRegression().fit(x, (x[:, 0] > 0.5).astype(int))
    >>> path = save_model(SklearnClassifier(est, bounds=(0, 1)),
    ...                   pathlib.Path(tempfile.mkdtemp()) / "lr.skops")
    >>> model = load_model(path)
    >>> model.white_box, how_loaded(model).format
    (True, 'skops')
    """
    # A truthy string ("false") must not switch unpickling on.
    check_bool("trust", trust)
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {str(path)!r} does not exist or is not a file")
    device = resolve_device(device)
    given = ModelSpec.from_values(
        {
            "input_shape": input_shape,
            "classes": classes,
            "bounds": bounds,
            "mean": mean,
            "std": std,
            "factory": factory,
            "factory_kwargs": factory_kwargs,
        },
        "given",
    )
    sidecar = read_sidecar(path)
    if sidecar.factory is not None and given.factory is None and not trust:
        raise UntrustedFileError(
            f"{str(path)!r}: the sidecar beside it names the factory {sidecar.factory!r}, "
            f"which would run code chosen by a file; confirm it with --model-factory "
            f"{sidecar.factory} (Python: factory=), or pass --trust-model-file"
        )
    ctx = _Load(
        path=path,
        data=path.read_bytes(),  # one read: the bytes checked are the bytes loaded
        trust=trust,
        device=device,
        module=module,
        spec=given.over(sidecar),
        defaults=ModelSpec.from_values(dict(defaults or {}), "dataset"),
    )
    model, report = _dispatch(ctx)
    model.load_report = report  # type: ignore[attr-defined]
    return model


def how_loaded(model: object) -> LoadReport | None:
    """How :func:`load_model` loaded ``model`` (format, adapter, why, settings), or None
    for a model that was not loaded from a file."""
    report = getattr(model, "load_report", None)
    return report if isinstance(report, LoadReport) else None


def resolve_device(device: torch.device | str | None) -> torch.device | None:
    """``device`` checked: ``"auto"`` becomes the GPU when there is one, and a CUDA device
    without CUDA is refused with a message instead of torch's AssertionError."""
    if device is None:
        return None
    if isinstance(device, str) and device.strip().lower() == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(
            f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {device!r}"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = (
                f"this PyTorch ({torch.__version__}) is built without CUDA"
                if torch.version.cuda is None
                else "no CUDA GPU is visible (CUDA_VISIBLE_DEVICES, driver?)"
            )
            raise ValueError(
                f"device={str(device)!r} but {why}; use device='cpu' (CLI: --device cpu) or 'auto'"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={str(device)!r} but only {torch.cuda.device_count()} CUDA "
                f"device(s) are visible (cuda:0 .. cuda:{torch.cuda.device_count() - 1})"
            )
    return dev


@dataclass(frozen=True)
class _Load:
    """One load: the file's bytes, the caller's choices, the settings known so far."""

    path: pathlib.Path
    data: bytes
    trust: bool
    device: torch.device | None
    module: nn.Module | None
    spec: ModelSpec
    defaults: ModelSpec

    def complete(self, spec: ModelSpec) -> ModelSpec:
        """``spec`` with the defaults where nothing else gave a value."""
        return spec.over(self.defaults)

    def report(self, fmt: str, model: BaseClassifier, reason: str, spec: ModelSpec) -> LoadReport:
        access = "white-box" if model.has_gradients else "black-box (scores)"
        if not model.has_scores:
            access = "black-box (labels)"
        return LoadReport(
            path=str(self.path),
            format=fmt,
            adapter=type(model).__name__,
            access=access,
            reason=reason,
            settings=settings_record(spec),
            class_names=spec.class_names,
        )


def _dispatch(ctx: _Load) -> tuple[BaseClassifier, LoadReport]:
    """Recognise the format from the bytes (not the name) and load it."""
    path, data = ctx.path, ctx.data
    if zipfile.is_zipfile(io.BytesIO(data)):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = archive.namelist()
                # Neither torch nor skops checks the CRCs: a flipped byte would load
                # as silently wrong weights.
                damaged = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            damaged = _first_line(e)
        if damaged is not None:
            raise ValueError(
                f"{str(path)!r} is a corrupt archive ({damaged} is damaged; a partial "
                f"download or copy?); {_SUPPORTED}"
            )
        if "schema.json" in names:
            return _load_skops(ctx)
        if torch_files.is_torchscript(names):
            return _load_torchscript(ctx)
        if torch_files.is_export(names):
            return _load_export(ctx, names)
        if any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
            return _load_torch(ctx)
        raise ValueError(f"{str(path)!r} is a zip archive but not a model file ({_SUPPORTED})")
    if data[:4] == b"PK\x03\x04":
        raise ValueError(
            f"{str(path)!r} is a truncated or corrupt archive (a partial download or copy?); "
            f"{_SUPPORTED}"
        )
    library = boosters.sniff_booster(data)
    if library is not None:
        return _load_booster(ctx, library)
    if torch_files.is_safetensors(data):
        state = torch_files.load_safetensors(path, data)
        return _from_state_dict(ctx, state, "safetensors", "a .safetensors file of tensors")
    if path.suffix.lower() in _PICKLE_SUFFIXES or data[:1] == b"\x80":
        if path.suffix.lower() not in _PICKLE_SUFFIXES:
            # torch.save's legacy (non-zip) format is a pickle too: read what needs no
            # trust (tensors and plain data) before asking for it.
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # "pickle protocol 4"
                    obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            except Exception:
                obj = None
            if obj is not None:
                return _from_torch_object(ctx, obj)
        if not ctx.trust:
            raise UntrustedFileError(
                f"{str(path)!r} is a pickle/joblib file: loading it would run code from the "
                f"file; {_TRUST_HINT}"
            )
        return _load_pickle(ctx)
    graph = onnx_format.read_graph(path, data)
    if graph is not None:
        return _load_onnx(ctx, graph)
    raise ValueError(f"{str(path)!r} is not a model file advml can read ({_SUPPORTED})")


# -- PyTorch ---------------------------------------------------------------------------
def _load_torch(ctx: _Load) -> tuple[BaseClassifier, LoadReport]:
    """A ``torch.save`` zip archive: an advml file, a state dict or checkpoint, or (only
    when trusted) a pickled ``nn.Module``."""
    path = ctx.path
    try:
        obj = torch.load(io.BytesIO(ctx.data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if not ctx.trust:
            raise UntrustedFileError(
                f"{str(path)!r} is a PyTorch file holding Python objects beyond tensors and "
                f"plain data (a whole pickled nn.Module?); unpickling it can run code from "
                f"the file. {_TRUST_HINT}; or save model.state_dict() and load it with "
                f"--model-factory"
            ) from None
        try:
            obj = torch.load(io.BytesIO(ctx.data), map_location="cpu", weights_only=False)
        except Exception as e:
            raise ValueError(
                f"{str(path)!r} could not be unpickled ({_first_line(e)}); the classes it "
                f"holds must be importable (run from the folder of their code)"
            ) from None
    except Exception as e:  # torch raises many types for damaged files
        raise ValueError(
            f"{str(path)!r} is a damaged PyTorch file ({_first_line(e)}); {_SUPPORTED}"
        ) from None
    return _from_torch_object(ctx, obj)


def _from_torch_object(ctx: _Load, obj: Any) -> tuple[BaseClassifier, LoadReport]:
    path = ctx.path
    if isinstance(obj, dict) and obj.get("format") == TORCH_FORMAT:
        return _load_advml_torch(ctx, obj)
    if isinstance(obj, nn.Module):  # only reached with trust: weights_only refuses modules
        spec = ctx.complete(ctx.spec)
        model, spec = torch_files.torch_adapter(obj, spec, path, ctx.device)
        reason = "a pickled nn.Module, unpickled because the file is trusted"
        return model, ctx.report("pickle", model, reason, spec)
    found = torch_files.find_state_dict(obj)
    if found is not None:
        state, note = found
        return _from_state_dict(ctx, state, "state_dict", note)
    raise ValueError(
        f"{str(path)!r} is a PyTorch file but holds a {type(obj).__name__} that is neither "
        f"an advml model, a state dict nor a checkpoint with one ({_SUPPORTED})"
    )


def _from_state_dict(
    ctx: _Load, state: dict[str, torch.Tensor], fmt: str, note: str
) -> tuple[BaseClassifier, LoadReport]:
    if ctx.module is not None:
        net = ctx.module
        how = "the module given"
    else:
        net = torch_files.module_from_factory(ctx.spec, ctx.path, f"{fmt} file")
        how = f"the network {_factory_name(ctx.spec)} builds"
    torch_files.load_weights(net, state, ctx.path)
    spec = ctx.complete(ctx.spec)
    model, spec = torch_files.torch_adapter(net, spec, ctx.path, ctx.device)
    return model, ctx.report(fmt, model, f"{note}, loaded into {how}", spec)


def _factory_name(spec: ModelSpec) -> str:
    f = spec.factory
    return f if isinstance(f, str) else getattr(f, "__qualname__", "the factory")


def _load_torchscript(ctx: _Load) -> tuple[BaseClassifier, LoadReport]:
    net = torch_files.load_torchscript(ctx.path, ctx.data)
    spec = ctx.complete(ctx.spec)
    model, spec = torch_files.torch_adapter(net, spec, ctx.path, ctx.device)
    reason = "a TorchScript archive (torch.jit.save), run by TorchScript with gradients"
    return model, ctx.report("torchscript", model, reason, spec)


def _load_export(ctx: _Load, names: list[str]) -> tuple[BaseClassifier, LoadReport]:
    net, shape, batch, classes = torch_files.load_export(ctx.path, ctx.data, names, ctx.trust)
    spec = ctx.spec.with_value("input_shape", shape, "graph").with_value(
        "classes", classes, "graph"
    )
    spec = ctx.complete(spec)
    model, spec = torch_files.torch_adapter(net, spec, ctx.path, ctx.device)
    reason = "a torch.export program (.pt2), its module() run with gradients"
    if batch is not None:
        reason += f"; its graph fixes the batch at {batch}, so inputs go through in chunks"
    return model, ctx.report("torch.export", model, reason, spec)


def _load_advml_torch(ctx: _Load, obj: dict[str, Any]) -> tuple[BaseClassifier, LoadReport]:
    path = ctx.path
    check_file_version(path, obj.get("version"), FORMAT_VERSION, "advml file")
    state = _field(path, obj, "state_dict", dict)
    name = _field(path, obj, "architecture", (str, type(None)))
    kwargs = _field(path, obj, "architecture_kwargs", dict)
    module = ctx.module
    how = f"architecture {name!r} rebuilt"
    if module is None and (name is None or ctx.spec.factory is not None):
        if ctx.spec.factory is None:
            raise ValueError(
                f"{str(path)!r} was saved from a network that is not one of advml's "
                f"architectures, so advml cannot rebuild it; pass --model-factory "
                f"package.module:callable (Python: factory=, or module=) with "
                f"--model-kwargs for the network's code"
            )
        module = torch_files.module_from_factory(ctx.spec, path, "advml file")
        how = f"weights loaded into the network {_factory_name(ctx.spec)} builds"
    if module is None:
        try:
            _check_shapes_before_building(path, str(name), kwargs, state)
            # A loaded model is for inference: eval mode (dropout off) from the start.
            module = architectures.build(str(name), **kwargs).eval()
        except (TypeError, ValueError, RuntimeError) as e:
            raise ValueError(
                f"{str(path)!r}: cannot rebuild architecture {name!r} ({_first_line(e)}); "
                f"pass --model-factory (Python: factory= or module=) to load the weights "
                f"into your own network"
            ) from None
    elif not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    elif ctx.module is not None:
        how = "weights loaded into the module given"
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(
            f"{str(path)!r}: the weights do not fit the network ({_first_line(e)}); pass "
            f"--model-factory (Python: factory= or module=) with the architecture the "
            f"model was saved from"
        ) from None
    spec = ctx.spec
    stored_pre = obj.get("preprocessing")
    if stored_pre is not None and spec.mean is None and spec.std is None:
        try:
            mean, std = (tuple(float(v) for v in np.ravel(p)) for p in stored_pre)
        except (TypeError, ValueError):
            raise ValueError(f"{str(path)!r} holds invalid model settings: preprocessing") from None
        spec = spec.with_value("mean", mean, "file").with_value("std", std, "file")
    spec = (
        spec.with_value("input_shape", tuple(_field(path, obj, "input_shape", list)), "file")
        .with_value("classes", _field(path, obj, "n_classes", int), "file")
        .with_value("bounds", tuple(_field(path, obj, "bounds", list)), "file")
    )
    if spec.classes is not None and spec.n_classes != obj["n_classes"]:
        raise ValueError(
            f"{str(path)!r} holds a model of {obj['n_classes']} classes, but "
            f"--classes gives {spec.n_classes}"
        )
    try:
        model = TorchClassifier(
            module,
            input_shape=tuple(spec.input_shape or ()),
            n_classes=int(spec.n_classes or 0),
            bounds=spec.bounds or (0.0, 1.0),
            preprocessing=_stored_preprocessing(stored_pre, spec),
            device=ctx.device,
        )
        for layer, mask in (obj.get("unit_masks") or {}).items():
            model.set_unit_mask(layer, mask)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{str(path)!r} holds invalid model settings: {e}") from None
    return model, ctx.report("advml", model, f"a file written by advml's save_model; {how}", spec)


def _stored_preprocessing(stored: Any, spec: ModelSpec) -> Any:
    """The file's own (mean, std) arrays unless the caller gave mean/std (which keep
    their shape: a per-pixel normalisation is not flattened to per-channel values)."""
    if spec.sources.get("mean") == "file" and spec.sources.get("std") == "file":
        return tuple(stored)
    return spec.preprocessing()


# -- ONNX --------------------------------------------------------------------------------
def _load_onnx(ctx: _Load, graph: onnx_format.OnnxGraph) -> tuple[BaseClassifier, LoadReport]:
    path = ctx.path
    if graph.n_inputs != 1:
        raise ValueError(
            f"{str(path)!r}: the ONNX graph takes {graph.n_inputs} inputs; advml needs a "
            f"model of one input batch"
        )
    spec = ctx.spec.with_value("input_shape", graph.input_shape, "graph").with_value(
        "classes", graph.n_classes, "graph"
    )
    spec = ctx.complete(spec)
    shape = spec.require("input_shape", path, "the ONNX graph does not fix the shape of one input")
    n_classes = spec.require("classes", path, "the ONNX graph does not fix the number of classes")
    bounds = spec.require("bounds", path, "the file does not say the valid input range")
    sess = onnx_format.session(path, graph)
    module, why = onnx_format.convert(graph, sess, tuple(shape), bounds)
    model: BaseClassifier
    if module is not None:
        model, spec = torch_files.torch_adapter(module, spec, path, ctx.device)
        reason = f"white-box: {why}"
    else:
        try:
            model = onnx_format.OnnxRuntimeClassifier(
                sess,
                input_shape=tuple(shape),
                n_classes=int(spec.n_classes or n_classes),
                bounds=bounds,
                input_name=graph.input_name,
                output_index=graph.output_index,
                batch=graph.batch,
                returns_probabilities=graph.returns_probabilities,
                preprocessing=spec.preprocessing(),
                device=ctx.device,
            )
        except (TypeError, ValueError) as e:
            raise ValueError(f"{str(path)!r}: {e}") from None
        reason = f"black-box through onnxruntime: {why}"
    return model, ctx.report("onnx", model, reason, spec)


# -- boosters ----------------------------------------------------------------------------
def _load_booster(ctx: _Load, library: boosters.Library) -> tuple[BaseClassifier, LoadReport]:
    path = ctx.path
    booster, n_classes, objective = boosters.load_booster(path, ctx.data, library)
    features = boosters._n_features(booster, library)
    spec = ctx.complete(ctx.spec.with_value("classes", n_classes, "file"))
    if features is not None:
        # After the defaults: the dataset's (1, 8, 8) is as good as the file's 64
        # features when the sizes agree (BoosterClassifier checks that they do).
        spec = spec.with_value("input_shape", (features,), "file")
    if spec.n_classes != n_classes:
        raise ValueError(
            f"{str(path)!r} is a {library} model of {n_classes} classes, but --classes "
            f"gives {spec.n_classes}"
        )
    shape = spec.require("input_shape", path, "the file does not say how many features")
    bounds = spec.require("bounds", path, "the file does not say the valid input range")
    try:
        model = boosters.BoosterClassifier(
            booster,
            library=library,
            n_classes=n_classes,
            input_shape=tuple(shape),
            bounds=bounds,
            preprocessing=spec.preprocessing(),
            device=ctx.device,
        )
    except (TypeError, ValueError) as e:
        raise ValueError(f"{str(path)!r}: {e}") from None
    reason = (
        f"a {library} model file (objective {objective}); trees answer with scores but "
        f"no gradients, the booster is kept as .booster"
    )
    return model, ctx.report(library, model, reason, spec)


# -- scikit-learn and pickles ------------------------------------------------------------
def _load_skops(ctx: _Load) -> tuple[BaseClassifier, LoadReport]:
    import skops.io

    path, data = ctx.path, ctx.data
    try:
        untrusted = list(skops.io.get_untrusted_types(data=data))
    except Exception as e:  # skops raises many types for damaged files
        raise ValueError(f"{str(path)!r} is a damaged .skops file ({_first_line(e)})") from None
    refused = [t for t in untrusted if not _allowed_type(t)]
    if refused and not ctx.trust:
        raise UntrustedFileError(
            f"{str(path)!r} holds types that are not scikit-learn, NumPy, SciPy or built-in "
            f"classes: {', '.join(refused)}. Loading them could run their code; {_TRUST_HINT}"
        )
    try:
        obj = skops.io.loads(data, trusted=untrusted)
    except Exception as e:
        raise ValueError(f"{str(path)!r} is a damaged .skops file ({_first_line(e)})") from None
    return _sklearn_model(ctx, obj, "skops")


def _load_pickle(ctx: _Load) -> tuple[BaseClassifier, LoadReport]:
    path, data = ctx.path, ctx.data
    try:
        try:
            import joblib
        except ImportError:
            obj = pickle.loads(data)  # the caller passed trust=True
        else:
            obj = joblib.load(io.BytesIO(data))
    except Exception as e:
        raise ValueError(f"{str(path)!r} could not be unpickled ({_first_line(e)})") from None
    if isinstance(obj, BaseClassifier):
        return obj, ctx.report("pickle", obj, "a pickled advml model (trusted)", ctx.spec)
    if isinstance(obj, nn.Module) or torch_files.find_state_dict(obj) is not None:
        return _from_torch_object(ctx, obj)
    return _sklearn_model(ctx, obj, "pickle")


def _sklearn_model(ctx: _Load, obj: Any, fmt: str) -> tuple[BaseClassifier, LoadReport]:
    path = ctx.path
    spec = ctx.spec
    if spec.mean is not None or spec.std is not None:
        raise ValueError(
            f"--mean/--std apply to neural networks; for the scikit-learn model in "
            f"{str(path)!r} put the scaling in its pipeline (sklearn.preprocessing)"
        )
    if isinstance(obj, dict) and obj.get("format") == SKLEARN_FORMAT:
        check_file_version(path, obj.get("version"), FORMAT_VERSION, "advml file")
        estimator = obj.get("estimator")
        stored_bounds = _field(path, obj, "bounds", list)
        spec = spec.with_value("bounds", (float(stored_bounds[0]), float(stored_bounds[1])), "file")
        stored_shape = obj.get("input_shape")
        if stored_shape is not None:
            spec = spec.with_value("input_shape", tuple(int(d) for d in stored_shape), "file")
        what = "a scikit-learn model written by advml's save_model"
    else:
        estimator = obj
        what = f"a bare {type(obj).__name__}"
    spec = ctx.complete(spec)
    if spec.bounds is None:
        raise ValueError(
            f"{str(path)!r} holds {what}, without the input bounds advml needs; pass "
            f"--bounds min,max (Python: bounds=(min, max)), and --input-shape for images"
        )
    if not callable(getattr(estimator, "predict", None)):
        raise ValueError(
            f"{str(path)!r} holds a {type(estimator).__name__}, not a fitted scikit-learn "
            f"classifier"
        )
    model = SklearnClassifier(
        estimator, bounds=spec.bounds, input_shape=spec.input_shape, device=ctx.device
    )
    n_classes = spec.n_classes
    if (
        n_classes is not None
        and spec.sources.get("classes") != "dataset"
        and n_classes != model.n_classes
    ):
        raise ValueError(
            f"{str(path)!r} holds a classifier of {model.n_classes} classes, but --classes "
            f"gives {n_classes}"
        )
    reason = (
        f"{what}; white-box through its exact differentiable form"
        if model.has_gradients
        else f"{what}; black-box through predict/predict_proba (no exact gradients)"
    )
    return model, ctx.report(fmt, model, reason, spec)


def _check_shapes_before_building(
    path: pathlib.Path, name: str, kwargs: dict[str, Any], state: dict[str, Any]
) -> None:
    """Refuse architecture_kwargs that do not match the stored weights, before allocating.

    The kwargs come from the file: ``hidden=[60000, 60000]`` in a file of a few hundred
    kilobytes would make ``build`` allocate gigabytes before ``load_state_dict`` found
    the mismatch. On PyTorch's ``meta`` device the network is built without memory, so
    its parameter names and shapes can be compared with the tensors the file holds.
    """
    with torch.device("meta"):
        skeleton = architectures.build(name, **kwargs)
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    stored = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    if len(stored) != len(state):
        raise ValueError("field 'state_dict' holds values that are not tensors")
    if expected == stored:
        return
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    wrong = [k for k in expected if k in stored and expected[k] != stored[k]]
    details = [
        *(f"missing {k}" for k in missing[:3]),
        *(f"unexpected {k}" for k in unexpected[:3]),
        *(f"{k}: file {stored[k]}, architecture {expected[k]}" for k in wrong[:3]),
    ]
    raise ValueError(
        f"architecture_kwargs={kwargs!r} do not match the weights in the file "
        f"({'; '.join(details)})"
    )


def _allowed_type(name: str) -> bool:
    """A class (not a function) from scikit-learn, NumPy, SciPy or ``builtins``.

    Functions are refused even from those libraries: ``builtins.eval`` or ``numpy.load``
    inside, say, a FunctionTransformer would run on the inputs the model is given.
    """
    if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+", name):
        return False
    parts = name.split(".")
    if parts[0] == "builtins":
        return len(parts) == 2 and isinstance(getattr(builtins, parts[1], None), type)
    if parts[0] not in _SAFE_ROOTS:
        return False
    for split in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attr in parts[split:]:
            obj = getattr(obj, attr, None)
        return isinstance(obj, type)
    return False


def _field(path: pathlib.Path, obj: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in obj or not isinstance(obj[key], kind):
        raise ValueError(
            f"{str(path)!r} is a damaged advml file: field {key!r} is missing or invalid"
        )
    return obj[key]


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"
