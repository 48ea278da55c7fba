"""The report model: schema.json is generated from it, and reports follow both."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from _reports import written_report
from pydantic import BaseModel

from advml.audit import AuditConfig
from advml.cli import main
from advml.report import report_schema
from advml.report.__main__ import main as schema_main
from advml.report.model import SCHEMA_FILE, Config, Report, Section, Verdict, schema_text

_SCHEMAS = Path(SCHEMA_FILE).with_name("schemas")


def test_committed_schema_is_the_one_the_models_generate() -> None:
    committed = SCHEMA_FILE.read_text()
    assert committed == schema_text(), (
        "advml/report/schema.json differs from the report models (advml.report.model); "
        "regenerate it with `python -m advml.report --write-schema`"
    )
    assert schema_main(["--check"]) == 0


def test_the_check_command_names_the_fix_when_the_file_is_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import advml.report.__main__ as entry

    stale = tmp_path / "schema.json"
    stale.write_text("{}\n")
    monkeypatch.setattr(entry, "SCHEMA_FILE", stale)
    assert entry.main(["--check"]) == 1
    assert "python -m advml.report --write-schema" in capsys.readouterr().err
    assert entry.main(["--write-schema"]) == 0
    assert stale.read_text() == schema_text()


def undeclared(report: dict[str, Any]) -> list[str]:
    """Keys of ``report`` that neither the models nor the section schemas declare.

    The models allow extra fields (a newer 2.x report still validates); this is what
    keeps them, and the per-section schemas, describing every field the audit writes.
    The config's keys are AuditConfig's fields; a verdict's extra keys are its headline
    numbers, described by each section's schema.
    """
    found: list[str] = []

    def walk(model: BaseModel, path: str) -> None:
        if isinstance(model, Section | Verdict | Config):
            return
        found.extend(f"{path}.{key}" for key in model.model_extra or {})
        for name in type(model).model_fields:
            value = getattr(model, name)
            items = value if isinstance(value, list) else [value]
            if isinstance(value, dict):
                items = list(value.values())
            for item in items:
                if isinstance(item, BaseModel):
                    walk(item, f"{path}.{name}")

    walk(Report.model_validate(report), "report")
    for name, entry in report["sections"].items():
        fragment = json.loads((_SCHEMAS / f"{name}.json").read_text())
        declared = set(Section.model_fields) | set(fragment.get("properties", {}))
        found.extend(f"sections.{name}.{key}" for key in sorted(set(entry) - declared))
    if set(report["config"]) != set(AuditConfig.__dataclass_fields__):
        found.append("config (not AuditConfig's fields)")
    return found


def test_a_quick_audit_of_a_model_file_follows_the_schema_and_the_models(
    quick_audit_argv: Callable[..., list[str]], tmp_path: Path
) -> None:
    out = tmp_path / "audit"
    assert main(quick_audit_argv(out, "--save-examples")) == 0
    report = written_report(out)
    assert report["model"]["loaded"]["format"]  # how the file was read: declared
    assert set(report["reproducibility"]["section_seconds"]) == {"evasion"}
    assert set(report["examples_files"]) == {"evasion"}
    assert undeclared(report) == []


def test_the_models_refuse_what_the_schema_refuses() -> None:
    schema = report_schema()
    bad = {"schema_version": "3.0"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    with pytest.raises(ValueError, match="schema_version"):
        Report.model_validate(bad)


@pytest.mark.slow
def test_a_quick_audit_of_every_section_declares_every_field(tmp_path: Path) -> None:
    """All seven sections of the reference model (about a minute): each field the audit
    writes is in the models or in its section's schema."""
    from advml.audit import run_audit

    result = run_audit(
        AuditConfig.quick(n_samples=40, save_examples=True), out=tmp_path, show_progress=False
    )
    report = json.loads((tmp_path / "report.json").read_text())
    assert len(report["sections"]) + len(report["skipped_sections"]) == 7
    jsonschema.validate(report, report_schema())
    assert undeclared(report) == []
    assert result.report["schema_version"] == report["schema_version"]
