"""The command line: ``advml serve-model`` and ``--target-url`` on attack and audit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _servers import Server
from fastapi.testclient import TestClient

from advml.cli import main
from advml.models.torch import TorchClassifier


def _served_app(
    argv: list[str], digits_mlp: TorchClassifier, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    import uvicorn

    from advml.models.io import save_model

    path = save_model(digits_mlp, tmp_path / "digits.pt")
    made: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: made.update(app=app, run=kw))
    assert main(["serve-model", "--dataset", "digits", "--model", str(path), *argv]) == 0
    return made


def test_serve_model_serves_the_protocol(
    digits_mlp: TorchClassifier,
    digits_data: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SERVE_KEY", "k-123")
    made = _served_app(
        ["--outputs", "top-k:2", "--round", "3", "--api-key-env", "SERVE_KEY", "--port", "9"],
        digits_mlp,
        tmp_path,
        monkeypatch,
    )
    assert made["run"]["host"] == "127.0.0.1" and made["run"]["port"] == 9
    client = TestClient(made["app"])
    x = digits_data.x_test[:3]
    body = {"inputs": x.tolist()}
    assert client.post("/predict", json=body).status_code == 401
    r = client.post("/predict", json=body, headers={"Authorization": "Bearer k-123"})
    top = r.json()["top_k"]
    p = digits_mlp.predict_proba(x)
    assert [t["labels"][0] for t in top] == p.argmax(1).tolist()
    np.testing.assert_allclose([t["scores"][0] for t in top], np.round(p.max(1), 3), atol=1e-9)
    bad = client.post("/predict", json={"inputs": [[0.5] * 3]}, headers={"X-API-Key": "k-123"})
    assert bad.status_code == 422 and "expects [1, 8, 8]" in bad.json()["error"]
    ragged = {"inputs": [x[0].tolist(), [[0.5] * 3]]}
    bad = client.post("/predict", json=ragged, headers={"X-API-Key": "k-123"})
    assert bad.status_code == 422 and "each input of shape [1, 8, 8]" in bad.json()["error"]


def test_serve_model_rate_limit_answers_429(
    digits_mlp: TorchClassifier, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = _served_app(["--rate-limit", "1/min"], digits_mlp, tmp_path, monkeypatch)
    client = TestClient(made["app"])
    body = {"inputs": [np.zeros((1, 8, 8)).tolist()]}
    assert client.post("/predict", json=body).status_code == 200
    r = client.post("/predict", json=body)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1


def test_serve_model_raw_bodies(
    digits_mlp: TorchClassifier, digits_data: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from advml.models.http import RAW_INPUTS, RAW_SCORES

    client = TestClient(_served_app([], digits_mlp, tmp_path, monkeypatch)["app"])
    x = np.ascontiguousarray(digits_data.x_test[:5], dtype=np.float32)
    raw = {"Content-Type": RAW_INPUTS, "X-Advml-Shape": "5,1,8,8"}
    r = client.post("/predict", content=x.tobytes(), headers=raw)
    assert r.status_code == 200 and r.headers["content-type"] == RAW_SCORES
    assert r.headers["x-advml-shape"] == "5,10" and r.headers["x-advml-protocol"] == "2"
    p = np.frombuffer(r.content, dtype=np.float64).reshape(5, 10)
    np.testing.assert_allclose(p, digits_mlp.predict_proba(x), rtol=1e-6, atol=1e-7)
    short = client.post("/predict", content=x.tobytes()[:-4], headers=raw)
    assert short.status_code == 400 and "X-Advml-Shape [5, 1, 8, 8] needs 1280" in short.text
    bare = client.post("/predict", content=x.tobytes(), headers={"Content-Type": RAW_INPUTS})
    assert bare.status_code == 400 and "needs the header X-Advml-Shape" in bare.text
    wrong = client.post(
        "/predict", content=x.tobytes(), headers={**raw, "X-Advml-Shape": "5,64"}
    )  # the right size, the wrong input shape
    assert wrong.status_code == 422 and "expects [1, 8, 8]" in wrong.text


def test_serve_model_refuses_an_oversized_body_before_reading_it(
    digits_mlp: TorchClassifier, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from advml.models.http_server import MAX_INPUTS

    made = _served_app([], digits_mlp, tmp_path, monkeypatch)
    client = TestClient(made["app"])
    limit = MAX_INPUTS * 64 * 24 + (1 << 20)  # 64 values an input, ~24 characters each
    r = client.post("/predict", content=b" " * (limit + 1))
    assert r.status_code == 413 and f"over {limit} bytes" in r.json()["error"]
    # Under the limit but not JSON: 400, and a GET is not a prediction.
    assert client.post("/predict", content=b"{").status_code == 400
    assert client.get("/predict").status_code == 405


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--outputs", "top-3"], "--outputs must be probs, labels or top-k:K"),
        (["--rate-limit", "lots"], "rate_limit must look like"),
        (["--api-key-env", "ADVML_NO_SUCH_VAR"], "ADVML_NO_SUCH_VAR: the environment variable"),
        (["--port", "0"], "--port"),
    ],
)
def test_serve_model_bad_options(
    argv: list[str], match: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve-model", "--dataset", "digits", *argv]) == 2
    assert match in capsys.readouterr().err


def test_attack_and_extract_through_target_url(
    serve: Callable[..., Server],
    digits_mlp: TorchClassifier,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    s = serve(digits_mlp)
    out = tmp_path / "adv.npz"
    argv = ["--dataset", "digits", "--target-url", s.url, "--n-samples", "10"]
    code = main(["attack", *argv, "--attack", "square", "--eps", "0.1",
                 "--set", "max_queries=20", "--out", str(out)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    with np.load(out) as adv:
        assert np.abs(adv["x_adv"] - adv["x"]).max() <= 0.1 + 1e-6
    code = main(["attack", *argv, "--attack", "pgd", "--out", str(out)])
    assert code == 2 and "gradients" in capsys.readouterr().err
    code = main(["extract", "--dataset", "digits", "--target-url", s.url, "--queries", "200",
                 "--max-queries", "100"])  # fmt: skip
    assert code == 2 and "query budget" in capsys.readouterr().err


def test_audit_refuses_a_plan_above_max_queries(
    serve: Callable[..., Server], digits_mlp: TorchClassifier, tmp_path: Path, capsys: Any
) -> None:
    s = serve(digits_mlp)
    argv = ["audit", "--dataset", "digits", "--target-url", s.url, "--quick"]
    assert main([*argv, "--max-queries", "1000", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "more than max_queries=1,000" in err
    assert s.model.query_count == 0  # refused before the first query
