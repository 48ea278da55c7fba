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
from typing import Any

import numpy as np
import torch
from torch import nn

from advml.errors import UntrustedFileError
from advml.models import architectures
from advml.models.base import BaseClassifier
from advml.models.sklearn import SklearnClassifier
from advml.models.torch import TorchClassifier
from advml.runtime.files import atomic_write, check_file_version
from advml.runtime.plain import plain
from advml.validation import check_bool

__all__ = ["load_model", "save_model"]

TORCH_FORMAT = "advml-torch"
SKLEARN_FORMAT = "advml-sklearn"
FORMAT_VERSION = 1

_PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
_SAFE_ROOTS = ("sklearn", "numpy", "scipy")
_SUPPORTED = (
    "supported: files written by advml's save_model (PyTorch), .skops files, and - only "
    "with trust=True - .pkl/.pickle/.joblib files"
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
    bounds: tuple[float, float] | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> BaseClassifier:
    """Load a model saved by :func:`save_model`, a ``.skops`` file, or a trusted pickle.

    The format is recognised from the file's content, not its name. Nothing in the file
    is executed: PyTorch files are read with ``torch.load(..., weights_only=True)``;
    ``.skops`` files may contain only classes from scikit-learn, NumPy, SciPy and
    Python's built-ins (any other type needs ``trust=True``); pickle and joblib files
    are refused unless ``trust=True``.

    Parameters
    ----------
    path : str or path-like
        The model file.
    module : torch.nn.Module, optional
        Network to load PyTorch weights into, instead of rebuilding the architecture
        recorded in the file (required when the file records none).
    trust : bool
        Load types outside the allow-list and pickle/joblib files, which can run code
        from the file. Only for files you made yourself. Default False. Must be the
        bool ``True`` or ``False``: a string such as ``"false"`` is refused, not taken
        as true.
    device : torch.device or str, optional
        Device of the returned model; CPU by default.
    bounds : (float, float), optional
        Input bounds; required for a bare scikit-learn estimator (a ``.skops`` or pickle
        file not written by :func:`save_model`), and overriding the stored bounds of an
        advml file otherwise.
    input_shape : tuple of int, optional
        Shape of one input, for scikit-learn estimators (default: their
        ``n_features_in_``); overrides the stored shape of an advml file.

    Returns
    -------
    BaseClassifier
        A :class:`~advml.models.TorchClassifier` or
        :class:`~advml.models.SklearnClassifier` (or, for a trusted pickle of an advml
        model, that model).

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a file.
    UntrustedFileError
        If loading would run code or use types not on the allow-list and
        ``trust=False``.
    TypeError
        If ``trust`` is not a bool.
    ValueError
        If the file is corrupt, truncated, of an unknown format, or needs ``module=``
        or ``bounds=``, or if the architecture it names does not match the weights it
        holds (checked before the network is built, so a file cannot make advml
        allocate a network far larger than itself).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from advml.models import SklearnClassifier, load_model, save_model
    >>> x = np.random.default_rng(0).random((30, 3))
    >>> est = LogisticRegression().fit(x, (x[:, 0] > 0.5).astype(int))
    >>> path = save_model(SklearnClassifier(est, bounds=(0, 1)),
    ...                   pathlib.Path(tempfile.mkdtemp()) / "lr.skops")
    >>> load_model(path).white_box
    True
    """
    # A truthy string ("false") must not switch unpickling on.
    check_bool("trust", trust)
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {str(path)!r} does not exist or is not a file")
    if bounds is not None:
        bounds = (float(bounds[0]), float(bounds[1]))
    # One read: the bytes checked are the bytes loaded.
    data = path.read_bytes()
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
            return _load_skops(path, data, trust, device, bounds, input_shape)
        if any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
            return _load_torch(path, data, module, device, bounds, input_shape)
        raise ValueError(f"{str(path)!r} is a zip archive but not a model file ({_SUPPORTED})")
    if data[:4] == b"PK\x03\x04":
        raise ValueError(
            f"{str(path)!r} is a truncated or corrupt archive (a partial download or copy?); "
            f"{_SUPPORTED}"
        )
    if path.suffix.lower() in _PICKLE_SUFFIXES or data[:1] == b"\x80":
        if not trust:
            raise UntrustedFileError(
                f"{str(path)!r} is a pickle/joblib file: loading it would run code from the "
                f"file; {_TRUST_HINT}"
            )
        return _load_pickle(path, data, device, bounds, input_shape)
    raise ValueError(f"{str(path)!r} is not a model file advml can read ({_SUPPORTED})")


def _load_torch(
    path: pathlib.Path,
    data: bytes,
    module: nn.Module | None,
    device: torch.device | str | None,
    bounds: tuple[float, float] | None,
    input_shape: tuple[int, ...] | None,
) -> TorchClassifier:
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise UntrustedFileError(
            f"{str(path)!r} is a PyTorch file holding Python objects beyond tensors and "
            f"plain data (a whole pickled nn.Module?); advml reads only files written by "
            f"save_model. If you made it yourself, load it with torch.load, wrap the "
            f"network in TorchClassifier and save it with save_model"
        ) from None
    except Exception as e:  # torch raises many types for damaged files
        raise ValueError(
            f"{str(path)!r} is a damaged PyTorch file ({_first_line(e)}); {_SUPPORTED}"
        ) from None
    if not isinstance(obj, dict) or obj.get("format") != TORCH_FORMAT:
        looks_like = (
            " (it looks like a bare state_dict: build the network, call load_state_dict, "
            "wrap it in TorchClassifier and save it with save_model)"
            if isinstance(obj, dict)
            and obj
            and all(isinstance(v, torch.Tensor) for v in obj.values())
            else ""
        )
        raise ValueError(f"{str(path)!r} is a PyTorch file but not an advml model{looks_like}")
    check_file_version(path, obj.get("version"), FORMAT_VERSION, "advml file")
    state = _field(path, obj, "state_dict", dict)
    name = _field(path, obj, "architecture", (str, type(None)))
    kwargs = _field(path, obj, "architecture_kwargs", dict)
    if module is None:
        if name is None:
            raise ValueError(
                f"{str(path)!r} was saved without an architecture name, so advml cannot "
                f"rebuild the network; pass module= (an nn.Module of the same architecture)"
            )
        try:
            _check_shapes_before_building(path, name, kwargs, state)
            # A loaded model is for inference: eval mode (dropout off) from the start.
            module = architectures.build(name, **kwargs).eval()
        except (TypeError, ValueError, RuntimeError) as e:
            raise ValueError(
                f"{str(path)!r}: cannot rebuild architecture {name!r} ({_first_line(e)}); "
                f"pass module= to load the weights into your own network"
            ) from None
    elif not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(
            f"{str(path)!r}: the weights do not fit the network ({_first_line(e)}); pass "
            f"module= with the architecture the model was saved from"
        ) from None
    preprocessing = obj.get("preprocessing")
    try:
        model = TorchClassifier(
            module,
            input_shape=tuple(input_shape or _field(path, obj, "input_shape", list)),
            n_classes=_field(path, obj, "n_classes", int),
            bounds=bounds or tuple(_field(path, obj, "bounds", list)),
            preprocessing=None if preprocessing is None else tuple(preprocessing),
            device=device,
        )
        for layer, mask in (obj.get("unit_masks") or {}).items():
            model.set_unit_mask(layer, mask)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{str(path)!r} holds invalid model settings: {e}") from None
    return model


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


def _load_skops(
    path: pathlib.Path,
    data: bytes,
    trust: bool,
    device: torch.device | str | None,
    bounds: tuple[float, float] | None,
    input_shape: tuple[int, ...] | None,
) -> SklearnClassifier:
    import skops.io

    try:
        untrusted = list(skops.io.get_untrusted_types(data=data))
    except Exception as e:  # skops raises many types for damaged files
        raise ValueError(f"{str(path)!r} is a damaged .skops file ({_first_line(e)})") from None
    refused = [t for t in untrusted if not _allowed_type(t)]
    if refused and not trust:
        raise UntrustedFileError(
            f"{str(path)!r} holds types that are not scikit-learn, NumPy, SciPy or built-in "
            f"classes: {', '.join(refused)}. Loading them could run their code; {_TRUST_HINT}"
        )
    try:
        obj = skops.io.loads(data, trusted=untrusted)
    except Exception as e:
        raise ValueError(f"{str(path)!r} is a damaged .skops file ({_first_line(e)})") from None
    return _sklearn_model(path, obj, device, bounds, input_shape)


def _load_pickle(
    path: pathlib.Path,
    data: bytes,
    device: torch.device | str | None,
    bounds: tuple[float, float] | None,
    input_shape: tuple[int, ...] | None,
) -> BaseClassifier:
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
        return obj
    return _sklearn_model(path, obj, device, bounds, input_shape)


def _sklearn_model(
    path: pathlib.Path,
    obj: Any,
    device: torch.device | str | None,
    bounds: tuple[float, float] | None,
    input_shape: tuple[int, ...] | None,
) -> SklearnClassifier:
    if isinstance(obj, dict) and obj.get("format") == SKLEARN_FORMAT:
        check_file_version(path, obj.get("version"), FORMAT_VERSION, "advml file")
        estimator = obj.get("estimator")
        stored_bounds = _field(path, obj, "bounds", list)
        if bounds is None:
            bounds = (float(stored_bounds[0]), float(stored_bounds[1]))
        stored_shape = obj.get("input_shape")
        if input_shape is None and stored_shape is not None:
            input_shape = tuple(int(d) for d in stored_shape)
    else:
        estimator = obj
    if bounds is None:
        raise ValueError(
            f"{str(path)!r} holds a bare {type(obj).__name__}, without the input bounds "
            f"advml needs; pass bounds=(min, max) (and input_shape= for images)"
        )
    if not callable(getattr(estimator, "predict", None)):
        raise ValueError(
            f"{str(path)!r} holds a {type(estimator).__name__}, not a fitted scikit-learn "
            f"classifier"
        )
    return SklearnClassifier(estimator, bounds=bounds, input_shape=input_shape, device=device)


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
