"""report.html in a real browser: Debian's chromium driven by Playwright.

A small audit of the digits MLP runs every section there is (the quick settings, 60
inputs) and writes report.html; chromium opens the file and the test checks that every
section of report.json has its part of the page, that every image is there and decoded
(``naturalWidth > 0``) with a caption, and that the console stays clean. A full-page
screenshot goes to ``$ADVML_ARTIFACTS`` when set, else the test's tmp folder.

Skipped when ``/usr/bin/chromium`` or Playwright is missing, except under CI
(``CI=true``), where ``.ci/run`` installs chromium and a missing browser is a failure.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from advml.audit import AuditConfig, run_audit
from advml.data import load_dataset
from advml.models import TorchClassifier

pytestmark = pytest.mark.slow  # an audit of every section, then chromium: ~30-60 s


def test_report_html_renders_every_section_and_image(
    digits_mlp: TorchClassifier,
    tmp_path: Path,
    launch_chromium: Callable[[Any], Any],
    artifacts: Path,
) -> None:
    from playwright.sync_api import sync_playwright

    out = tmp_path / "audit"
    config = AuditConfig.quick(n_samples=60, examples=4)
    run_audit(
        config,
        model=copy.deepcopy(digits_mlp),
        dataset=load_dataset("digits"),
        out=out,
        show_progress=False,
    )
    report = json.loads((out / "report.json").read_text())
    sections = report["sections"]
    assert "evasion" in sections

    errors: list[str] = []
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
            page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
            page.goto((out / "report.html").as_uri())
            page.wait_for_load_state("load")

            for part in ("summary", "model", "settings"):
                assert page.locator(f"section#{part}").count() == 1, part
            for name, section in sections.items():
                heading = page.locator(f"section#{name} > h2")
                assert heading.count() == 1, f"no part of the page for section {name!r}"
                assert heading.inner_text() == section["title"]
                assert page.locator(f"section#{name}").inner_text().strip() != section["title"]
            # The scorecard names every section and links to it.
            for name in sections:
                assert page.locator(f"#summary a[href='#{name}']").count() >= 1, name

            images: list[dict[str, Any]] = page.eval_on_selector_all(
                "img",
                """imgs => imgs.map(i => ({
                    alt: i.alt, complete: i.complete, width: i.naturalWidth,
                    src: i.getAttribute('src').slice(0, 22),
                    caption: (i.closest('figure')?.querySelector('figcaption')?.textContent
                              || '').trim(),
                    section: i.closest('section')?.id || ''
                }))""",
            )
            assert images, "the report has no images"
            assert {im["section"] for im in images} >= {"evasion"}
            for im in images:
                assert im["complete"] and im["width"] > 0, im
                assert im["src"] == "data:image/png;base64,", im  # self-contained
                assert im["alt"] and im["caption"], im
            page.screenshot(path=str(artifacts / "report.png"), full_page=True)
            assert (artifacts / "report.png").stat().st_size > 10_000
        finally:
            browser.close()
    assert errors == []


def test_the_summary_is_on_the_first_screen_and_the_page_prints_to_pdf(
    digits_mlp: TorchClassifier,
    tmp_path: Path,
    launch_chromium: Callable[[Any], Any],
    artifacts: Path,
) -> None:
    """The one-screen summary comes first, one line per section, most severe first; the
    page printed by headless chromium (A4) is a PDF whose content fits the paper width."""
    from playwright.sync_api import sync_playwright

    out = tmp_path / "audit"
    config = AuditConfig.quick(
        n_samples=60, examples=4, sections=("evasion", "membership", "inversion")
    )
    run_audit(
        config,
        model=copy.deepcopy(digits_mlp),
        dataset=load_dataset("digits"),
        out=out,
        show_progress=False,
    )
    report = json.loads((out / "report.json").read_text())
    severity = {"fail": 0, "warn": 1, "unknown": 2, "pass": 3}
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto((out / "report.html").as_uri())
            page.wait_for_load_state("load")
            glance = page.locator("section#at-a-glance")
            assert glance.count() == 1
            box = glance.bounding_box()
            assert box is not None and box["y"] + box["height"] <= 900 * 1.5, box
            items = glance.locator("ul.glance > li > a").evaluate_all(
                "links => links.map(a => a.getAttribute('href').slice(1))"
            )
            assert sorted(items) == sorted(report["sections"])
            levels = [severity[report["sections"][n]["verdict"]["level"]] for n in items]
            assert levels == sorted(levels)  # most severe first
            assert "95% interval" in glance.inner_text()

            page.emulate_media(media="print")
            page.set_viewport_size({"width": 794, "height": 1123})  # A4 at 96 dpi
            too_wide = page.evaluate(
                "() => [...document.querySelectorAll('img, table, pre')]"
                ".filter(e => e.getBoundingClientRect().right > 794 + 1)"
                ".map(e => e.tagName + ' ' + (e.closest('section')?.id || ''))"
            )
            assert too_wide == []
            page.screenshot(path=str(artifacts / "report-print.png"), full_page=True)
            pdf = page.pdf(path=str(artifacts / "report.pdf"), format="A4", print_background=True)
        finally:
            browser.close()
    assert pdf.startswith(b"%PDF-")
    pages = pdf.count(b"/Type /Page") - pdf.count(b"/Type /Pages")
    assert pages >= 2, pages
