"""The docs name what the code has: every dataset, the report's schema version."""

from __future__ import annotations

import re
from pathlib import Path

from advml.data import list_datasets
from advml.report.model import SCHEMA_VERSION

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_every_dataset_has_a_row_in_datasets_md() -> None:
    text = (DOCS / "datasets.md").read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `([\w-]+)` \|", text, flags=re.MULTILINE))
    missing = [name for name in (d.name for d in list_datasets()) if name not in rows]
    assert not missing, f"docs/datasets.md has no table row for {missing}"


def test_audit_md_names_the_reports_schema_major_version() -> None:
    text = (DOCS / "audit.md").read_text(encoding="utf-8")
    major = SCHEMA_VERSION.split(".")[0]
    versions = set(re.findall(r"`schema_version` (\d+)\.", text))
    assert versions == {major}, (versions, SCHEMA_VERSION)
