"""The demo page in a real browser: Debian's chromium driven by Playwright.

A real server (uvicorn on 127.0.0.1, a free port, in a thread of this process) serves
the digits MLP; the test clicks through select -> attack -> defend and checks that the
labels the page shows are the model's answers, that the console stays clean, and saves
a screenshot (to ``$ADVML_ARTIFACTS`` when set, else the test's tmp folder).

Skipped when ``/usr/bin/chromium`` or Playwright is missing, except under CI
(``CI=true``), where ``.ci/run`` installs chromium and a missing browser is a failure.
"""

from __future__ import annotations

import contextlib
import copy
import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from advml.data import Dataset, load_dataset
from advml.models import TorchClassifier
from advml.web import DemoService, create_app

# Starting chromium and the server takes ~10 s on a busy 2-core machine.
pytestmark = pytest.mark.slow


@dataclass
class Served:
    url: str
    service: DemoService


@pytest.fixture(scope="module")
def served(
    digits_mlp: TorchClassifier,
    tmp_path_factory: pytest.TempPathFactory,
    launch_chromium: Callable[[Any], Any],
) -> Iterator[Served]:
    service = DemoService(
        copy.deepcopy(digits_mlp),
        load_dataset("digits"),
        model_description="digits MLP (test)",
        timeout=30,
        cache_dir=tmp_path_factory.mktemp("web-cache"),
    )
    with _running(service) as url:
        yield Served(url, service)


@contextlib.contextmanager
def _running(service: DemoService) -> Iterator[str]:
    """The demo app of ``service`` on a free port of 127.0.0.1 (its URL) until exit."""
    import uvicorn

    app = create_app(service, allowed_hosts=["127.0.0.1", "localhost"], prepare_defences=False)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the demo server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="module")
def browser(served: Served, launch_chromium: Callable[[Any], Any]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_chromium(p)
        try:
            yield b
        finally:
            b.close()


class Console:
    """Every console error, uncaught exception and failed request of a page."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        page.on("requestfailed", lambda r: self.errors.append(f"request failed: {r.url}"))


@pytest.fixture
def demo(browser: Any, served: Served) -> Iterator[tuple[Any, Console]]:
    """The demo page, loaded, and the record of its console."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    console = Console(page)
    page.goto(served.url + "/")
    page.wait_for_selector("body[data-ready=true]")
    try:
        yield page, console
    finally:
        context.close()


def _fgsm_then_squeezing_case(service: DemoService, dataset: Dataset) -> dict[str, Any]:
    """A gallery digit (among the first 48) that FGSM fools and 1-bit squeezing restores."""
    for index in range(48):
        x, y = service.image("digits", index)
        attacked = service.attack(x, attack="fgsm", strength="medium")
        if attacked["original"]["label"] != y or not attacked["label_changed"]:
            continue
        x_adv = np.asarray(attacked["adversarial"]["pixels"], np.float32)[None]
        defended = service.defend(x_adv, defence="feature_squeezing", strength="high", reference=x)
        if defended["restored"]:
            names = dataset.class_names
            return {
                "index": index,
                "original": names[attacked["original"]["label"]],
                "adversarial": names[attacked["adversarial"]["label"]],
            }
    raise AssertionError("no digit among the first 48 is fooled by FGSM and restored")


def _label(page: Any, panel: str) -> str:
    return str(page.inner_text(f"[data-testid=label-{panel}]")).split(" (")[0]


def _images_loaded(page: Any) -> list[int]:
    return list(
        page.eval_on_selector_all(
            "#results img[src]", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)"
        )
    )


