"""Helpers shared by the registry contract tests (``tests/**/test_*contract.py``).

Every registered component validates its settings the same way, so one generator derives
the bad values from the settings' annotated types (``registry.schema``), and one test
checks them; each contract file only adds what is particular to its family (values that
are wrong for a setting of a given name, or for every number of that family).

Importable as ``_contract`` from any test: pyproject's ``[tool.pytest.ini_options]`` puts
``tests/`` on ``sys.path`` (``pythonpath``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import pytest

from advml import registry

# (bad value, the exception, or exceptions, it must raise)
Bad = tuple[Any, Any]

NUMBER = re.compile(r"(int|float)( \| None)?")
TEXT = re.compile(r"(str|list\[str\])( \| None)?")


def invalid_settings(
    family: str,
    name: str,
    *,
    by_name: Mapping[str, Sequence[Bad]] | None = None,
    negative: float | None = None,
    text: Sequence[Bad] = (),
) -> Iterator[tuple[str, Any, Any]]:
    """``(setting, bad value, expected error)`` for every setting of one component.

    From the annotated type: a value outside a ``Literal``; a non-bool (``"yes"``, None)
    for a ``bool``; a string, a bool and NaN for a number, and 1.5 for an ``int``.

    Parameters
    ----------
    family, name
        The component, as ``registry.schema(family, name)`` knows it.
    by_name
        Values that are wrong for a setting of this name, wherever a component has it.
    negative
        A value every number setting of this family rejects with ``ValueError`` (for
        families with no signed settings).
    text
        Values every ``str`` / ``list[str]`` setting (optional or not) rejects.
    """
    for setting, spec in registry.schema(family, name).items():
        kind = spec["type"]
        if kind.startswith("Literal"):
            yield setting, "not-a-choice", ValueError
        elif kind == "bool":
            yield setting, "yes", TypeError
            yield setting, None, TypeError
        elif NUMBER.fullmatch(kind):
            yield setting, "1", TypeError
            yield setting, True, TypeError
            yield setting, math.nan, (TypeError, ValueError)  # not finite, not an integer
            if kind.startswith("int"):
                yield setting, 1.5, TypeError
            if negative is not None:
                yield setting, negative, ValueError
        elif TEXT.fullmatch(kind):
            for value, error in text:
                yield setting, value, error
        for value, error in (by_name or {}).get(setting, ()):
            yield setting, value, error


def bad_setting_test(
    components: Mapping[str, Iterable[str]],
    *,
    by_name: Mapping[str, Sequence[Bad]] | None = None,
    negative: float | None = None,
    text: Sequence[Bad] = (),
) -> Callable[..., None]:
    """A test, parametrised over ``invalid_settings``, that each bad value raises naming it.

    Assign it to a ``test_...`` name in a contract file; the options are those of
    :func:`invalid_settings`. ``components`` maps each family to its component names.
    """
    cases = [
        pytest.param(family, name, setting, value, error, id=f"{name}-{setting}={value!r}")
        for family, names in components.items()
        for name in names
        for setting, value, error in invalid_settings(
            family, name, by_name=by_name, negative=negative, text=text
        )
    ]

    @pytest.mark.parametrize(("family", "name", "setting", "value", "error"), cases)
    def test(family: str, name: str, setting: str, value: Any, error: Any) -> None:
        with pytest.raises(error, match=rf"\b{re.escape(setting)}\b"):
            registry.create(family, name, **{setting: value})

    return test
