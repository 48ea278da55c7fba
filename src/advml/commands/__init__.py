"""The ``advml`` sub-commands, one module per family.

Each public module here defines ``add_commands(sub)``: it adds its sub-parsers to the
argparse sub-parser group ``sub`` and returns ``{command name: handler}``, where a
handler takes the parsed arguments and returns the exit code. :mod:`advml.cli`
discovers every module of this package, so a family adds its commands by adding a
module and nothing else. Modules whose name starts with ``_`` are helpers.

Command modules are imported on every ``advml`` call, so they import the family's code
inside their handlers, not at the top: ``advml --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from collections.abc import Callable
from types import ModuleType

__all__ = ["Handler", "command_modules"]

Handler = Callable[[argparse.Namespace], int]

# Commands people look for first come first in ``advml --help``.
_FIRST = ("audit", "evasion")


def command_modules() -> list[ModuleType]:
    """Every command module of this package, the audit's first."""
    names = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
    names.sort(key=lambda n: (_FIRST.index(n) if n in _FIRST else len(_FIRST), n))
    modules = [importlib.import_module(f"{__name__}.{n}") for n in names]
    for module in modules:
        if not callable(getattr(module, "add_commands", None)):
            raise ImportError(f"{module.__name__} defines no add_commands(sub)")
    return modules