def test_select_attack_defend_shows_the_models_labels(
    demo: tuple[Any, Console], served: Served, artifacts: Path
) -> None:
    page, console = demo
    case = _fgsm_then_squeezing_case(served.service, served.service.dataset)
    assert "digits MLP (test)" in page.inner_text("[data-testid=model-info]")
    assert page.locator("[data-testid=thumb]").count() == 48

    # 1. select
    page.click(f"[data-testid=thumb][data-index='{case['index']}']")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=label-original]').textContent !== '–'"
    )
    assert _label(page, "original") == case["original"]
    assert "correct" in page.inner_text("#panel-original .badge")
    assert page.locator("#panel-original .bars .track").count() == 10
    assert page.get_attribute("[data-testid=attack-btn]", "disabled") is None

    # 2. attack: FGSM, medium strength (eps 0.15)
    page.select_option("[data-testid=attack]", "fgsm")
    page.select_option("[data-testid=attack-strength]", "medium")
    assert page.input_value("[data-testid=eps]") == "0.15"
    page.click("[data-testid=attack-btn]")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=badge-adversarial]').textContent !== ''"
    )
    assert page.inner_text("[data-testid=badge-adversarial]") == "fooled"
    assert _label(page, "adversarial") == case["adversarial"] != case["original"]
    assert "L∞ 0.150" in page.inner_text("[data-testid=norms]")
    assert "changed the label" in page.inner_text("[data-testid=status]")
    assert "correct" in page.inner_text("#panel-original .badge")

    # 3. defend: feature squeezing to 1 bit
    page.select_option("[data-testid=defence]", "feature_squeezing")
    page.select_option("[data-testid=defence-strength]", "high")
    page.click("[data-testid=defend-btn]")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=badge-defended]').textContent !== ''"
    )
    assert page.inner_text("[data-testid=badge-defended]") == "label restored"
    assert _label(page, "defended") == case["original"]

    widths = _images_loaded(page)
    assert len(widths) == 4 and all(w == 8 for w in widths), widths
    for panel in ("original", "adversarial", "defended"):
        assert page.locator(f"#panel-{panel} .bars .track").count() == 10
    shot = artifacts / "web-demo.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert console.errors == []


def test_custom_eps_upload_and_refusals_in_the_page(
    demo: tuple[Any, Console], artifacts: Path
) -> None:
    page, console = demo
    # A custom eps from the slider reaches the attack.
    page.click("[data-testid=thumb][data-index='0']")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=label-original]').textContent !== '–'"
    )
    page.select_option("[data-testid=attack]", "pgd")
    page.fill("[data-testid=eps]", "0.3")
    page.dispatch_event("[data-testid=eps]", "input")
    assert page.input_value("[data-testid=attack-strength]") == "custom"
    page.click("[data-testid=attack-btn]")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=badge-adversarial]').textContent !== ''"
    )
    assert "L∞ 0.300" in page.inner_text("[data-testid=norms]")
    assert page.inner_text("[data-testid=badge-adversarial]") == "fooled"
    # C&W has no eps: the slider is disabled.
    page.select_option("[data-testid=attack]", "cw_l2")
    assert page.is_disabled("[data-testid=eps]")

    # An uploaded PNG becomes the original; the other panels are cleared.
    digit = np.zeros((64, 64), np.uint8)
    digit[8:56, 24:40] = 255
    buffer = io.BytesIO()
    Image.fromarray(digit).save(buffer, format="PNG")
    page.set_input_files(
        "[data-testid=upload]",
        files=[{"name": "one.png", "mimeType": "image/png", "buffer": buffer.getvalue()}],
    )
    page.wait_for_function(
        "() => document.querySelector('#panel-original .badge').textContent.includes('uploaded')"
    )
    assert _label(page, "adversarial") == "–"
    assert console.errors == []

    # A refused upload is explained on the page (the 415 itself is the only console line).
    page.set_input_files(
        "[data-testid=upload]",
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}],
    )
    page.wait_for_function(
        "() => document.querySelector('[data-testid=status]').className === 'error'"
    )
    status = page.inner_text("[data-testid=status]")
    assert "Upload refused" in status and "PNG" in status and "415" in status
    assert all("415" in e for e in console.errors), console.errors
    page.screenshot(path=str(artifacts / "web-demo-upload.png"), full_page=True)


def test_every_link_of_the_page_answers(demo: tuple[Any, Console], served: Served) -> None:
    """The footer once linked /docs, a page the app does not serve (404)."""
    page, console = demo
    hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
    assert hrefs, "the page has no links"
    assert not any(h.endswith("/docs") for h in hrefs)
    for href in hrefs:
        if href.startswith(served.url):
            assert page.request.get(href).status == 200, href
    assert not console.errors


