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
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_type_hints, overload

from advml.base import Component

if TYPE_CHECKING:  # the family bases import this module to register themselves
    from advml.defences.backdoor.base import BackdoorDefence
    from advml.defences.detection.base import Detector
    from advml.defences.output.base import OutputDefence
    from advml.defences.preprocess.base import Preprocessor
    from advml.defences.training.base import RobustTraining
    from advml.evasion.base import EvasionAttack
    from advml.extraction.base import ExtractionAttack
    from advml.poisoning.base import PoisoningAttack
    from advml.poisoning.triggers import Trigger
    from advml.privacy.inversion.base import InversionAttack
    from advml.privacy.membership.base import MembershipAttack
    from advml.watermark.base import WatermarkScheme
    from advml.watermark.removal.base import RemovalAttack

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
# The base class every component of a family derives from: what ``get``/``create`` are
# typed to return (their overloads below), checked by ``register`` so the types hold.
# Named by dotted path, not imported: the bases import this module.
_FAMILY_BASES: dict[str, str] = {
    "evasion": "advml.evasion.base.EvasionAttack",
    "watermark": "advml.watermark.base.WatermarkScheme",
    "watermark_removal": "advml.watermark.removal.base.RemovalAttack",
    "trigger": "advml.poisoning.triggers.Trigger",
    "poisoning": "advml.poisoning.base.PoisoningAttack",
    "backdoor_defence": "advml.defences.backdoor.base.BackdoorDefence",
    "extraction": "advml.extraction.base.ExtractionAttack",
    "output_defence": "advml.defences.output.base.OutputDefence",
    "robust_training": "advml.defences.training.base.RobustTraining",
    "preprocess": "advml.defences.preprocess.base.Preprocessor",
    "detection": "advml.defences.detection.base.Detector",
    "membership": "advml.privacy.membership.base.MembershipAttack",
    "inversion": "advml.privacy.inversion.base.InversionAttack",
}
_REGISTRY: dict[str, dict[str, type[Component]]] = {}


def register(family: str, name: str) -> Callable[[C], C]:
    """Class decorator: register a component under ``family``/``name``."""

    def decorate(cls: C) -> C:
        table = _REGISTRY.setdefault(family, {})
        if name in table and table[name] is not cls:
            raise ValueError(f"{family} component {name!r} is already registered")
        base = _family_base(family)
        if not issubclass(cls, base):
            raise TypeError(
                f"{cls.__name__} must derive from {base.__name__} to be registered as a "
                f"{family} component"
            )
        cls.name = name
        cls.family = family
        table[name] = cls
        return cls

    return decorate


def _family_base(family: str) -> type[Component]:
    """The base class of ``family`` (:class:`Component` for a family without one)."""
    path = _FAMILY_BASES.get(family)
    if path is None:
        return Component
    module, _, name = path.rpartition(".")
    # Already imported (a subclass is being registered), possibly still initialising.
    base: type[Component] = getattr(importlib.import_module(module), name)
    return base


def _load(family: str) -> dict[str, type[Component]]:
    if family not in _FAMILY_MODULES and family not in _REGISTRY:
        raise ValueError(f"unknown family {family!r}; known: {sorted(_FAMILY_MODULES)}")
    if family in _FAMILY_MODULES:
        importlib.import_module(_FAMILY_MODULES[family])
    return _REGISTRY.get(family, {})


def available(family: str) -> list[str]:
    """Names registered in ``family``, sorted."""
    return sorted(_load(family))


@overload
def get(family: Literal["evasion"], name: str) -> type[EvasionAttack]: ...
@overload
def get(family: Literal["watermark"], name: str) -> type[WatermarkScheme]: ...
@overload
def get(family: Literal["watermark_removal"], name: str) -> type[RemovalAttack]: ...
@overload
def get(family: Literal["trigger"], name: str) -> type[Trigger]: ...
@overload
def get(family: Literal["poisoning"], name: str) -> type[PoisoningAttack]: ...
@overload
def get(family: Literal["backdoor_defence"], name: str) -> type[BackdoorDefence]: ...
@overload
def get(family: Literal["extraction"], name: str) -> type[ExtractionAttack]: ...
@overload
def get(family: Literal["output_defence"], name: str) -> type[OutputDefence]: ...
@overload
def get(family: Literal["robust_training"], name: str) -> type[RobustTraining]: ...
@overload
def get(family: Literal["preprocess"], name: str) -> type[Preprocessor]: ...
@overload
def get(family: Literal["detection"], name: str) -> type[Detector]: ...
@overload
def get(family: Literal["membership"], name: str) -> type[MembershipAttack]: ...
@overload
def get(family: Literal["inversion"], name: str) -> type[InversionAttack]: ...
@overload
def get(family: str, name: str) -> type[Component]: ...
def get(family: str, name: str) -> type[Component]:
    """The class registered as ``family``/``name``.

    Typed by family: ``get("evasion", ...)`` is a ``type[EvasionAttack]``,
    ``get("preprocess", ...)`` a ``type[Preprocessor]``, and so on (a family without a
    base class of its own gives ``type[Component]``).
    """
    table = _load(family)
    try:
        return table[name]
    except KeyError:
        raise ValueError(
            f"unknown {family} component {name!r}; available: {', '.join(sorted(table))}"
        ) from None


@overload
def create(family: Literal["evasion"], name: str, **settings: Any) -> EvasionAttack: ...
@overload
def create(family: Literal["watermark"], name: str, **settings: Any) -> WatermarkScheme: ...
@overload
def create(family: Literal["watermark_removal"], name: str, **settings: Any) -> RemovalAttack: ...
@overload
def create(family: Literal["trigger"], name: str, **settings: Any) -> Trigger: ...
@overload
def create(family: Literal["poisoning"], name: str, **settings: Any) -> PoisoningAttack: ...
@overload
def create(family: Literal["backdoor_defence"], name: str, **settings: Any) -> BackdoorDefence: ...
@overload
def create(family: Literal["extraction"], name: str, **settings: Any) -> ExtractionAttack: ...
@overload
def create(family: Literal["output_defence"], name: str, **settings: Any) -> OutputDefence: ...
@overload
def create(family: Literal["robust_training"], name: str, **settings: Any) -> RobustTraining: ...
@overload
def create(family: Literal["preprocess"], name: str, **settings: Any) -> Preprocessor: ...
@overload
def create(family: Literal["detection"], name: str, **settings: Any) -> Detector: ...
@overload
def create(family: Literal["membership"], name: str, **settings: Any) -> MembershipAttack: ...
@overload
def create(family: Literal["inversion"], name: str, **settings: Any) -> InversionAttack: ...
@overload
def create(family: str, name: str, **settings: Any) -> Component: ...
def create(family: str, name: str, **settings: Any) -> Component:
    """Build ``family``/``name`` from plain settings (validated by its ``__init__``).

    Typed by family like :func:`get`: ``create("evasion", "pgd")`` is an ``EvasionAttack``.
    """
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
