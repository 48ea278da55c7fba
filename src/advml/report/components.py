"""Small HTML building blocks shared by the report's sections.

Every string that comes from data goes through :func:`esc`; figures are PNG bytes
embedded as data URIs, so the report is one self-contained file.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["esc", "figure", "img", "num", "pct", "table", "verdict_badge"]

LEVEL_COLOURS = {"pass": "#1a7f37", "warn": "#b35900", "fail": "#c62828", "unknown": "#555"}


def esc(value: Any) -> str:
    """``value`` as text, HTML-escaped."""
    return html.escape(str(value))


def img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}">'


def figure(png: bytes, *, alt: str, caption: str, fig_id: str) -> str:
    """A figure with its caption; ``caption`` is HTML (escape data inside it yourself).

    Every figure says what it shows and how to read it.
    """
    return f"<figure id='{esc(fig_id)}'>{img(png, alt)}<figcaption>{caption}</figcaption></figure>"


def pct(v: float | None, digits: int = 1) -> str:
    """A fraction as a percentage; "–" for missing values."""
    return "–" if v is None else f"{100 * v:.{digits}f}%"


def num(v: float | None, fmt: str = ".3f") -> str:
    return "–" if v is None else format(v, fmt)


def table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], *, caption: str | None = None
) -> str:
    """A table; cells are escaped unless they are already :class:`Markup`."""

    def cell(v: Any) -> str:
        return v.html if isinstance(v, Markup) else esc(v)

    parts = ["<table>"]
    if caption:
        parts.append(f"<caption>{esc(caption)}</caption>")
    parts.append("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr>")
    for row in rows:
        parts.append("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>")
    parts.append("</table>")
    return "".join(parts)


class Markup:
    """HTML that :func:`table` inserts as is (build it from escaped pieces only)."""

    def __init__(self, html_text: str) -> None:
        self.html = html_text


def verdict_badge(verdict: dict[str, Any]) -> str:
    """The coloured label of a verdict and its text."""
    colour = LEVEL_COLOURS.get(verdict.get("level", "unknown"), "#555")
    return (
        f"<span class='level' style='background:{colour}'>{esc(verdict.get('label', ''))}</span>"
        f"<p>{esc(verdict.get('text', ''))}</p>"
    )


def interval_text(iv: dict[str, Any] | None) -> str:
    """'67.9–75.8% (360 of 500)': a rate's 95 % interval and its counts; "–" without."""
    if not iv:
        return "–"
    counts = f" ({iv['count']} of {iv['n']})" if iv.get("count") is not None else ""
    return f"{100 * iv['low']:.1f}–{100 * iv['high']:.1f}%{counts}"


CHECK_MARKS = {"pass": "✔ pass", "fail": "✘ fail", "not checked": "– not checked"}


def checklist(checks: list[dict[str, Any]] | None) -> str:
    """The flawed-evaluation checklist: each check, pass/fail and its evidence."""
    if not checks:
        return ""
    rows = [
        (
            c["title"],
            Markup(f"<b>{esc(CHECK_MARKS.get(c['status'], c['status']))}</b>"),
            c["evidence"],
        )
        for c in checks
    ]
    failed = sum(c["status"] == "fail" for c in checks)
    note = (
        f"{failed} check(s) failed: the attacks may not have worked, so the figures above "
        "overstate robustness and the verdict says the evaluation is not conclusive."
        if failed
        else "No sign of a flawed evaluation."
    )
    return (
        "<div class='checklist'><h3>Checks for a flawed evaluation</h3>"
        "<p class='sub'>Carlini et al. 2019, §5; Athalye et al. 2018. A robust accuracy is "
        "an upper bound on the truth only when the attacks behind it work. "
        f"{esc(note)}</p>" + table(("check", "result", "evidence"), rows) + "</div>"
    )
