"""What a model file does not carry: input shape, classes, bounds, normalisation, and the
code that builds the network; where each came from; and the record of how a file loaded.

The values come, first to last, from the caller (CLI flags or keyword arguments), a
sidecar YAML file beside the model (``net.yaml`` for ``net.onnx``, else ``model.yaml``),
the model file itself (an advml file's stored settings, an ONNX graph's input shape),
and the caller's defaults (the commands pass the dataset's).
"""

from __future__ import annotations

import importlib
import json
import os
import pathlib
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

__all__ = [
    "FLAGS",
    "LoadReport",
    "ModelSpec",
    "dataset_defaults",
    "import_factory",
    "parse_classes",
    "parse_floats",
    "parse_kwargs",
    "parse_shape",
    "read_sidecar",
]

# Each setting, the CLI flag that gives it and the keyword of load_model: every message
# about a missing or invalid value names both.
FLAGS: dict[str, tuple[str, str]] = {
    "input_shape": ("--input-shape", "input_shape="),
    "classes": ("--classes", "classes="),
    "bounds": ("--bounds", "bounds="),
    "mean": ("--mean", "mean="),
    "std": ("--std", "std="),
    "factory": ("--model-factory", "factory="),
    "factory_kwargs": ("--model-kwargs", "factory_kwargs="),
}
_EXAMPLES = {
    "input_shape": "3,32,32",
    "classes": "10",
    "bounds": "0,1",
    "mean": "0.485,0.456,0.406",
    "std": "0.229,0.224,0.225",
    "factory": "mynets:Net",
    "factory_kwargs": "'{\"num_classes\": 10}'",
}
SIDECAR_KEYS = tuple(FLAGS)
_FACTORY = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def flag_hint(key: str) -> str:
    """``--input-shape 3,32,32 (Python: input_shape=)``: how to give ``key``."""
    flag, keyword = FLAGS[key]
    return f"{flag} {_EXAMPLES[key]} (Python: {keyword})"


# -- parsing: the same rules for flags, sidecar values and keyword arguments -----------
def parse_shape(name: str, value: Any) -> tuple[int, ...]:
    """``"3,32,32"``, ``[3, 32, 32]`` or ``64`` -> ``(3, 32, 32)``; positive sizes."""
    items: Sequence[Any]
    if isinstance(value, str):
        items = [v for v in value.replace("x", ",").split(",") if v.strip()]
    elif isinstance(value, int) and not isinstance(value, bool):
        items = [value]
    elif isinstance(value, Sequence):
        items = value
    else:
        raise ValueError(f"{name} must be sizes such as 3,32,32, got {value!r}")
    try:
        shape = tuple(int(str(v).strip()) for v in items)
    except ValueError:
        raise ValueError(f"{name} must be whole numbers such as 3,32,32, got {value!r}") from None
    if not shape or any(d < 1 for d in shape):
        raise ValueError(f"{name} must hold positive sizes such as 3,32,32, got {value!r}")
    return shape


def parse_classes(name: str, value: Any) -> int | tuple[str, ...]:
    """A class count (``10``, ``"10"``) or class names (``"cat,dog"``, ``["cat", "dog"]``)."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a class count or class names, got {value!r}")
    if isinstance(value, int):
        count: int | None = value
    elif isinstance(value, str) and value.strip().isdigit():
        count = int(value.strip())
    else:
        count = None
    if count is not None:
        if count < 2:
            raise ValueError(f"{name} must be at least 2 classes, got {value!r}")
        return count
    if isinstance(value, str):
        value = [v for v in value.split(",")]
    if not isinstance(value, Sequence) or not all(isinstance(v, str | int) for v in value):
        raise ValueError(
            f"{name} must be a class count (10) or class names (cat,dog), got {value!r}"
        )
    labels = tuple(str(v).strip() for v in value)
    if len(labels) < 2 or any(not v for v in labels) or len(set(labels)) != len(labels):
        raise ValueError(f"{name} must name at least 2 distinct, non-empty classes, got {value!r}")
    return labels


def parse_floats(name: str, value: Any, *, pair: bool = False) -> tuple[float, ...]:
    """``"0,1"``, ``[0, 1]`` or ``0.5`` -> floats; ``pair=True`` wants exactly two."""
    items: Sequence[Any]
    if isinstance(value, str):
        items = [v for v in value.split(",") if v.strip()]
    elif isinstance(value, int | float) and not isinstance(value, bool):
        items = [value]
    elif isinstance(value, Sequence):
        items = value
    else:
        items = [value]
    try:
        out = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers separated by commas, got {value!r}") from None
    if not out or not all(abs(v) < float("inf") for v in out):
        raise ValueError(f"{name} must be finite numbers, got {value!r}")
    if pair and (len(out) != 2 or out[0] >= out[1]):
        raise ValueError(f"{name} must be two numbers min,max with min < max, got {value!r}")
    return out


def parse_kwargs(name: str, value: Any) -> dict[str, Any]:
    """A JSON object (``'{"num_classes": 10}'``) or a mapping -> a dict with str keys."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise ValueError(
                f"{name} must be a JSON object such as '{{\"num_classes\": 10}}', got "
                f"{value!r} ({e.msg} at character {e.pos})"
            ) from None
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValueError(
            f"{name} must be a JSON object of keyword arguments such as "
            f"'{{\"num_classes\": 10}}', got {value!r}"
        )
    return dict(value)


