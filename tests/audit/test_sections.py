"""The audit's section plug-in: discovery, settings, skipping, caching, the report."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import numpy as np
import pytest

import advml.audit.sections as audit_sections
from advml.audit import AuditConfig, run_audit
from advml.audit.sections import (
    AuditContext,
    AuditSection,
    SectionOutput,
    Verdict,
    available_sections,
)
from advml.data import load_dataset
from advml.models import TorchClassifier
from advml.report import report_schema


class CountingSection(AuditSection):
    """A section that counts its computations, so caching is visible."""

    name = "counting"
    title = "Counting <things>"
    threat = "confidentiality"
    order = 50
    default_settings: Mapping[str, Any] = {"repeats": 3, "scale": 1.0}
    quick_settings: Mapping[str, Any] = {"repeats": 2}
    computed: ClassVar[list[int]] = []

    def run(self, ctx: AuditContext, settings: Mapping[str, Any]) -> SectionOutput:
        values = []
        for i in range(settings["repeats"]):

            def compute(i: int = i) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
                self.computed.append(i)
                return {"value": i * settings["scale"]}, {"arr": np.full(3, i)}

            meta, arrays = ctx.step(f"part{i}", {"scale": settings["scale"]}, compute)
            assert arrays["arr"][0] == i
            values.append(meta["value"])
        return SectionOutput(
            {"values": values, "clean": ctx.clean_accuracy},
            Verdict("warn", "some risk", f"sum {sum(values)}", {"total": sum(values)}),
        )


class NeverSection(AuditSection):
    name = "never"
    title = "Never"
    threat = "ownership"

    def skip_reason(self, ctx: AuditContext, settings: Mapping[str, Any]) -> str | None:
        return "this model is not retrainable" if not ctx.retrainable else None

    def run(self, ctx: AuditContext, settings: Mapping[str, Any]) -> SectionOutput:
        raise AssertionError("must not run")


@pytest.fixture
def sections(monkeypatch: pytest.MonkeyPatch) -> None:
    real = available_sections()
    table = {"evasion": real["evasion"], "counting": CountingSection, "never": NeverSection}
    monkeypatch.setattr(audit_sections, "available_sections", lambda: table)
    CountingSection.computed = []


def _config(**overrides: Any) -> AuditConfig:
    settings: dict[str, Any] = dict(
        n_samples=40, eps=(0.0, 0.1), attack_settings={"pgd": {"steps": 3}}, examples=2
    )
    settings.update(overrides)
    return AuditConfig.quick(**settings)


def test_evasion_is_discovered_first() -> None:
    found = available_sections()
    assert next(iter(found)) == "evasion"
    assert all(issubclass(c, AuditSection) and c.name == n for n, c in found.items())


def test_sections_run_cache_skip_and_validate(
    sections: None, digits_mlp: TorchClassifier, tmp_path: Path
) -> None:
    digits = load_dataset("digits")
    config = _config(section_settings={"counting": {"scale": 2.0}})
    result = run_audit(
        config, model=copy.deepcopy(digits_mlp), dataset=digits, out=tmp_path, show_progress=False
    )
    report = result.report
    jsonschema.validate(json.loads(json.dumps(report)), report_schema())
    counting = report["sections"]["counting"]
    assert counting["values"] == [0.0, 2.0]  # quick profile: 2 repeats; scale from config
    assert counting["settings"] == {"repeats": 2, "scale": 2.0}
    assert counting["verdict"] == {
        "level": "warn",
        "label": "some risk",
        "text": "sum 2.0",
        "total": 2.0,
    }
    assert counting["clean"] == report["model"]["clean_accuracy"]
    summary = report["summary"]
    assert summary["confidentiality"]["level"] == "warn"
    assert summary["ownership"]["level"] == "unknown"
    assert summary["ownership"]["not_assessed"] == [
        {"section": "never", "reason": "this model is not retrainable"}
    ]
    assert report["skipped_sections"][0]["section"] == "never"
    html = (tmp_path / "report.html").read_text()
    assert "id='counting'" in html and "Counting &lt;things&gt;" in html
    assert "this model is not retrainable" in html

    # A rerun reads every step back; changed settings recompute only what they change.
    run_audit(
        config, model=copy.deepcopy(digits_mlp), dataset=digits, out=tmp_path, show_progress=False
    )
    assert CountingSection.computed == [0, 1]
    changed = config.with_(section_settings={"counting": {"scale": 3.0, "repeats": 3}})
    again = run_audit(
        changed, model=copy.deepcopy(digits_mlp), dataset=digits, out=tmp_path, show_progress=False
    )
    assert CountingSection.computed == [0, 1, 0, 1, 2]
    assert again.report["sections"]["counting"]["values"] == [0.0, 3.0, 6.0]


def test_only_the_chosen_sections_run(sections: None, digits_mlp: TorchClassifier) -> None:
    result = run_audit(
        _config(sections=("counting",)),
        model=copy.deepcopy(digits_mlp),
        dataset=load_dataset("digits"),
        show_progress=False,
    )
    assert list(result.report["sections"]) == ["counting"]
    assert result.report["summary"]["integrity"]["level"] == "unknown"


def test_unknown_section_and_setting_are_named(sections: None, digits_mlp: TorchClassifier) -> None:
    digits = load_dataset("digits")
    with pytest.raises(ValueError, match=r"unknown names \['nope'\].*available"):
        run_audit(
            _config(sections=("nope",)), model=digits_mlp, dataset=digits, show_progress=False
        )
    with pytest.raises(ValueError, match=r"section_settings\['counting'\].*\['bogus'\]"):
        run_audit(
            _config(section_settings={"counting": {"bogus": 1}}),
            model=digits_mlp,
            dataset=digits,
            show_progress=False,
        )


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        ({"sections": ()}, "sections"),
        ({"section_settings": {"x": 1}}, "section_settings"),
        ({"profile": "slow"}, "profile"),
    ],
)
def test_bad_section_config_names_the_setting(overrides: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        AuditConfig(**overrides)
