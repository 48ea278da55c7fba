"""Number formats and colours shared by the report's templates and sections.

The HTML itself lives in ``report/templates`` (Jinja2, autoescaped); these helpers turn
numbers into the text the templates show, and are the templates' ``pct``, ``num`` and
``interval`` filters.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CHECK_MARKS", "LEVEL_COLOURS", "interval_text", "num", "pct"]

LEVEL_COLOURS = {"pass": "#1a7f37", "warn": "#b35900", "fail": "#c62828", "unknown": "#555"}

# How the flawed-evaluation checklist shows each check's status.
CHECK_MARKS = {"pass": "✔ pass", "fail": "✘ fail", "not checked": "– not checked"}


def pct(v: float | None, digits: int = 1) -> str:
    """A fraction as a percentage; "–" for missing values."""
    return "–" if v is None else f"{100 * v:.{digits}f}%"


def num(v: float | None, fmt: str = ".3f") -> str:
    """A number in format ``fmt``; "–" for missing values."""
    return "–" if v is None else format(v, fmt)


def interval_text(iv: dict[str, Any] | None) -> str:
    """'67.9–75.8% (360 of 500)': a rate's 95 % interval and its counts; "–" without."""
    if not iv:
        return "–"
    counts = f" ({iv['count']} of {iv['n']})" if iv.get("count") is not None else ""
    return f"{100 * iv['low']:.1f}–{100 * iv['high']:.1f}%{counts}"
