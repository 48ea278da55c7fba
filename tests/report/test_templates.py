"""report.html from Jinja2 templates: autoescaping, StrictUndefined, every template used."""

from __future__ import annotations

import copy
import importlib
import re
from pathlib import Path
from typing import Any

import jinja2
import pytest

from advml.audit import AuditConfig, run_audit
from advml.data import load_dataset
from advml.models import TorchClassifier
from advml.report import render_html
from advml.report.templating import TEMPLATES, environment, render_template

HOSTILE = "<script>alert(1)</script>"
AMP = 'net &<>" v2'


@pytest.fixture(scope="module")
def quick(digits_mlp: TorchClassifier, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A quick evasion audit (examples drawn) and a page the model did not need retrained for."""
    config = AuditConfig.quick(
        n_samples=40,
        eps=(0.0, 0.1),
        attack_settings={"pgd": {"steps": 3}},
        examples=2,
        sections=("evasion",),
    )
    return run_audit(
        config,
        model=copy.deepcopy(digits_mlp),
        dataset=load_dataset("digits"),
        out=tmp_path_factory.mktemp("quick"),
        show_progress=False,
    )


def _hostile(report: dict[str, Any]) -> dict[str, Any]:
    """The report with hostile text wherever a user's or a model's words can land."""
    r = copy.deepcopy(report)
    r["dataset"]["name"] = HOSTILE
    r["dataset"]["description"] = HOSTILE
    r["dataset"]["class_names"] = [HOSTILE] * len(r["dataset"]["class_names"])
    r["model"]["description"] = AMP
    r["model"]["file"] = f"/models/{HOSTILE}.pt"
    evasion = r["sections"]["evasion"]
    evasion["title"] = HOSTILE
    evasion["verdict"]["label"] = HOSTILE
    evasion["verdict"]["text"] = HOSTILE
    evasion["attacks"][0]["params"]["note"] = HOSTILE
    evasion["skipped"] = [{"attack": HOSTILE, "reason": AMP}]
    r["skipped_sections"] = [
        {"section": "backdoor", "title": HOSTILE, "threat": "integrity", "reason": AMP}
    ]
    r["summary"]["integrity"]["question"] = HOSTILE
    r["summary"]["integrity"]["not_assessed"] = [{"section": HOSTILE, "reason": AMP}]
    r["examples_files"] = {"evasion": {"records": f"{HOSTILE}.parquet", "rows": 2}}
    return r


def test_hostile_strings_in_the_report_are_escaped(quick: Any) -> None:
    page = render_html(_hostile(quick.report), artifacts=quick.artifacts)
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "net &amp;&lt;&gt;&#34; v2" in page  # the model description, every character
    assert 'net &<>"' not in page
    # advml's own figures still come through: the robustness curve and the examples
    assert page.count("data:image/png;base64,") == 2
    # nothing hostile inside an attribute either: every quote of an attribute is closed
    assert not re.search(r"<[a-z]+[^>]*<script", page)


def test_every_template_renders_a_quick_audit_with_strict_undefined(quick: Any) -> None:
    env = environment()
    assert env.undefined is jinja2.StrictUndefined
    assert env.autoescape is True
    page = render_html(quick.report, artifacts=quick.artifacts)
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</html>")
    assert (quick.out / "report.html").read_text() == page
    # the skeleton's parts, each from its partial
    for part in ("at-a-glance", "summary", "model", "evasion", "settings", "fig-examples"):
        assert f"id='{part}'" in page


def test_a_missing_field_is_an_error_not_an_empty_cell() -> None:
    with pytest.raises(jinja2.UndefinedError, match="verdict"):
        render_template("sections/evasion.html.j2", section={})


def test_every_template_compiles_and_each_section_template_has_its_section() -> None:
    env = environment()
    names = env.list_templates(filter_func=lambda n: n.endswith(".j2"))
    assert "report.html.j2" in names
    for name in names:
        env.get_template(name)  # a syntax error fails here
    # a section's template is rendered by its module; partials (_*.html.j2) are included
    sections = [p for p in (TEMPLATES / "sections").glob("*.html.j2") if p.name[0] != "_"]
    assert len(sections) >= 7
    for path in sections:
        section = path.name.removesuffix(".html.j2")
        module = importlib.import_module(f"advml.report.sections.{section}")
        assert Path(module.__file__ or "").read_text().count(f"sections/{section}.html.j2")
    shown = (TEMPLATES / "sections" / "evasion.html.j2").read_text()
    assert "sections/_trees.html.j2" in shown