# -- the settings -------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpec:
    """What the caller says about a model; any field may be None (not given).

    ``sources`` maps each field that has a value to where it came from: a flag
    (``--bounds``), a sidecar file, ``file`` or ``graph`` (read from the model),
    ``dataset`` (the command's default), or ``output size`` (classes counted on a probe).
    """

    input_shape: tuple[int, ...] | None = None
    classes: int | tuple[str, ...] | None = None
    bounds: tuple[float, float] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    factory: str | Callable[..., Any] | None = None
    factory_kwargs: dict[str, Any] | None = None
    sources: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_values(cls, values: Mapping[str, Any], source: str) -> ModelSpec:
        """Parse raw values (flags, sidecar entries, keyword arguments); ``None`` = not given."""
        parsed: dict[str, Any] = {}
        for key, value in values.items():
            if value is None:
                continue
            if source == "given":
                name = f"{FLAGS[key][0]} (Python: {FLAGS[key][1].rstrip('=')})"
            else:
                name = f"{key} (from {source})"
            if key == "input_shape":
                parsed[key] = parse_shape(name, value)
            elif key == "classes":
                parsed[key] = parse_classes(name, value)
            elif key == "bounds":
                low, high = parse_floats(name, value, pair=True)
                parsed[key] = (low, high)
            elif key in ("mean", "std"):
                parsed[key] = parse_floats(name, value)
                if key == "std" and any(v <= 0 for v in parsed[key]):
                    raise ValueError(f"{name} must be > 0, got {value!r}")
            elif key == "factory":
                if not callable(value) and not (
                    isinstance(value, str) and _FACTORY.fullmatch(value.strip())
                ):
                    raise ValueError(
                        f"{name} must name a callable as package.module:callable "
                        f"(e.g. mynets:Net), got {value!r}"
                    )
                parsed[key] = value.strip() if isinstance(value, str) else value
            elif key == "factory_kwargs":
                parsed[key] = parse_kwargs(name, value)
            else:
                raise ValueError(f"unknown model setting {key!r}")
        return cls(**parsed, sources={k: source for k in parsed})

    def over(self, other: ModelSpec) -> ModelSpec:
        """These values where given, ``other``'s elsewhere."""
        changes: dict[str, Any] = {}
        sources = dict(other.sources)
        for key in FLAGS:
            mine = getattr(self, key)
            if mine is not None:
                changes[key] = mine
                sources[key] = self.sources.get(key, "given")
        return replace(other, **changes, sources=sources)

    def with_value(self, key: str, value: Any, source: str) -> ModelSpec:
        """This spec with ``key`` set to ``value`` when it has none yet."""
        if getattr(self, key) is not None or value is None:
            return self
        return replace(self, **{key: value}, sources={**self.sources, key: source})

    @property
    def n_classes(self) -> int | None:
        """The class count, whether ``classes`` is a count or names."""
        if self.classes is None:
            return None
        return self.classes if isinstance(self.classes, int) else len(self.classes)

    @property
    def class_names(self) -> tuple[str, ...] | None:
        return self.classes if isinstance(self.classes, tuple) else None

    def preprocessing(self) -> tuple[Any, Any] | None:
        """``(mean, std)`` for the adapter (inputs stay in bounds units), or None."""
        if self.mean is None and self.std is None:
            return None
        mean: Any = self.mean if self.mean is not None else (0.0,)
        std: Any = self.std if self.std is not None else (1.0,)
        return (mean[0] if len(mean) == 1 else list(mean), std[0] if len(std) == 1 else list(std))

    def require(self, key: str, path: pathlib.Path, why: str) -> Any:
        """The value of ``key``, or ValueError naming the flag and the sidecar."""
        value = getattr(self, key)
        if value is None:
            raise ValueError(
                f"{str(path)!r}: {why}; pass {flag_hint(key)}, or write {key} in "
                f"{path.with_suffix('.yaml').name} or model.yaml beside the file"
            )
        return value


