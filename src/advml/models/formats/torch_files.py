"""PyTorch networks from files other than advml's own: TorchScript archives,
``torch.export`` programs, state dicts (``.pt`` or ``.safetensors``) loaded into the
network a factory builds, and - only when trusted - pickles of whole modules."""

from __future__ import annotations

import io
import json
import pathlib
import pickle
import warnings
import zipfile
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from advml.errors import UntrustedFileError
from advml.models.formats.spec import ModelSpec, import_factory
from advml.models.torch import TorchClassifier

__all__ = [
    "FixedBatch",
    "Frozen",
    "Scripted",
    "find_state_dict",
    "load_export",
    "load_safetensors",
    "load_torchscript",
    "module_from_factory",
    "torch_adapter",
    "without_layer_hooks",
]

# Probe inputs a loader runs (counting classes, comparing a conversion): few and seeded.
PROBE_SEED = 20240613


class Frozen(nn.Module):
    """A network whose train/eval mode cannot be switched (an exported program's graph
    has it baked in and refuses ``.eval()``); the adapter's mode switch stops here."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def train(self, mode: bool = True) -> Frozen:
        self.training = mode
        return self

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.inner(x)
        return out


class Scripted(nn.Module):
    """A TorchScript module that copies correctly: ``copy.deepcopy`` of a ScriptModule
    gives parameters that are not leaves (they cannot be trained), so a copy is made by
    saving and loading the scripted module again."""

    def __init__(self, inner: torch.jit.ScriptModule) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.inner(x)
        return out

    def __deepcopy__(self, memo: dict[int, Any]) -> Scripted:
        buffer = io.BytesIO()
        torch.jit.save(self.inner, buffer)
        buffer.seek(0)
        param = next(iter(self.inner.parameters()), None)
        device = param.device if param is not None else torch.device("cpu")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            twin = Scripted(torch.jit.load(buffer, map_location=device))
        twin.train(self.training)
        return twin


class FixedBatch(nn.Module):
    """Runs a network whose graph fixes the batch size on any batch: inputs go through in
    chunks of that size, the last one padded with zeros whose outputs are dropped.
    Gradients flow through, so the wrapped network stays white-box."""

    def __init__(self, inner: nn.Module, batch: int) -> None:
        super().__init__()
        self.inner = inner
        self.batch = int(batch)

    def forward(self, x: Tensor) -> Tensor:
        n, b = x.shape[0], self.batch
        if n == b:
            out: Tensor = self.inner(x)
            return out
        parts = []
        for start in range(0, n, b):
            chunk = x[start : start + b]
            short = b - chunk.shape[0]
            if short:
                chunk = torch.cat([chunk, chunk.new_zeros((short, *chunk.shape[1:]))])
            parts.append(self.inner(chunk)[: b - short])
        return torch.cat(parts)


def torch_adapter(
    module: nn.Module,
    spec: ModelSpec,
    path: pathlib.Path,
    device: torch.device | str | None,
) -> tuple[TorchClassifier, ModelSpec]:
    """A :class:`TorchClassifier` of ``module`` with the spec's settings; the class count,
    when not given, is the size of the network's output on one probe input."""
    shape = spec.require("input_shape", path, "the file does not say what shape one input has")
    bounds = spec.require("bounds", path, "the file does not say the valid input range")
    module = module.to(device) if device is not None else module
    if spec.n_classes is None:
        probe_device = device if device is not None else _device_of(module)
        low, high = bounds
        x = low + (high - low) * torch.rand(
            2, *shape, generator=torch.Generator().manual_seed(PROBE_SEED)
        )
        try:
            with torch.no_grad():
                module.eval()
                out = module(x.to(probe_device))
        except Exception as e:
            raise ValueError(
                f"{str(path)!r}: the network fails on inputs of shape {tuple(shape)} "
                f"({type(e).__name__}: {str(e).strip().splitlines()[0] if str(e) else ''}); "
                f"check --input-shape (Python: input_shape=)"
            ) from None
        if not isinstance(out, Tensor) or out.ndim != 2 or out.shape[1] < 2:
            raise ValueError(
                f"{str(path)!r}: the network returns "
                f"{tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__} for 2 "
                f"inputs of shape {tuple(shape)}; advml needs scores of shape (n, classes)"
            )
        spec = spec.with_value("classes", int(out.shape[1]), "output size")
    try:
        model = TorchClassifier(
            module.eval(),
            input_shape=tuple(shape),
            n_classes=int(spec.n_classes or 0),
            bounds=bounds,
            preprocessing=spec.preprocessing(),
            device=device,
        )
    except (TypeError, ValueError) as e:
        raise ValueError(f"{str(path)!r}: {e}") from None
    return model, spec


