"""Bad input to the web demo's API: one row per case, each a 4xx naming the field.

Every row sends one malformed request and asserts the status and that the message
names the request field at fault (``image.index``, ``eps``, ``request body``...), with
no numpy or Python internals in it (issue 11 §3: a web index of 10**30 used to answer
numpy's "ufunc 'isfinite'" text).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
import pytest
from fastapi.testclient import TestClient

from advml.data import load_dataset
from advml.models import CallableClassifier
from advml.web import DemoService, create_app

_MAX_BODY = 100_000
_SHAPE = (1, 8, 8)
_HUGE = 10**30


def _probs(x: np.ndarray) -> np.ndarray:
    w = np.random.default_rng(0).normal(size=(64, 10))
    z = x.reshape(len(x), -1) @ w
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    model = CallableClassifier(_probs, input_shape=_SHAPE, n_classes=10, bounds=(0.0, 1.0))
    service = DemoService(model, load_dataset("digits"), timeout=30)
    app = create_app(service, prepare_defences=False, max_upload_bytes=_MAX_BODY)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _pixels(value: Any) -> list[Any]:
    return [[[value] * 8] * 8]


def _attack(image: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    return {"image": image, "attack": "fgsm", **extra}


_OK_PIXELS = _pixels(0.5)
_RAW_PIXELS = json.dumps(_pixels(0.5))


def _raw_pixels(token: str) -> str:
    return '{"image": {"pixels": ' + _RAW_PIXELS.replace("0.5", token, 1) + '}, "attack": "fgsm"}'


def _npz(x: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, x=x)
    return buffer.getvalue()


class Case(NamedTuple):
    id: str
    method: str  # "get", "json" (a JSON body), "raw" (JSON text as given), "upload"
    path: str
    body: Any
    status: int
    field: str  # what the message must name


CASES = [
    # -- the gallery (path and query parameters) --
    Case("gallery-index-huge", "get", f"/api/datasets/digits/images/{_HUGE}", None, 422, "index"),
    Case("gallery-index-past-end", "get", "/api/datasets/digits/images/360", None, 422, "index"),
    Case("gallery-index-negative", "get", "/api/datasets/digits/images/-1", None, 422, "index"),
    Case("gallery-index-float", "get", "/api/datasets/digits/images/1.5", None, 422, "index"),
    Case("gallery-dataset-unknown", "get", "/api/datasets/cifar10/images/1", None, 422, "dataset"),
    Case("thumbs-offset-huge", "get", f"/api/datasets/digits/images?offset={_HUGE}", None, 422,
         "offset"),
    Case("thumbs-offset-text", "get", "/api/datasets/digits/images?offset=abc", None, 422,
         "offset"),
    Case("thumbs-limit-huge", "get", f"/api/datasets/digits/images?limit={_HUGE}", None, 422,
         "limit"),
    # -- an image reference --
    Case("index-huge", "json", "/api/attack", _attack({"dataset": "digits", "index": _HUGE}), 422,
         "image.index"),
    Case("index-past-end", "json", "/api/attack", _attack({"dataset": "digits", "index": 360}),
         422, "image.index"),
    Case("index-negative", "json", "/api/attack", _attack({"dataset": "digits", "index": -1}),
         422, "image.index"),
    Case("index-bool", "json", "/api/attack", _attack({"dataset": "digits", "index": True}), 422,
         "image.index"),
    Case("index-string", "json", "/api/attack", _attack({"dataset": "digits", "index": "3"}), 422,
         "image.index"),
    Case("index-float", "json", "/api/attack", _attack({"dataset": "digits", "index": 2.5}), 422,
         "image.index"),
    Case("dataset-number", "json", "/api/attack", _attack({"dataset": 5, "index": 3}), 422,
         "image.dataset"),
    Case("dataset-unknown", "json", "/api/attack", _attack({"dataset": "cifar10", "index": 3}),
         422, "image.dataset"),
    Case("image-empty", "json", "/api/attack", _attack({}), 422, "image"),
    Case("image-both", "json", "/api/attack",
         _attack({"dataset": "digits", "index": 0, "pixels": _OK_PIXELS}), 422, "image"),
    Case("image-null", "json", "/api/attack", _attack(None), 422, "image"),
    Case("image-unknown-field", "json", "/api/predict", {"image": {"pixel": _OK_PIXELS}}, 422,
         "image.pixel"),
    # -- pixels --
    Case("pixels-string", "json", "/api/attack", _attack({"pixels": "abc"}), 422, "image.pixels"),
    Case("pixels-nan", "raw", "/api/attack", _raw_pixels("NaN"), 422, "image.pixels"),
    Case("pixels-infinity", "raw", "/api/attack", _raw_pixels("-Infinity"), 422, "image.pixels"),
    Case("pixels-float-overflow", "raw", "/api/attack", _raw_pixels("1e400"), 422,
         "image.pixels"),
    Case("pixels-int-huge", "json", "/api/attack", _attack({"pixels": _pixels(_HUGE)}), 422,
         "image.pixels"),
    Case("pixels-int-beyond-float", "json", "/api/attack", _attack({"pixels": _pixels(10**400)}),
         422, "image.pixels"),
    Case("pixels-bools", "json", "/api/attack", _attack({"pixels": _pixels(True)}), 422,
         "image.pixels"),
    Case("pixels-numeric-strings", "json", "/api/attack", _attack({"pixels": _pixels("0.5")}),
         422, "image.pixels"),
    Case("pixels-nulls", "json", "/api/attack", _attack({"pixels": _pixels(None)}), 422,
         "image.pixels"),
    Case("pixels-ragged", "json", "/api/attack",
         _attack({"pixels": [[[0.5] * 8] * 7 + [[0.5] * 7]]}), 422, "image.pixels"),
    Case("pixels-wrong-shape", "json", "/api/attack", _attack({"pixels": [[0.5] * 8] * 8}), 422,
         "image.pixels"),
    Case("pixels-empty", "json", "/api/attack", _attack({"pixels": []}), 422, "image.pixels"),
    Case("pixels-out-of-bounds", "json", "/api/attack", _attack({"pixels": _pixels(1.5)}), 422,
         "image.pixels"),
    # -- the attack's parameters --
    Case("attack-unknown", "json", "/api/attack", {**_attack({"pixels": _OK_PIXELS}),
         "attack": "nope"}, 422, "attack"),
    Case("attack-missing", "json", "/api/predict", {}, 422, "image"),
    Case("strength-number", "json", "/api/attack", _attack({"pixels": _OK_PIXELS}, strength=3),
         422, "strength"),
    Case("eps-nan", "raw", "/api/attack",
         '{"image": {"pixels": ' + _RAW_PIXELS + '}, "attack": "fgsm", "eps": NaN}', 422, "eps"),
    Case("eps-bool", "json", "/api/attack", _attack({"pixels": _OK_PIXELS}, eps=True), 422, "eps"),
    Case("eps-huge", "json", "/api/attack", _attack({"pixels": _OK_PIXELS}, eps=_HUGE), 422,
         "eps"),
    Case("eps-zero", "json", "/api/attack", _attack({"pixels": _OK_PIXELS}, eps=0), 422, "eps"),
    Case("eps-text", "json", "/api/attack", _attack({"pixels": _OK_PIXELS}, eps="big"), 422,
         "eps"),
    Case("eps-without-ball", "json", "/api/attack",
         {**_attack({"pixels": _OK_PIXELS}, eps=0.1), "attack": "cw_l2"}, 422, "eps"),
    Case("field-misspelt", "json", "/api/attack", _attack({"pixels": _OK_PIXELS}, atack="pgd"),
         422, "atack"),
    # -- defend --
    Case("defence-unknown", "json", "/api/defend",
         {"image": {"pixels": _OK_PIXELS}, "defence": "dropout"}, 422, "defence"),
    Case("original-index-huge", "json", "/api/defend",
         {"image": {"pixels": _OK_PIXELS}, "defence": "jpeg",
          "original": {"dataset": "digits", "index": _HUGE}}, 422, "original.index"),
    # -- the body itself --
    Case("body-list", "json", "/api/attack", [1, 2], 422, "request body"),
    Case("body-invalid-json", "raw", "/api/attack", '{"image": ', 422, "request body"),
    Case("body-empty", "raw", "/api/attack", "", 422, "request body"),
    Case("body-nested-deep", "raw", "/api/attack",
         '{"image": {"pixels": ' + "[" * 20_000 + "]" * 20_000 + '}, "attack": "fgsm"}', 400,
         "request body"),
    Case("body-oversized", "raw", "/api/attack", " " * (_MAX_BODY + 1), 413, "request body"),
    # -- uploads --
    Case("upload-oversized", "upload", "/api/upload", b"\0" * (_MAX_BODY + 1), 413,
         "request body"),
    Case("upload-empty", "upload", "/api/upload", b"", 422, "upload"),
    Case("upload-not-an-image", "upload", "/api/upload", b"%PDF-1.4", 415, "upload"),
    Case("upload-invert-text", "upload", "/api/upload?invert=maybe", _npz(np.zeros(_SHAPE)), 422,
         "invert"),
    Case("upload-npz-nan", "upload", "/api/upload", _npz(np.full(_SHAPE, np.nan)), 422,
         "'x'"),
    Case("upload-npz-huge", "upload", "/api/upload", _npz(np.full(_SHAPE, 1e30)), 422, "'x'"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_request_is_refused_naming_the_field(client: TestClient, case: Case) -> None:
    if case.method == "get":
        r = client.get(case.path)
    elif case.method == "json":
        r = client.post(case.path, json=case.body)
    elif case.method == "raw":
        r = client.post(case.path, content=case.body, headers={"Content-Type": "application/json"})
    else:
        r = client.post(case.path, content=case.body)
    assert r.status_code == case.status, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str)
    assert case.field in detail, detail
    for internal in ("ufunc", "Traceback", "numpy", "object of type", "internal error"):
        assert internal not in detail, detail


def test_ids_are_unique() -> None:
    assert len({c.id for c in CASES}) == len(CASES)
