"""The Jinja2 environment that renders report.html from ``report/templates``.

Autoescaping is on for every template, so a string that comes from data (a dataset,
class or model name, a reason, a path) is escaped wherever it lands; only HTML that advml
itself builds (figures, section bodies still rendered in Python) is passed in as
:class:`markupsafe.Markup`. ``StrictUndefined`` turns a misspelt or missing field into an
error instead of an empty cell.
"""

from __future__ import annotations

import base64
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from advml.report.components import CHECK_MARKS, LEVEL_COLOURS, interval_text, num, pct

__all__ = ["TEMPLATES", "b64", "environment", "render_template"]

TEMPLATES = Path(__file__).with_name("templates")


def _fmt(value: Any, spec: str) -> str:
    """``format(value, spec)``: the same number formats as the f-strings they replace."""
    return format(value, spec)


def b64(png: bytes) -> str:
    """A PNG's base64 text, for ``<img src="data:image/png;base64,...">``."""
    return base64.b64encode(png).decode("ascii")


@cache
def environment() -> jinja2.Environment:
    """The report's template environment (built once per process)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters.update(fmt=_fmt, pct=pct, num=num, interval=interval_text)
    env.globals.update(level_colours=LEVEL_COLOURS, check_marks=CHECK_MARKS)
    return env


def render_template(name: str, **context: Any) -> str:
    """Template ``name`` (relative to ``report/templates``) rendered with ``context``."""
    return environment().get_template(name).render(**context)