# -- the sidecar ------------------------------------------------------------------------
def sidecar_path(path: pathlib.Path) -> pathlib.Path | None:
    """``net.yaml`` beside ``net.onnx``, else ``model.yaml`` in that folder, else None."""
    for candidate in (path.with_suffix(".yaml"), path.with_name("model.yaml")):
        if candidate != path and candidate.is_file():
            return candidate
    return None


def read_sidecar(path: pathlib.Path) -> ModelSpec:
    """The settings of the sidecar YAML beside ``path`` (an empty spec without one).

    Raises
    ------
    ValueError
        For a sidecar that is not a YAML mapping, names an unknown key or holds an
        invalid value; the message names the sidecar and the key.
    """
    side = sidecar_path(path)
    if side is None:
        return ModelSpec()
    try:
        data = yaml.safe_load(side.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ValueError(f"model sidecar {str(side)!r} is not valid YAML ({problem})") from None
    if data is None:
        return ModelSpec()
    if not isinstance(data, dict):
        raise ValueError(
            f"model sidecar {str(side)!r} must be a mapping of keys ({', '.join(SIDECAR_KEYS)})"
        )
    unknown = sorted(str(k) for k in data if k not in SIDECAR_KEYS)
    if unknown:
        raise ValueError(
            f"model sidecar {str(side)!r}: unknown key(s) {', '.join(unknown)}; the keys are "
            f"{', '.join(SIDECAR_KEYS)}"
        )
    return ModelSpec.from_values(data, side.name)


# -- the factory: the one path that runs the user's code --------------------------------
def import_factory(spec: str | Callable[..., Any]) -> Callable[..., Any]:
    """The callable ``package.module:name`` names, imported also from the working folder.

    Raises
    ------
    ValueError
        If the module cannot be imported or has no such callable; the message names
        ``--model-factory``.
    """
    if callable(spec):
        return spec
    module_name, _, attr = spec.partition(":")
    cwd = os.getcwd()
    # The console script does not put the working folder on sys.path the way
    # ``python -m`` does; the user's ``mynets.py`` lives there.
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.append(cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(
            f"--model-factory {spec}: cannot import module {module_name!r} ({e}); it must be "
            f"installed or a .py file in the working folder {cwd}"
        ) from None
    finally:
        if added:
            sys.path.remove(cwd)
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ValueError(
                f"--model-factory {spec}: module {module_name!r} has no {attr!r} "
                f"(defined there: {', '.join(n for n in dir(module) if not n.startswith('_'))})"
            )
    if not callable(obj):
        raise ValueError(f"--model-factory {spec}: {attr!r} is not callable")
    return obj


# -- what the loader says --------------------------------------------------------------
@dataclass(frozen=True)
class LoadReport:
    """How a model file was loaded: its format, the adapter made, and why.

    Attributes
    ----------
    path : str
        The file.
    format : str
        ``advml``, ``torchscript``, ``torch.export``, ``onnx``, ``state_dict``,
        ``safetensors``, ``pickle``, ``skops``, ``xgboost``, ``lightgbm`` or ``catboost``.
    adapter : str
        The adapter's class name.
    access : str
        ``white-box`` (gradients) or ``black-box (scores)``.
    reason : str
        Why this adapter, in a sentence (e.g. the ONNX conversion check's outcome).
    settings : dict
        Each setting used (input shape, classes, bounds, normalisation, factory) and
        where it came from.
    class_names : tuple of str, optional
        Class names, when they were given.
    """

    path: str
    format: str
    adapter: str
    access: str
    reason: str
    settings: dict[str, str] = field(default_factory=dict)
    class_names: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for report.json."""
        return {
            "path": self.path,
            "format": self.format,
            "adapter": self.adapter,
            "access": self.access,
            "reason": self.reason,
            "settings": dict(self.settings),
            "class_names": None if self.class_names is None else list(self.class_names),
        }

    def __str__(self) -> str:
        return f"{self.path}: {self.format} -> {self.adapter} ({self.access}): {self.reason}"


def settings_record(spec: ModelSpec) -> dict[str, str]:
    """``{"input_shape": "(1, 8, 8) from --input-shape", ...}`` for the report."""
    out = {}
    for key in FLAGS:
        value = getattr(spec, key)
        if value is None:
            continue
        if key == "factory" and callable(value):
            value = getattr(value, "__qualname__", repr(value))
        out[key] = f"{value} from {spec.sources.get(key, 'given')}"
    return out


def dataset_defaults(ds: Any) -> dict[str, Any]:
    """A dataset's input shape, class count and (global) bounds: what a model file that
    does not carry them is taken to expect."""
    defaults: dict[str, Any] = {"input_shape": tuple(ds.input_shape), "classes": ds.n_classes}
    try:
        low, high = (float(b) for b in ds.bounds)
        defaults["bounds"] = (low, high)
    except (TypeError, ValueError):
        pass  # per-feature bounds: the model needs --bounds
    return defaults
