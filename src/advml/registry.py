"""Components by short name, with their settings schema.

The CLI, the audit config and the web demo build components from plain data::

    >>> from advml import registry
    >>> pgd = registry.create("evasion", "pgd", eps=0.1, steps=20)
    >>> registry.schema("evasion", "pgd")["eps"]["default"]
    0.3
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from typing import Any, TypeVar, get_type_hints

from advml.base import Component

__all__ = ["available", "create", "get", "register", "schema"]

C = TypeVar("C", bound=type[Component])

# Families whose components register themselves when their package is imported.
_FAMILY_MODULES: dict[str, str] = {
    "evasion": "advml.evasion",
    "watermark": "advml.watermark",
    "watermark_removal": "advml.watermark",
    "trigger": "advml.poisoning",
    "poisoning": "advml.poisoning",
    "backdoor_defence": "advml.defences.backdoor",
    "extraction": "advml.extraction",
    "output_defence": "advml.defences.output",
    "robust_training": "advml.defences.training",
    "private_training": "advml.defences.training",
    "preprocess": "advml.defences.preprocess",
    "detection": "advml.defences.detection",
    "membership": "advml.privacy.membership",
    "inversion": "advml.privacy.inversion",
}
_REGISTRY: dict[str, dict[str, type[Component]]] = {}


def register(family: str, name: str) -> Callable[[C], C]:
    """Class decorator: register a component under ``family``/``name``."""

    def decorate(cls: C) -> C:
        table = _REGISTRY.setdefault(family, {})
        if name in table and table[name] is not cls:
            raise ValueError(f"{family} component {name!r} is already registered")
        cls.name = name
        cls.family = family
        table[name] = cls
        return cls

    return decorate


def _load(family: str) -> dict[str, type[Component]]:
    if family not in _FAMILY_MODULES and family not in _REGISTRY:
        raise ValueError(f"unknown family {family!r}; known: {sorted(_FAMILY_MODULES)}")
    if family in _FAMILY_MODULES:
        importlib.import_module(_FAMILY_MODULES[family])
    return _REGISTRY.get(family, {})


def available(family: str) -> list[str]:
    """Names registered in ``family``, sorted."""
    return sorted(_load(family))


def get(family: str, name: str) -> type[Component]:
    """The class registered as ``family``/``name``."""
    table = _load(family)
    try:
        return table[name]
    except KeyError:
        raise ValueError(
            f"unknown {family} component {name!r}; available: {', '.join(sorted(table))}"
        ) from None


def create(family: str, name: str, **settings: Any) -> Component:
    """Build ``family``/``name`` from plain settings (validated by its ``__init__``)."""
    cls = get(family, name)
    valid = cls._param_names()
    unknown = set(settings) - set(valid)
    if unknown:
        raise ValueError(
            f"unknown setting(s) {sorted(unknown)} for {family} {name!r}; valid: {valid}"
        )
    return cls(**settings)


def schema(family: str, name: str) -> dict[str, dict[str, Any]]:
    """Settings of a component: type, default and the docstring's description of each."""
    cls = get(family, name)
    hints = get_type_hints(cls.__init__)
    docs = _param_docs(cls.__doc__ or "")
    out: dict[str, dict[str, Any]] = {}
    for p in inspect.signature(cls.__init__).parameters.values():
        if p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        out[p.name] = {
            "type": _type_name(hints.get(p.name, Any)),
            "default": None if p.default is p.empty else p.default,
            "required": p.default is p.empty,
            "doc": docs.get(p.name, ""),
        }
    return out


def _type_name(tp: Any) -> str:
    text = getattr(tp, "__name__", None) if isinstance(tp, type) else None
    return text or str(tp).replace("typing.", "")


def _param_docs(doc: str) -> dict[str, str]:
    """Parse a NumPy-style ``Parameters`` section into {name: first description line}."""
    lines = inspect.cleandoc(doc).splitlines()
    out: dict[str, str] = {}
    in_params = False
    current: str | None = None
    for i, line in enumerate(lines):
        if (
            line.strip() == "Parameters"
            and i + 1 < len(lines)
            and set(lines[i + 1].strip()) == {"-"}
        ):
            in_params = True
            continue
        if not in_params:
            continue
        if i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"} and line.strip():
            break  # next section
        m = re.match(r"^(\w+)\s*:", line)
        if m:
            current = m.group(1)
            out[current] = ""
        elif current and line.startswith((" ", "\t")) and line.strip() and not out[current]:
            out[current] = line.strip()
    return out
