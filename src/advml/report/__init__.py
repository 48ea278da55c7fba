"""Reports: ``report.json`` (versioned schema), ``report.html`` and a terminal summary."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from advml.report.html import render_html
from advml.report.model import SCHEMA_VERSION
from advml.report.terminal import format_summary
from advml.runtime.files import atomic_write

__all__ = ["SCHEMA_VERSION", "format_summary", "render_html", "report_schema", "write_report"]


def report_schema() -> dict[str, Any]:
    """The JSON Schema that ``report.json`` follows.

    ``advml/report/schema.json`` describes the report (generated from the models of
    :mod:`advml.report.model`); each section's fields are in
    ``advml/report/schemas/<section>.json`` and are merged in under
    ``properties.sections.properties.<section>``.
    """
    root = resources.files("advml.report")
    schema: dict[str, Any] = json.loads(root.joinpath("schema.json").read_text())
    sections = schema["properties"]["sections"].setdefault("properties", {})
    for entry in sorted(root.joinpath("schemas").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            fragment = json.loads(entry.read_text())
            sections[entry.name[: -len(".json")]] = {
                "allOf": [{"$ref": "#/$defs/section"}, fragment]
            }
    return schema


def write_report(
    report: dict[str, Any],
    out: str | os.PathLike[str],
    *,
    artifacts: dict[str, dict[str, np.ndarray]] | None = None,
) -> dict[str, Path]:
    """Write ``report.json`` and ``report.html`` into ``out``; return their paths.

    ``artifacts`` are the sections' arrays for pictures (``AuditResult.artifacts``).
    """
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "report.json", "html": folder / "report.html"}
    atomic_write(paths["json"], json.dumps(report, indent=2, allow_nan=False))
    atomic_write(paths["html"], render_html(report, artifacts=artifacts))
    return paths
