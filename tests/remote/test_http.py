"""HTTPClassifier against a real server: answers, what the API reveals, queries counted
once, the answer cache, and encodings."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from _servers import Server

from advml.errors import QueryBudgetExceededError, UnsupportedModelError
from advml.models.http import HTTPClassifier, TargetSpec, load_target, parse_rate
from advml.models.torch import TorchClassifier

SHAPE = (1, 8, 8)


def _client(url: str | TargetSpec, **kw: object) -> HTTPClassifier:
    return HTTPClassifier(url, input_shape=SHAPE, n_classes=10, bounds=(0.0, 1.0), **kw)  # type: ignore[arg-type]


def test_probabilities_match_the_model_in_process(
    serve: Callable[..., Server], digits_mlp: TorchClassifier, digits_data: object
) -> None:
    s = serve(digits_mlp)
    model = _client(s.url)
    assert model.reveals == "probabilities" and model.has_scores and not model.has_gradients
    x = digits_data.x_test[:150]  # type: ignore[attr-defined]
    # JSON carries float32 values exactly; log then softmax on the client rounds once more.
    np.testing.assert_allclose(
        model.predict_proba(x), digits_mlp.predict_proba(x), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(model.predict(x), digits_mlp.predict(x))
    assert "HTTP API POST http://127.0.0.1" in model.describe()
    # An advml server was recognised: batches travel as float32 bytes, not JSON floats,
    # and with protocol 2 as a raw body rather than base64 in JSON.
    assert model.binary and model._raw_ok
    lists = _client(TargetSpec(url=s.url, returns="probs"))
    assert not lists.binary
    np.testing.assert_array_equal(lists.predict_proba(x), model.predict_proba(x))


def test_a_protocol_1_server_gets_base64_batches(
    serve: Callable[..., Server],
    digits_mlp: TorchClassifier,
    digits_data: object,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import advml.models.http_server as server_module

    # An advml server from before raw bodies: the client keeps to the base64 batch form.
    monkeypatch.setattr(server_module, "_PROTOCOL", {"X-Advml-Protocol": "1"})
    s = serve(digits_mlp)
    model = _client(s.url)
    x = digits_data.x_test[:40]  # type: ignore[attr-defined]
    p = model.predict_proba(x)
    assert model.binary and not model._raw_ok
    np.testing.assert_allclose(p, digits_mlp.predict_proba(x), rtol=1e-5, atol=1e-6)


def test_each_distinct_input_is_one_query_and_repeats_are_free(
    serve: Callable[..., Server], digits_mlp: TorchClassifier, digits_data: object
) -> None:
    s = serve(digits_mlp)
    model = _client(TargetSpec(url=s.url, returns="probs", inputs_per_request=40))
    x = digits_data.x_test[:100]  # type: ignore[attr-defined]
    batch = np.concatenate([x, x[:30]])  # 30 repeats inside one call
    model.predict(batch)
    assert model.query_count == 100
    assert model.requests_sent == 3  # 40 + 40 + 20 distinct inputs
    model.predict_proba(x)
    assert model.query_count == 100 and model.cache_hits == 30 + 100
    assert s.model.query_count == 100  # what the server computed


def test_budget_refuses_before_sending(
    serve: Callable[..., Server], digits_mlp: TorchClassifier, digits_data: object
) -> None:
    s = serve(digits_mlp)
    model = _client(TargetSpec(url=s.url, returns="probs"), query_budget=50)
    x = digits_data.x_test[:80]  # type: ignore[attr-defined]
    with pytest.raises(QueryBudgetExceededError, match="query_budget=50"):
        model.predict(x)
    assert model.query_count == 0 and s.model.query_count == 0
    model.predict(x[:50])
    model.predict(x[:50])  # cached: free even with the budget spent
    assert model.query_count == 50 == s.model.query_count


def test_answer_cache_is_read_back_by_a_new_client(
    serve: Callable[..., Server], digits_mlp: TorchClassifier, digits_data: object, tmp_path: Path
) -> None:
    s = serve(digits_mlp)
    spec = TargetSpec(url=s.url, returns="probs")
    x = digits_data.x_test[:60]  # type: ignore[attr-defined]
    first = _client(spec, cache_dir=tmp_path)
    p1 = first.predict_proba(x)
    second = _client(spec, cache_dir=tmp_path)
    p2 = second.predict_proba(x)
    np.testing.assert_array_equal(p1, p2)
    assert second.query_count == 0 and second.requests_sent == 0
    assert s.model.query_count == 60
    # A torn last line (killed while writing) is skipped, not fatal.
    cache = next(tmp_path.glob("answers-*.jsonl"))
    cache.write_text(cache.read_text() + '{"k": "abc", "v": [0.1', encoding="utf-8")
    assert _client(spec, cache_dir=tmp_path).predict(x[:5]).shape == (5,)


@pytest.mark.parametrize(
    ("options", "reveals", "scores"),
    [
        ({"outputs": "labels"}, "labels only", False),
        ({"outputs": "top-k:3"}, "top-k scores", True),
        ({"outputs": "probs", "round_to": 2}, "probabilities rounded to 2 decimals", True),
    ],
)
def test_what_the_api_reveals_is_detected(
    serve: Callable[..., Server],
    digits_mlp: TorchClassifier,
    digits_data: object,
    options: dict[str, object],
    reveals: str,
    scores: bool,
) -> None:
    s = serve(digits_mlp, **options)
    model = _client(s.url)
    x = digits_data.x_test[:100]  # type: ignore[attr-defined]
    labels = model.predict(x)
    assert model.reveals == reveals and model.has_scores is scores
    # Every form keeps the served model's label (the top class), up to rounding ties.
    agree = float((labels == digits_mlp.predict(x)).mean())
    assert agree >= (1.0 if "rounded" not in reveals else 0.97)
    if not scores:
        with pytest.raises(UnsupportedModelError, match="labels only"):
            model.predict_proba(x)
    else:
        p = model.predict_proba(x)
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)


def test_png_encoding_and_one_input_per_request(
    serve: Callable[..., Server], digits_mlp: TorchClassifier, digits_data: object
) -> None:
    s = serve(digits_mlp)
    spec = TargetSpec(
        url=s.url,
        body={"inputs": ["$input"]},
        encoding="png-base64",
        returns="probs",
        scores="probabilities[0]",
    )
    model = _client(spec)
    # Images of 8-bit values travel through PNG unchanged.
    x = np.round(digits_data.x_test[:12] * 255) / 255  # type: ignore[attr-defined]
    x = x.astype(np.float32)
    np.testing.assert_allclose(
        model.predict_proba(x), digits_mlp.predict_proba(x), rtol=1e-5, atol=1e-6
    )
    assert model.requests_sent == 12


def test_target_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "target.yaml"
    path.write_text(
        "url: https://api.example.com/v1/predict\n"
        "headers: {Authorization: 'Bearer ${MY_TOKEN}'}\n"
        "body: {instances: $inputs}\n"
        "returns: probs\n"
        "scores: predictions[*].scores\n"
        "rate_limit: 600/min\n",
        encoding="utf-8",
    )
    spec = load_target(path)
    assert spec.rate_limit == pytest.approx(10.0) and spec.secret_names() == ["MY_TOKEN"]
    assert spec.public()["headers"] == ["Authorization"]
    monkeypatch.delenv("MY_TOKEN", raising=False)
    with pytest.raises(ValueError, match="MY_TOKEN is not set"):
        HTTPClassifier(spec, input_shape=(3,), n_classes=2, bounds=(0, 1))
    path.write_text("url: http://x/predict\nbatch: 3\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['batch'\]"):
        load_target(path)
    with pytest.raises(ValueError, match="url must start with http"):
        TargetSpec(url="ftp://x")
    with pytest.raises(ValueError, match="returns: auto works with advml's default protocol"):
        TargetSpec(url="http://x", scores="out")
    with pytest.raises(ValueError, match="exactly one '\\$inputs'"):
        TargetSpec(url="http://x", body={"x": 1}, returns="probs")
    with pytest.raises(ValueError, match="rate_limit"):
        parse_rate("fast")
    assert parse_rate("50/s") == 50.0


def test_json_paths_read_a_custom_response() -> None:
    from advml.models.http import _select

    doc = {"predictions": [{"scores": [0.2, 0.8]}, {"scores": [0.6, 0.4]}]}
    assert _select(doc, "predictions[*].scores") == [[0.2, 0.8], [0.6, 0.4]]
    assert _select(doc, "$.predictions[1].scores") == [0.6, 0.4]
    with pytest.raises(ValueError, match=r"'predictions\[0\].probs' is missing"):
        _select(doc, "predictions[*].probs")
    assert json.loads(json.dumps(_select(doc, "$"))) == doc
