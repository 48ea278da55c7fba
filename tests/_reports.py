"""The report an audit wrote, read back and checked against the report schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from advml.report import report_schema


def written_report(out: Path) -> dict[str, Any]:
    """``out/report.json``, validated against :func:`advml.report.report_schema`."""
    report: dict[str, Any] = json.loads((out / "report.json").read_text())
    jsonschema.validate(report, report_schema())
    return report
