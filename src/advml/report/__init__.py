"""Reports: ``report.json`` (versioned schema), ``report.html`` and a terminal summary."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from advml.report.html import render_html
from advml.report.terminal import format_summary
from advml.runtime.files import atomic_write

__all__ = ["format_summary", "render_html", "report_schema", "write_report"]


def report_schema() -> dict[str, Any]:
    """The JSON Schema that ``report.json`` follows (``advml/report/schema.json``)."""
    text = resources.files("advml.report").joinpath("schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def write_report(
    report: dict[str, Any],
    out: str | os.PathLike[str],
    *,
    examples: dict[str, np.ndarray] | None = None,
) -> dict[str, Path]:
    """Write ``report.json`` and ``report.html`` into ``out``; return their paths."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "report.json", "html": folder / "report.html"}
    atomic_write(paths["json"], json.dumps(report, indent=2, allow_nan=False))
    atomic_write(paths["html"], render_html(report, examples=examples))
    return paths