def test_adaptive_attack_step_breaks_what_the_defence_restored(
    demo: tuple[Any, Console], served: Served, artifacts: Path
) -> None:
    """Step 4 teaches the arms race: JPEG restores the label FGSM changed, and PGD through
    the JPEG (BPDA) changes it again; the page shows what the API computes."""
    page, console = demo
    service = served.service
    index = None
    for i in range(48):
        x, _ = service.image("digits", i)
        attacked = service.attack(x, attack="fgsm", strength="medium")
        if not attacked["label_changed"]:
            continue
        x_adv = np.asarray(attacked["adversarial"]["pixels"], np.float32)[None]
        if not service.defend(x_adv, defence="jpeg", strength="medium", reference=x)["restored"]:
            continue
        if service.adaptive_attack(x, defence="jpeg")["defence_broken"]:
            index, expected = i, service.adaptive_attack(x, defence="jpeg")
            break
    assert index is not None, "no digit among the first 48 shows the arms race with JPEG"
    assert page.get_attribute("[data-testid=adaptive-btn]", "disabled") is not None

    page.click(f"[data-testid=thumb][data-index='{index}']")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=label-original]').textContent !== '–'"
    )
    page.select_option("[data-testid=attack]", "fgsm")
    page.select_option("[data-testid=attack-strength]", "medium")
    page.click("[data-testid=attack-btn]")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=badge-adversarial]').textContent !== ''"
    )
    page.select_option("[data-testid=defence]", "jpeg")
    page.select_option("[data-testid=defence-strength]", "medium")
    page.click("[data-testid=defend-btn]")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=badge-defended]').textContent !== ''"
    )
    assert page.inner_text("[data-testid=badge-defended]") == "label restored"

    # 4. the adaptive attack, through the JPEG
    assert page.get_attribute("[data-testid=adaptive-btn]", "disabled") is None
    page.click("[data-testid=adaptive-btn]")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=badge-adaptive]').textContent !== ''"
    )
    assert page.inner_text("[data-testid=badge-adaptive]") == "defence broken"
    assert _label(page, "adaptive") == expected["defended"]["label_name"]
    status = page.inner_text("[data-testid=status]")
    assert "BPDA" in status and "only hid the gradients" in status
    widths = _images_loaded(page)
    assert len(widths) == 5 and all(w == 8 for w in widths), widths
    page.screenshot(path=str(artifacts / "web-demo-adaptive.png"), full_page=True)
    assert console.errors == []


def test_a_tabular_model_gets_a_table_of_test_rows(
    browser: Any, tmp_path: Path, artifacts: Path
) -> None:
    """A model of feature vectors (breast-cancer) once showed "Could not load the gallery:
    404"; it now lists its test rows with their feature values, and attack and defence
    work on the selected row (the image-only defences are greyed out with the reason)."""
    from advml.models.reference import reference_model

    ds = load_dataset("breast-cancer")
    model, _ = reference_model(ds, show_progress=False)
    service = DemoService(model, ds, model_description="breast-cancer MLP (test)", timeout=30)
    with _running(service) as url:
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(30_000)
        console = Console(page)
        try:
            page.goto(url + "/")
            page.wait_for_selector("body[data-ready=true]")
            assert "Could not load" not in page.inner_text("[data-testid=status]")
            rows = page.locator("[data-testid=row]")
            assert rows.count() == 48 and page.locator("[data-testid=thumb]").count() == 0
            first = rows.nth(0).inner_text()
            names = ds.class_names
            assert first.startswith(f"#0 {names[int(ds.y_test[0])]}: ")  # spaces collapse
            assert f"{ds.x_test[0][0]:.2f}" in first
            assert page.is_disabled("[data-testid=defence] option[value=jpeg]")
            assert page.input_value("[data-testid=defence]") == "gaussian_noise"

            rows.nth(0).click()
            page.wait_for_function(
                "() => document.querySelector('[data-testid=label-original]').textContent !== '–'"
            )
            expected = service.gallery_view(ds.name, 0)["label_name"]
            assert _label(page, "original") == expected
            page.select_option("[data-testid=attack]", "pgd")
            page.click("[data-testid=attack-btn]")
            page.wait_for_function(
                "() => document.querySelector('[data-testid=badge-adversarial]').textContent !== ''"
            )
            assert "changed the label" in page.inner_text("[data-testid=status]")
            page.click("[data-testid=defend-btn]")
            page.wait_for_function(
                "() => document.querySelector('[data-testid=badge-defended]').textContent !== ''"
            )
            page.screenshot(path=str(artifacts / "web-demo-tabular.png"), full_page=True)
            assert console.errors == []
        finally:
            context.close()
