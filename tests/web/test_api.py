"""The web demo's JSON API, in-process: every endpoint, bad input, limits.

The model is the suite's digits MLP (a copy: the demo's queries count on it); the
gallery is the embedded digits dataset, whose test split is the one the
MLP was not trained on.
"""

from __future__ import annotations

import base64
import copy
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from advml.data import Dataset, load_dataset
from advml.models import CallableClassifier, TorchClassifier
from advml.web import DemoService, create_app
from advml.web.app import AttackName, DefenceName
from advml.web.service import ATTACKS, DEFENCES


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


@pytest.fixture(scope="module")
def service(
    digits: Dataset, digits_mlp: TorchClassifier, tmp_path_factory: pytest.TempPathFactory
) -> DemoService:
    svc = DemoService(
        copy.deepcopy(digits_mlp),
        digits,
        model_description="digits MLP",
        timeout=30,
        cache_dir=tmp_path_factory.mktemp("web-cache"),
    )
    return svc


@pytest.fixture(scope="module")
def client(service: DemoService) -> Iterator[TestClient]:
    with TestClient(create_app(service, prepare_defences=False)) as c:
        yield c


@pytest.fixture(scope="module")
def correct(digits: Dataset, digits_mlp: TorchClassifier) -> list[int]:
    """Test indices the model labels correctly (the first ten)."""
    pred = digits_mlp.predict(digits.x_test)
    return [int(i) for i in np.flatnonzero(pred == digits.y_test)[:10]]


