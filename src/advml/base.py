"""The root of every component: settings in, nothing else (scikit-learn's convention).

A component's ``__init__`` takes keyword-only settings, validates them and stores each
under its own name. Nothing is fitted or changed by using the component.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar, TypeVar

__all__ = ["Component"]

_Self = TypeVar("_Self", bound="Component")


class Component:
    """Base class of attacks, defences and other registered components.

    Attributes
    ----------
    name : str
        The short name the component is registered under (``"pgd"``).
    family : str
        The family it belongs to (``"evasion"``).
    """

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self) -> dict[str, Any]:
        """The settings this component was built with, by name."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self: _Self, **params: Any) -> _Self:
        """A new component with some settings replaced (this one is left unchanged)."""
        unknown = set(params) - set(self._param_names())
        if unknown:
            raise ValueError(
                f"unknown setting(s) {sorted(unknown)} for {type(self).__name__}; "
                f"valid settings: {self._param_names()}"
            )
        return type(self)(**{**self.get_params(), **params})

    def __repr__(self) -> str:
        defaults = {
            p.name: p.default
            for p in inspect.signature(type(self).__init__).parameters.values()
            if p.default is not p.empty
        }
        shown = [
            f"{k}={v!r}"
            for k, v in self.get_params().items()
            if k not in defaults or not _same(defaults[k], v)
        ]
        return f"{type(self).__name__}({', '.join(shown)})"


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:
        return a is b