def _device_of(module: nn.Module) -> torch.device:
    param = next(iter(module.parameters()), None)
    return param.device if param is not None else torch.device("cpu")


# -- TorchScript ---------------------------------------------------------------------
def is_torchscript(names: list[str]) -> bool:
    """A ``torch.jit.save`` archive: constants and TorchScript code beside the weights."""
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


def load_torchscript(path: pathlib.Path, data: bytes) -> nn.Module:
    """The scripted network. ``torch.jit.load`` reads the archive with TorchScript's own
    unpickler (no Python classes) and compiles its TorchScript code."""
    try:
        with warnings.catch_warnings():
            # torch 2.9+ calls TorchScript deprecated; the user's file is what it is.
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(io.BytesIO(data), map_location="cpu")
    except Exception as e:  # torch raises RuntimeError and others for damaged archives
        raise ValueError(
            f"{str(path)!r} is a damaged TorchScript archive ({_first_line(e)})"
        ) from None
    return Scripted(module)


# -- torch.export ---------------------------------------------------------------------
def is_export(names: list[str]) -> bool:
    """A ``torch.export.save`` archive (``.pt2``)."""
    return any(n.endswith("/archive_format") for n in names) and any("/models/" in n for n in names)


def load_export(
    path: pathlib.Path, data: bytes, names: list[str], trust: bool
) -> tuple[nn.Module, tuple[int, ...] | None, int | None, int | None]:
    """The program's module, with the input shape, batch size (when the graph fixes it)
    and class count its signature records.

    ``torch.export.load`` unpickles (with ``weights_only=False``) any weight or constant
    the archive marks as pickled, opaque objects and sample inputs that do not load as
    plain tensors: each is checked here first and refused unless ``trust``.
    """
    if not trust:
        _check_export_archive(path, data, names)
    try:
        program = torch.export.load(io.BytesIO(data))
    except Exception as e:
        raise ValueError(
            f"{str(path)!r} is a damaged torch.export archive ({_first_line(e)})"
        ) from None
    shape: tuple[int, ...] | None = None
    batch: int | None = None
    classes: int | None = None
    user_inputs = list(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        if node.op == "placeholder" and user_inputs and node.name == user_inputs[0]:
            val = node.meta.get("val")
            dims = list(getattr(val, "shape", []))
            if len(dims) >= 2 and all(isinstance(d, int) for d in dims[1:]):
                shape = tuple(int(d) for d in dims[1:])
            if dims and isinstance(dims[0], int):
                batch = int(dims[0])
        if node.op == "output":
            outs = node.args[0] if node.args else ()
            first = outs[0] if isinstance(outs, list | tuple) and outs else outs
            val = getattr(first, "meta", {}).get("val") if first is not None else None
            dims = list(getattr(val, "shape", []))
            if len(dims) == 2 and isinstance(dims[1], int):
                classes = int(dims[1])
    if len(user_inputs) != 1:
        raise ValueError(
            f"{str(path)!r}: the exported program takes {len(user_inputs)} inputs; advml "
            f"needs a network of one input batch"
        )
    module: nn.Module = Frozen(program.module())
    if batch is not None:
        module = FixedBatch(module, batch)
    return module, shape, batch, classes


def _check_export_archive(path: pathlib.Path, data: bytes, names: list[str]) -> None:
    refuse = (
        f"{str(path)!r}: the torch.export archive holds pickled Python objects "
        "({what}) that torch.export.load would unpickle, which can run code; pass "
        "trust=True (CLI: --trust-model-file) only for files you made yourself"
    )
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in names:
            base = name.split("/", 1)[1] if "/" in name else name
            if base.endswith("_config.json") and base.startswith("data/"):
                try:
                    config = json.loads(archive.read(name))
                except (json.JSONDecodeError, UnicodeDecodeError):
                    raise ValueError(
                        f"{str(path)!r} is a damaged torch.export archive ({name} is not JSON)"
                    ) from None
                for fqn, meta in dict(config.get("config", {})).items():
                    if not isinstance(meta, dict):
                        continue
                    file_name = str(meta.get("path_name", ""))
                    if meta.get("use_pickle") or not file_name.startswith(("weight_", "tensor_")):
                        raise UntrustedFileError(refuse.format(what=f"{fqn}: {file_name}"))
            elif base.startswith("data/sample_inputs/") or (
                base.startswith(("data/weights/", "data/constants/")) and base.endswith(".pt")
            ):
                blob = archive.read(name)
                if not blob:
                    continue
                try:
                    torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
                except pickle.UnpicklingError:
                    raise UntrustedFileError(refuse.format(what=base)) from None
                except Exception as e:
                    raise ValueError(
                        f"{str(path)!r} is a damaged torch.export archive ({base}: "
                        f"{_first_line(e)})"
                    ) from None


# -- state dicts + a factory ------------------------------------------------------------
_CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model", "net", "weights")


def find_state_dict(obj: Any) -> tuple[dict[str, Tensor], str] | None:
    """The state dict inside ``obj`` and a note on where it was, or None.

    A bare dict of tensors, or a training checkpoint holding one under a usual key
    (``state_dict``, ``model_state_dict``, ``model``...). The ``module.`` prefix that
    ``DataParallel`` adds is removed.
    """
    note = "a state dict"
    if isinstance(obj, Mapping) and not _all_tensors(obj):
        for key in _CHECKPOINT_KEYS:
            if isinstance(obj.get(key), Mapping) and _all_tensors(obj[key]):
                obj, note = obj[key], f"the state dict under key {key!r} of a checkpoint"
                break
    if not isinstance(obj, Mapping) or not _all_tensors(obj):
        return None
    state = {str(k): v for k, v in obj.items()}
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
        note += " (DataParallel's 'module.' prefix removed)"
    return state, note


def _all_tensors(obj: Mapping[Any, Any]) -> bool:
    return bool(obj) and all(isinstance(v, Tensor) for v in obj.values())


def load_safetensors(path: pathlib.Path, data: bytes) -> dict[str, Tensor]:
    """The tensors of a ``.safetensors`` file (a JSON header and raw tensor bytes)."""
    try:
        import safetensors.torch
    except ImportError as e:
        raise ImportError(
            "reading .safetensors files needs the safetensors package: pip install "
            "'advml[formats]' (or pip install safetensors)"
        ) from e
    try:
        return dict(safetensors.torch.load(data))
    except Exception as e:
        raise ValueError(
            f"{str(path)!r} is a damaged .safetensors file ({_first_line(e)})"
        ) from None


def is_safetensors(data: bytes) -> bool:
    """An 8-byte little-endian header length, then a JSON header."""
    if len(data) < 10:
        return False
    size = int.from_bytes(data[:8], "little")
    return 2 <= size <= len(data) - 8 and data[8:9] == b"{"


def module_from_factory(spec: ModelSpec, path: pathlib.Path, what: str) -> nn.Module:
    """The network the factory builds: the one place advml runs the user's code."""
    factory = spec.require("factory", path, f"{what} holds weights only, not the network")
    fn = import_factory(factory)
    kwargs = spec.factory_kwargs or {}
    name = factory if isinstance(factory, str) else getattr(factory, "__qualname__", "factory")
    try:
        module = fn(**kwargs)
    except TypeError as e:
        raise ValueError(
            f"--model-factory {name} with --model-kwargs {json.dumps(kwargs)}: {e}"
        ) from None
    if not isinstance(module, nn.Module):
        raise ValueError(
            f"--model-factory {name} returned {type(module).__name__}, not a torch.nn.Module"
        )
    return module


def load_weights(module: nn.Module, state: Mapping[str, Tensor], path: pathlib.Path) -> None:
    """``load_state_dict(strict=True)``, with an error naming the factory flags."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(
            f"{str(path)!r}: the weights do not fit the network the factory built "
            f"({_summarise_mismatch(e)}); check --model-factory and --model-kwargs"
        ) from None


def _summarise_mismatch(e: RuntimeError) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return "; ".join(lines[1:4]) if len(lines) > 1 else _first_line(e)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


def without_layer_hooks(module: nn.Module) -> str | None:
    """Why forward hooks on the network's layers would not work (so activations cannot
    be read nor units pruned), or None when they do."""
    for sub in module.modules():
        if isinstance(sub, torch.jit.ScriptModule):
            return "it is a TorchScript module, whose layers take no forward hooks"
        if isinstance(sub, Frozen):
            return "it is a torch.export graph, which calls no layer modules"
    return None