def _decode(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def _png(array: np.ndarray, mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def _npz(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _detail(response: Any) -> str:
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    return str(body["detail"])


# -- what there is -----------------------------------------------------------------------
def test_info_lists_every_attack_and_defence(client: TestClient) -> None:
    info = client.get("/api/info").json()
    assert [a["name"] for a in info["attacks"]] == list(ATTACKS)
    assert [d["name"] for d in info["defences"]] == list(DEFENCES)
    assert set(AttackName.__args__) == set(ATTACKS)  # type: ignore[attr-defined]
    assert set(DefenceName.__args__) == set(DEFENCES)  # type: ignore[attr-defined]
    assert all(a["unavailable"] is None for a in info["attacks"])
    assert info["input_shape"] == [1, 8, 8]
    assert info["class_names"] == [str(i) for i in range(10)]
    pgd = next(a for a in info["attacks"] if a["name"] == "pgd")
    assert pgd["has_eps"] and pgd["eps"]["low"] < pgd["eps"]["medium"] < pgd["eps"]["high"]
    assert not next(a for a in info["attacks"] if a["name"] == "cw_l2")["has_eps"]


def test_datasets_are_the_embedded_image_sets(client: TestClient) -> None:
    sets = {d["name"]: d for d in client.get("/api/datasets").json()}
    assert set(sets) == {"digits", "mnist-5k"}
    assert sets["digits"]["model_dataset"] and not sets["digits"]["resized"]
    assert sets["mnist-5k"]["resized"] and sets["mnist-5k"]["input_shape"] == [1, 28, 28]


def test_thumbnails_page_through_the_test_split(client: TestClient, digits: Dataset) -> None:
    page = client.get("/api/datasets/digits/images", params={"offset": 355, "limit": 10}).json()
    assert page["total"] == digits.n_test == 360
    assert [im["index"] for im in page["images"]] == list(range(355, 360))
    assert [im["label"] for im in page["images"]] == digits.y_test[355:].tolist()
    pixels = _decode(page["images"][0]["image"])
    assert pixels.shape == (8, 8)
    expected = np.round(digits.x_test[355, 0] * 255).astype(np.uint8)
    np.testing.assert_array_equal(pixels, expected)


def test_gallery_image_carries_the_models_answer(
    client: TestClient, digits: Dataset, digits_mlp: TorchClassifier
) -> None:
    body = client.get("/api/datasets/digits/images/7").json()
    probs = digits_mlp.predict_proba(digits.x_test[7:8])[0]
    assert body["true_label"] == int(digits.y_test[7])
    assert body["label"] == int(probs.argmax())
    np.testing.assert_allclose(body["confidences"], probs, atol=1e-5)
    assert body["confidence"] == pytest.approx(float(probs.max()), abs=1e-5)
    np.testing.assert_array_equal(np.asarray(body["pixels"], np.float32), digits.x_test[7])


def test_image_of_the_other_dataset_is_resized_to_the_model(client: TestClient) -> None:
    body = client.get("/api/datasets/mnist-5k/images/0").json()
    x = np.asarray(body["pixels"])
    assert x.shape == (1, 8, 8)
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.3


@pytest.mark.parametrize(
    ("path", "word"),
    [
        ("/api/datasets/cifar10/images", "dataset"),
        ("/api/datasets/digits/images/360", "index"),
        ("/api/datasets/digits/images?limit=0", "limit"),
        ("/api/datasets/digits/images?offset=-1", "offset"),
        ("/api/datasets/digits/images/abc", "index"),
    ],
)
def test_bad_gallery_requests_name_the_parameter(client: TestClient, path: str, word: str) -> None:
    r = client.get(path)
    assert r.status_code == 422
    assert word in _detail(r)


# -- attack ------------------------------------------------------------------------------
def _attack(client: TestClient, index: int, attack: str, **extra: Any) -> dict[str, Any]:
    body = {"image": {"dataset": "digits", "index": index}, "attack": attack, **extra}
    r = client.post("/api/attack", json=body)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_pgd_high_changes_the_label_of_every_image(
    client: TestClient, correct: list[int], digits_mlp: TorchClassifier
) -> None:
    for index in correct[:5]:
        out = _attack(client, index, "pgd", strength="high")
        assert out["label_changed"]
        x_adv = np.asarray(out["adversarial"]["pixels"], np.float32)[None]
        x = np.asarray(out["original"]["pixels"], np.float32)[None]
        # The labels shown are the model's own answers on the pixels returned.
        assert int(digits_mlp.predict(x_adv)[0]) == out["adversarial"]["label"]
        assert int(digits_mlp.predict(x)[0]) == out["original"]["label"]
        assert np.abs(x_adv - x).max() <= 0.3 + 1e-6
        assert out["perturbation"]["linf"] == pytest.approx(np.abs(x_adv - x).max(), abs=1e-6)
        assert out["settings"]["steps"] == 40


@pytest.mark.parametrize("attack", ["fgsm", "cw_l2", "greedy_pixel", "square"])
def test_every_attack_at_high_strength_fools_the_model(
    client: TestClient, correct: list[int], attack: str
) -> None:
    out = _attack(client, correct[0], attack, strength="high")
    assert out["label_changed"]
    assert out["adversarial"]["label"] != out["original"]["label"]
    magnified = _decode(out["perturbation"]["image"])
    assert magnified.shape == (8, 8, 3)
    assert out["perturbation"]["l0"] > 0 and out["perturbation"]["magnification"] >= 1


def test_strength_and_eps_set_the_budget(client: TestClient, correct: list[int]) -> None:
    low = _attack(client, correct[1], "fgsm", strength="low")
    high = _attack(client, correct[1], "fgsm", strength="high")
    assert low["perturbation"]["linf"] == pytest.approx(0.05, abs=1e-6)
    assert high["perturbation"]["linf"] == pytest.approx(0.3, abs=1e-6)
    custom = _attack(client, correct[1], "pgd", strength="low", eps=0.02)
    assert custom["settings"]["eps"] == pytest.approx(0.02)
    assert custom["perturbation"]["linf"] <= 0.02 + 1e-6


def test_attack_on_pixels_equals_attack_on_the_gallery_image(
    client: TestClient, digits: Dataset
) -> None:
    by_ref = _attack(client, 3, "pgd", strength="medium")
    body = {"image": {"pixels": digits.x_test[3].tolist()}, "attack": "pgd"}
    by_pixels = client.post("/api/attack", json=body).json()
    assert by_pixels["adversarial"]["pixels"] == by_ref["adversarial"]["pixels"]


@pytest.mark.parametrize(
    ("body", "word"),
    [
        ({"attack": "nope"}, "attack"),
        ({"attack": "pgd", "strength": "extreme"}, "strength"),
        ({"attack": "pgd", "eps": 0}, "eps"),
        ({"attack": "pgd", "eps": 1.5}, "eps"),
        ({"attack": "cw_l2", "eps": 0.1}, "eps"),
        ({"attack": "pgd", "image": {"pixels": [[0.5] * 8] * 8}}, "image.pixels"),
        ({"attack": "pgd", "image": {"pixels": [[[2.0] * 8] * 8]}}, "bounds"),
        ({"attack": "pgd", "image": {"pixels": [[["a"] * 8] * 8]}}, "image.pixels"),
        ({"attack": "pgd", "image": {"dataset": "digits"}}, "image"),
        ({"attack": "pgd", "image": {"dataset": "digits", "index": 0, "pixels": []}}, "image"),
        ({"attack": "pgd", "image": {"dataset": "digits", "index": -1}}, "image.index"),
        ({"image": {"dataset": "digits", "index": 0}}, "attack"),
    ],
)
def test_bad_attack_requests_name_the_parameter(
    client: TestClient, body: dict[str, Any], word: str
) -> None:
    payload = {"image": {"dataset": "digits", "index": 0}, **body}
    r = client.post("/api/attack", json=payload)
    assert r.status_code == 422
    assert word in _detail(r)


def test_nan_pixels_are_refused(client: TestClient) -> None:
    row = ", ".join(["NaN"] + ["0.5"] * 7)
    pixels = "[[" + ", ".join([f"[{row}]"] * 8) + "]]"
    content = '{"image": {"pixels": ' + pixels + '}, "attack": "fgsm"}'
    r = client.post("/api/attack", content=content, headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert "NaN" in _detail(r)


# -- defend ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "defence", ["gaussian_noise", "median_smoothing", "feature_squeezing", "jpeg"]
)
@pytest.mark.parametrize("strength", ["low", "high"])
def test_defence_output_keeps_the_input_shape(
    client: TestClient,
    digits: Dataset,
    digits_mlp: TorchClassifier,
    defence: str,
    strength: str,
) -> None:
    body = {
        "image": {"dataset": "digits", "index": 5},
        "defence": defence,
        "strength": strength,
        "original": {"dataset": "digits", "index": 5},
    }
    r = client.post("/api/defend", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    x_def = np.asarray(out["defended"]["pixels"], np.float32)
    assert x_def.shape == (1, 8, 8)
    assert 0.0 <= x_def.min() and x_def.max() <= 1.0
    assert not np.array_equal(x_def, digits.x_test[5])
    assert out["defended"]["label"] == int(digits_mlp.predict(x_def[None])[0])
    assert out["restored"] == (out["defended"]["label"] == out["original_label"])
    assert _decode(out["defended"]["image"]).shape == (8, 8)


def test_feature_squeezing_undoes_some_fgsm_attacks(client: TestClient, correct: list[int]) -> None:
    """1-bit squeezing rounds many eps = 0.15 steps away (Xu et al. 2018, Table 3).

    Measured on the first 60 correctly labelled test digits: FGSM fools 48, and squeezing
    restores the label on 31 of those; a defence that did nothing would restore none.
    """
    fooled = restored = 0
    for index in correct:
        attacked = _attack(client, index, "fgsm", strength="medium")
        if not attacked["label_changed"]:
            continue
        fooled += 1
        body = {
            "image": {"pixels": attacked["adversarial"]["pixels"]},
            "defence": "feature_squeezing",
            "strength": "high",
            "original": {"dataset": "digits", "index": index},
        }
        out = client.post("/api/defend", json=body).json()
        assert out["original_label"] == attacked["original"]["label"]
        assert out["input"]["label"] == attacked["adversarial"]["label"]
        restored += out["restored"]
    assert fooled >= 7  # of 10
    assert restored >= 3


@pytest.mark.slow
def test_autoencoder_is_trained_in_the_background_once_then_cached(
    digits: Dataset, digits_mlp: TorchClassifier, tmp_path: Path
) -> None:
    svc = DemoService(copy.deepcopy(digits_mlp), digits, cache_dir=tmp_path)
    body = {"image": {"dataset": "digits", "index": 2}, "defence": "autoencoder"}
    with TestClient(create_app(svc, prepare_defences=False)) as c:
        r = c.post("/api/defend", json=body)
        assert r.status_code == 503  # the first request starts the training
        assert "autoencoder" in _detail(r) and "try again" in _detail(r)
        assert svc.wait_for_defences(timeout=300)
        files = sorted(p.name for p in tmp_path.iterdir())
        assert files == [f"web-autoencoder-digits-{s}-seed0.pt" for s in ("high", "low", "medium")]
        r = c.post("/api/defend", json={**body, "strength": "high"})
        assert r.status_code == 200, r.text
        x_def = np.asarray(r.json()["defended"]["pixels"])
        assert x_def.shape == (1, 8, 8) and not np.allclose(x_def, digits.x_test[2])
    again = DemoService(copy.deepcopy(digits_mlp), digits, cache_dir=tmp_path)
    again.prepare_autoencoders(background=False)
    # Read back from the cache, not trained again.
    assert all(again.defence("autoencoder", s).history_ is None for s in ("low", "high"))  # type: ignore[attr-defined]


def test_bad_defence_requests_name_the_parameter(client: TestClient) -> None:
    for body, word in [
        ({"defence": "dropout"}, "defence"),
        ({"defence": "jpeg", "strength": "max"}, "strength"),
        ({"defence": "jpeg", "original": {"dataset": "digits"}}, "original"),
    ]:
        payload = {"image": {"dataset": "digits", "index": 0}, **body}
        r = client.post("/api/defend", json=payload)
        assert r.status_code == 422, body
        assert word in _detail(r)


# -- uploads -----------------------------------------------------------------------------
def test_png_and_jpeg_uploads_are_converted_to_the_models_input(
    client: TestClient, digits_mlp: TorchClassifier
) -> None:
    big = np.zeros((64, 64), np.uint8)
    big[8:56, 24:40] = 255  # a "1", light on dark: pixel columns 3 and 4 of 8
    for data, kind in [(_png(big), "png"), (_jpeg(big), "jpeg")]:
        r = client.post("/api/upload", content=data)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["kind"] == kind
        x = np.asarray(out["pixels"], np.float32)
        assert x.shape == (1, 8, 8)
        assert x[0, 1:7, 3:5].min() > 0.9 and x[0, :, :3].max() < 0.1
        assert out["label"] == int(digits_mlp.predict(x[None])[0])
    inverted = client.post("/api/upload?invert=true", content=_png(255 - big)).json()
    plain = client.post("/api/upload", content=_png(big)).json()["pixels"]
    np.testing.assert_allclose(inverted["pixels"], plain, rtol=1e-5, atol=1e-6)
    rgb = np.stack([big] * 3, axis=-1)
    out = client.post("/api/upload", content=_png(rgb, "RGB")).json()
    assert np.asarray(out["pixels"]).shape == (1, 8, 8)


def _jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def test_npz_upload_keeps_the_values(client: TestClient, digits: Dataset) -> None:
    for arrays in ({"x": digits.x_test[9]}, {"image": digits.x_test[9, 0]}):
        r = client.post("/api/upload", content=_npz(**arrays))
        assert r.status_code == 200, r.text
        np.testing.assert_array_equal(np.asarray(r.json()["pixels"], np.float32), digits.x_test[9])
    pixels = np.round(digits.x_test[9] * 255).astype(np.uint8)
    out = client.post("/api/upload", content=_npz(x=pixels)).json()
    np.testing.assert_allclose(out["pixels"], pixels / 255.0, rtol=1e-6, atol=1e-6)


def _object_npz() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, x=np.array([{"a": 1}], dtype=object))
    return buffer.getvalue()


def _truncated_png() -> bytes:
    return _png(np.full((32, 32), 128, np.uint8))[:60]


def _bad_crc_png() -> bytes:
    data = bytearray(_png(np.arange(64 * 64, dtype=np.uint32).reshape(64, 64).astype(np.uint8)))
    data[40:60] = b"\x00" * 20  # inside the image data
    return bytes(data)


def _huge_png() -> bytes:
    # A tiny file that declares a 5000 x 5000 image (a decompression bomb in miniature).
    return _png(np.zeros((5000, 5000), np.uint8))


@pytest.mark.parametrize(
    ("data", "status", "word"),
    [
        (b"GIF89a\x01\x00\x01\x00", 415, "PNG"),
        (b"%PDF-1.4 hello", 415, "unsupported"),
        (b"", 422, "empty"),
        (_truncated_png(), 422, "PNG"),
        (_bad_crc_png(), 422, "PNG"),
        (b"\xff\xd8\xff\xe0garbage", 422, "JPEG"),
        (_huge_png(), 413, "pixels"),
        (_npz(x=np.zeros((5, 5), np.float32)), 422, "shape"),
        (_npz(x=np.zeros((3, 8, 8), np.float32)), 422, "shape"),
        (_npz(x=np.full((1, 8, 8), np.nan, np.float32)), 422, "NaN"),
        (_npz(x=np.full((1, 8, 8), 3.0, np.float32)), 422, "bounds"),
        (_npz(x=np.array(["a"] * 64).reshape(1, 8, 8)), 422, "dtype"),
        (_npz(a=np.zeros((8, 8)), b=np.zeros((8, 8))), 422, "'x'"),
        (_object_npz(), 422, ".npz"),
        (b"PK\x03\x04 not really a zip", 422, ".npz"),
    ],
    ids=[
        "gif",
        "pdf",
        "empty",
        "truncated-png",
        "corrupt-png",
        "corrupt-jpeg",
        "huge-png",
        "npz-5x5",
        "npz-3-channels",
        "npz-nan",
        "npz-out-of-bounds",
        "npz-strings",
        "npz-two-arrays",
        "npz-pickled-object",
        "corrupt-zip",
    ],
)
def test_bad_uploads_get_a_4xx_with_a_message(
    client: TestClient, data: bytes, status: int, word: str
) -> None:
    r = client.post("/api/upload", content=data)
    assert r.status_code == status, r.text
    assert word in _detail(r)


def test_bodies_over_the_limit_are_refused_before_reading(service: DemoService) -> None:
    app = create_app(service, max_upload_bytes=1000, prepare_defences=False)
    with TestClient(app) as c:
        r = c.post("/api/upload", content=_png(np.zeros((8, 8), np.uint8)) + b"\0" * 2000)
        assert r.status_code == 413
        assert "1000 bytes" in _detail(r)

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
            for _ in range(5):
                yield b"\0" * 400

        assert c.post("/api/upload", content=chunks()).status_code == 413
        body = {"image": {"pixels": np.zeros((1, 8, 8)).tolist()}, "attack": "fgsm"}
        assert len(json.dumps(body)) < 1000
        assert c.post("/api/attack", json=body).status_code == 200


# -- the page, the schema (time limits: test_limits.py) ----------------------------------
def test_label_only_model_offers_only_the_attacks_it_allows(digits: Dataset) -> None:
    model = CallableClassifier(
        lambda x: (x.reshape(len(x), -1).mean(1) * 20).astype(np.int64) % 10,
        input_shape=(1, 8, 8),
        n_classes=10,
        bounds=(0.0, 1.0),
        returns="labels",
    )
    svc = DemoService(model, digits)
    with TestClient(create_app(svc, prepare_defences=False)) as c:
        info = c.get("/api/info").json()
        unavailable = {a["name"]: a["unavailable"] for a in info["attacks"]}
        assert "gradients" in unavailable["pgd"] and "scores" in unavailable["square"]
        r = c.post(
            "/api/attack", json={"image": {"dataset": "digits", "index": 0}, "attack": "pgd"}
        )
        assert r.status_code == 422 and "gradients" in _detail(r)
        view = c.get("/api/datasets/digits/images/0").json()
        assert view["confidences"] is None and 0 <= view["label"] < 10


@pytest.mark.parametrize(
    ("call", "word"),
    [
        (lambda s: s.image("digits", 10**30), "index"),
        (lambda s: s.image("digits", True), "index"),
        (lambda s: s.thumbnails("digits", 10**30, 5), "offset"),
        (lambda s: s.attack_settings("pgd", "low", 10**400), "eps"),
        (lambda s: s.check_input(np.full((1, 8, 8), 10**400).tolist()), "pixels"),
        (lambda s: s.check_input([[["0.5"] * 8] * 8]), "pixels"),
        (lambda s: s.resolve(dataset="digits", index=10**30, name="original"), "original.index"),
    ],
    ids=["index-huge", "index-bool", "offset-huge", "eps-huge", "pixels-huge", "pixels-text",
         "resolve-names-the-field"],
)  # fmt: skip
def test_the_python_api_names_the_parameter(service: DemoService, call: Any, word: str) -> None:
    with pytest.raises((ValueError, TypeError), match=word) as err:
        call(service)
    assert "ufunc" not in str(err.value)


def test_model_and_dataset_must_match(digits_mlp: TorchClassifier) -> None:
    with pytest.raises(ValueError, match="mnist-5k"):
        DemoService(copy.deepcopy(digits_mlp), load_dataset("mnist-5k"))


def test_other_hosts_are_refused_when_hosts_are_restricted(service: DemoService) -> None:
    app = create_app(service, allowed_hosts=["127.0.0.1", "localhost"], prepare_defences=False)
    with TestClient(app, base_url="http://attacker.example") as c:
        assert c.get("/api/info").status_code == 400
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        assert c.get("/api/info").status_code == 200


def test_page_and_its_files_are_served_with_a_strict_policy(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "default-src 'self'" in r.headers["content-security-policy"]
    for name in ("demo.js", "demo.css"):
        assert f"/static/{name}" in r.text
        assert client.get(f"/static/{name}").status_code == 200


def test_every_link_of_the_page_is_served(client: TestClient) -> None:
    import re

    page = client.get("/").text
    links = re.findall(r'<a href="(/[^"]*)"', page)
    assert "/openapi.json" in links and "/docs" not in links
    for link in links:
        assert client.get(link).status_code == 200, link


def test_openapi_documents_every_endpoint(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    for path in (
        "/api/info",
        "/api/datasets",
        "/api/datasets/{dataset}/images",
        "/api/datasets/{dataset}/images/{index}",
    ):
        assert "get" in paths[path]
    for path in ("/api/upload", "/api/predict", "/api/attack", "/api/defend"):
        assert "requestBody" in paths[path]["post"], path
        assert "422" in paths[path]["post"]["responses"]
    attack = schema["components"]["schemas"]["AttackRequest"]["properties"]
    assert set(attack["attack"]["enum"]) == set(ATTACKS)
    # FastAPI's viewers would load scripts from a CDN: they are not served.
    assert client.get("/docs").status_code == 404
    assert client.get("/redoc").status_code == 404


def test_predict_answers_for_pixels(client: TestClient, digits: Dataset) -> None:
    r = client.post("/api/predict", json={"image": {"pixels": digits.x_test[4].tolist()}})
    assert r.status_code == 200
    gallery = client.get("/api/datasets/digits/images/4").json()
    assert r.json()["label"] == gallery["label"]
    assert r.json()["confidences"] == gallery["confidences"]


def test_json_endpoints_need_a_json_body(client: TestClient) -> None:
    body = json.dumps({"image": {"dataset": "digits", "index": 0}, "attack": "fgsm"})
    r = client.post("/api/attack", content=body, headers={"Content-Type": "text/plain"})
    assert r.status_code == 422
    assert "application/json" in _detail(r)


def test_greedy_pixel_on_large_images_changes_only_pixels_near_the_stroke() -> None:
    import torch

    from advml.models import build_architecture

    mnist = load_dataset("mnist-5k")
    torch.manual_seed(0)
    module = build_architecture(
        "cnn", input_shape=(1, 28, 28), n_classes=10, channels=(4, 8), hidden=16
    ).eval()
    model = TorchClassifier(module, input_shape=(1, 28, 28), n_classes=10)
    svc = DemoService(model, mnist)
    x, _ = svc.image("mnist-5k", 0)
    out = svc.attack(x, attack="greedy_pixel", strength="low")
    near = svc._near_stroke(x).reshape(28, 28)
    assert 50 < out["settings"]["pixels_tried"] == int(near.sum()) < 28 * 28 // 2
    changed = np.abs(np.asarray(out["adversarial"]["pixels"])[0] - x[0, 0]) > 1e-7
    assert changed.any() and not (changed & ~near).any()
    # Every pixel within 2 of ink is allowed, none further.
    ink = x[0, 0] > 0.1
    ys, xs = np.nonzero(ink)
    dist = np.full((28, 28), 99)
    for r in range(28):
        for c in range(28):
            dist[r, c] = np.max(np.abs([ys - r, xs - c]), axis=0).min()
    np.testing.assert_array_equal(near, dist <= 2)


def test_adaptive_attack_goes_through_the_defence(
    client: TestClient, service: DemoService, correct: list[int]
) -> None:
    """Step 4: PGD through the defence (BPDA for deterministic cleansing, EOT for noise);
    the answer's defended view is the deployed defence applied to the adversarial input."""
    broken = 0
    for index in correct[:4]:
        for defence, method in (("jpeg", "BPDA"), ("gaussian_noise", "EOT")):
            body = {"image": {"dataset": "digits", "index": index}, "defence": defence}
            r = client.post("/api/adaptive", json=body)
            assert r.status_code == 200, r.text
            out = r.json()
            assert out["method"] == method
            original = np.asarray(out["original"]["pixels"], np.float32)
            adv = np.asarray(out["adversarial"]["pixels"], np.float32)
            # Within the medium strength's eps (a fraction of the [0, 1] range), up to a
            # float32 rounding of the projection.
            assert np.abs(adv - original).max() <= out["settings"]["eps"] + 1e-6
            assert out["defence_broken"] == (out["defended"]["label"] != out["original"]["label"])
            if defence == "jpeg":  # deterministic: the defended view can be recomputed
                prep = service.defence("jpeg", "medium")
                again = prep(adv[None], bounds=service.bounds)
                assert out["defended"]["label"] == int(service.model.predict(again)[0])
            broken += out["defence_broken"]
    # On the digits MLP the adaptive attack gets through these defences (measured: every
    # one of these inputs through JPEG).
    assert broken >= 4


def test_adaptive_attack_refuses_bad_requests(client: TestClient) -> None:
    image = {"dataset": "digits", "index": 0}
    r = client.post("/api/adaptive", json={"image": image, "defence": "nope"})
    assert r.status_code == 422 and "defence" in r.json()["detail"]
    r = client.post("/api/adaptive", json={"image": image, "defence": "jpeg", "eps": 2.0})
    assert r.status_code == 422 and "eps" in r.json()["detail"]


def test_a_tabular_model_gets_its_test_rows_instead_of_a_gallery() -> None:
    from advml.models.reference import reference_model

    ds = load_dataset("breast-cancer")
    model, _ = reference_model(ds, show_progress=False)
    service = DemoService(model, ds, model_description="breast-cancer MLP", timeout=30)
    with TestClient(create_app(service, prepare_defences=False)) as c:
        (entry,) = c.get("/api/datasets").json()
        assert entry["name"] == "breast-cancer" and entry["tabular"] is True
        page = c.get("/api/datasets/breast-cancer/images?offset=0&limit=3").json()
        assert page["tabular"] is True and page["total"] == ds.n_test
        row = page["images"][1]
        np.testing.assert_allclose(row["features"], ds.x_test[1], atol=5e-5)  # 4 decimals
        assert row["label"] == int(ds.y_test[1])
        image = {"dataset": "breast-cancer", "index": 1}
        r = c.post("/api/attack", json={"image": image, "attack": "pgd"})
        assert r.status_code == 200 and len(r.json()["adversarial"]["pixels"]) == 30
        defences = {d["name"]: d["unavailable"] for d in c.get("/api/info").json()["defences"]}
        assert defences["gaussian_noise"] is None and defences["feature_squeezing"] is None
        assert "images only" in defences["jpeg"] and "images only" in defences["median_smoothing"]
        r = c.post("/api/defend", json={"image": image, "defence": "jpeg"})
        assert r.status_code == 422 and "images only" in r.json()["detail"]
        # The image datasets are not offered to a model of 30 features.
        assert c.get("/api/datasets/digits/images").status_code == 422
