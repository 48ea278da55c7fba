"""A real API fails: slow answers, 503s, 429s, a server that goes down, malformed bodies.

Square (seeded) against a faulty server must give exactly what it gives against a
healthy one, never spend a query over budget, and, when the server stays down, stop
with a clear error whose paid answers a rerun reads back from the cache.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from _servers import Faults, Server, wait_down

from advml.errors import QueryBudgetExceededError
from advml.evasion import Square
from advml.models.http import HTTPClassifier, RemoteModelError, RemoteResponseError, TargetSpec
from advml.models.torch import TorchClassifier

N = 20
ATTACK = Square(eps=0.1, max_queries=25, seed=3)


def _client(url: str, **kw: object) -> HTTPClassifier:
    # Small backoff: the waits are real sleeps; returns="probs" skips the probe query.
    spec = TargetSpec(url=url, returns="probs", retries=4, backoff=0.01)
    return HTTPClassifier(spec, input_shape=(1, 8, 8), n_classes=10, bounds=(0, 1), **kw)  # type: ignore[arg-type]


@pytest.fixture
def healthy(
    serve: Callable[..., Server], digits_mlp: TorchClassifier, digits_data: object
) -> tuple[np.ndarray, int]:
    s = serve(digits_mlp)
    model = _client(s.url)
    x, y = digits_data.x_test[:N], digits_data.y_test[:N]  # type: ignore[attr-defined]
    result = ATTACK.generate(model, x, y)
    assert s.model.query_count == model.query_count
    return np.asarray(result.x_adv), model.query_count


@pytest.mark.parametrize(
    "faults",
    [
        Faults(delay=0.05),
        Faults(fail_every=5),  # 20 % of requests answered 503 (an HTML page)
        Faults(limit_every=3),  # 429 with Retry-After: 0
    ],
    ids=["slow", "503", "429"],
)
def test_faults_give_the_healthy_result(
    serve: Callable[..., Server],
    digits_mlp: TorchClassifier,
    digits_data: object,
    healthy: tuple[np.ndarray, int],
    faults: Faults,
) -> None:
    s = serve(digits_mlp, faults=faults)
    model = _client(s.url)
    x, y = digits_data.x_test[:N], digits_data.y_test[:N]  # type: ignore[attr-defined]
    result = ATTACK.generate(model, x, y)
    np.testing.assert_array_equal(np.asarray(result.x_adv), healthy[0])
    # Retried requests are not paid twice: the same queries as against a healthy server.
    assert model.query_count == healthy[1] == s.model.query_count
    if faults.fail_every or faults.limit_every:
        assert model.retries_done > 0


def test_budget_is_never_exceeded_under_faults(
    serve: Callable[..., Server], digits_mlp: TorchClassifier, digits_data: object
) -> None:
    s = serve(digits_mlp, faults=Faults(fail_every=4))
    model = _client(s.url, query_budget=150)
    x, y = digits_data.x_test[:N], digits_data.y_test[:N]  # type: ignore[attr-defined]
    with pytest.raises(QueryBudgetExceededError) as info:
        ATTACK.generate(model, x, y)
    assert model.query_count <= 150 and s.model.query_count <= 150
    partial = info.value.partial_result
    assert partial is None or partial.n <= N


def test_server_down_stops_clearly_and_a_rerun_resumes_from_the_cache(
    serve: Callable[..., Server],
    digits_mlp: TorchClassifier,
    digits_data: object,
    healthy: tuple[np.ndarray, int],
    tmp_path: Path,
) -> None:
    s = serve(digits_mlp, faults=Faults(down_after=6))
    model = _client(s.url, cache_dir=tmp_path)
    x, y = digits_data.x_test[:N], digits_data.y_test[:N]  # type: ignore[attr-defined]
    with pytest.raises(RemoteModelError, match=r"failed 5 times.*run again to resume"):
        ATTACK.generate(model, x, y)
    paid = model.query_count
    cached = len(next(tmp_path.glob("answers-*.jsonl")).read_text().splitlines())
    assert 0 < cached <= paid < healthy[1]
    wait_down(s)
    back = serve(digits_mlp, port=s.port)  # the same URL, up again
    resumed = _client(back.url, cache_dir=tmp_path)
    result = ATTACK.generate(resumed, x, y)
    np.testing.assert_array_equal(np.asarray(result.x_adv), healthy[0])
    # Every answer paid for before the outage is read back, not bought again.
    assert resumed.query_count == healthy[1] - cached == back.model.query_count


@pytest.mark.parametrize(
    ("status", "ctype", "body", "match"),
    [
        (200, "application/json", b"{not json", r"not JSON \(Content-Type application/json"),
        (200, "text/html", b"<html><h1>Error</h1></html>", r"not JSON \(Content-Type text/html"),
        (200, "application/json", b'{"probabilities": [[0.1, 0.9]]}', r"'probabilities'.*2 ans"),
        (200, "application/json", b'{"scores": [[1, 0], [0, 1]]}', r"'probabilities' is missing"),
        (
            200,
            "application/json",
            b'{"probabilities": [[NaN, 1.0], [0.5, 0.5]]}',
            r"'probabilities' holds NaN",
        ),
        (
            200,
            "application/json",
            b'{"probabilities": [[0.2, 0.2], [0.5, 0.5]]}',
            r"'probabilities' should hold probabilities.*row sums in \[0.4, 1\]",
        ),
        (200, "application/json", b'{"probabilities": [[0.5], [1.0]]}', r"shape \(2, 1\)"),
        (404, "text/html", b"<html>Not Found</html>", r"refused the request with HTTP 404"),
    ],
    ids=["bad-json", "html", "wrong-length", "no-field", "nan", "no-sum", "wrong-width", "404"],
)
def test_malformed_responses_name_the_field(
    serve: Callable[..., Server],
    tiny_linear: TorchClassifier,
    status: int,
    ctype: str,
    body: bytes,
    match: str,
) -> None:
    s = serve(tiny_linear, faults=Faults(body=(status, ctype, body)))
    spec = TargetSpec(url=s.url, returns="probs", retries=0)
    model = HTTPClassifier(spec, input_shape=tiny_linear.input_shape, n_classes=2, bounds=(0, 1))
    x = np.full((2, *tiny_linear.input_shape), 0.5, dtype=np.float32)
    x[1] = 0.25
    with pytest.raises((RemoteResponseError, RemoteModelError), match=match) as info:
        model.predict_proba(x)
    if isinstance(info.value, RemoteResponseError):
        assert info.value.field


def test_a_raw_answer_that_does_not_match_its_shape_names_the_header(
    serve: Callable[..., Server], tiny_linear: TorchClassifier
) -> None:
    from advml.models.http import RAW_SCORES

    body = np.full(3, 0.5).tobytes()  # 3 float64 where the header promises 2 x 2
    faults = Faults(body=(200, RAW_SCORES, body), headers=[(b"x-advml-shape", b"2,2")])
    s = serve(tiny_linear, faults=faults)
    spec = TargetSpec(url=s.url, returns="probs", retries=0)
    model = HTTPClassifier(spec, input_shape=tiny_linear.input_shape, n_classes=2, bounds=(0, 1))
    x = np.stack([np.full(tiny_linear.input_shape, v, np.float32) for v in (0.2, 0.7)])
    with pytest.raises(RemoteResponseError, match="does not match its X-Advml-Shape") as info:
        model.predict_proba(x)
    assert info.value.field == "X-Advml-Shape"


def test_labels_out_of_range_are_refused(
    serve: Callable[..., Server], tiny_linear: TorchClassifier
) -> None:
    s = serve(tiny_linear, faults=Faults(body=(200, "application/json", b'{"labels": [0, 7]}')))
    spec = TargetSpec(url=s.url, returns="labels", retries=0)
    model = HTTPClassifier(spec, input_shape=tiny_linear.input_shape, n_classes=2, bounds=(0, 1))
    x = np.stack([np.full(tiny_linear.input_shape, v, np.float32) for v in (0.2, 0.7)])
    with pytest.raises(RemoteResponseError, match=r"'labels' holds labels in \[0, 7\]"):
        model.predict(x)


def test_a_redirect_is_not_followed_and_names_the_new_address(
    serve: Callable[..., Server], tiny_linear: TorchClassifier
) -> None:
    # Following it would send the request, and any token in its headers, elsewhere.
    moved = [(b"location", b"https://elsewhere.invalid/v2/predict")]
    s = serve(tiny_linear, faults=Faults(body=(307, "text/plain", b"moved"), headers=moved))
    spec = TargetSpec(url=s.url, returns="probs", retries=3)
    model = HTTPClassifier(spec, input_shape=tiny_linear.input_shape, n_classes=2, bounds=(0, 1))
    x = np.full((1, *tiny_linear.input_shape), 0.5, dtype=np.float32)
    with pytest.raises(RemoteModelError, match=r"HTTP 307.*elsewhere.invalid/v2/predict"):
        model.predict_proba(x)
    assert model.requests_sent == 1  # refused at once, not retried
    assert s.faults.requests == 1


def test_a_server_that_never_answers_gives_a_clear_error() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = TargetSpec(url=f"http://127.0.0.1:{port}/predict", retries=1, backoff=0.01)
    refused = r"failed 2 times \(last: Connection\w*Error.*refused"
    with pytest.raises(RemoteModelError, match=refused):
        HTTPClassifier(spec, input_shape=(2,), n_classes=2, bounds=(0, 1))


def test_rate_limit_spaces_the_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    # A fake clock: the limiter's waits are read, not slept.
    from advml.models import http

    now = [100.0]
    slept: list[float] = []
    monkeypatch.setattr(http.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(http.time, "sleep", lambda s: slept.append(s))
    limiter = http._RateLimiter(4.0)  # 4 requests per second
    for _ in range(3):
        limiter.wait()
    assert slept == pytest.approx([0.25, 0.5])  # starts at 0, 0.25 and 0.5 s
    now[0] += 10.0  # idle for a while: no burst debt
    limiter.wait()
    assert len(slept) == 2


def test_retry_after_reads_seconds_and_dates() -> None:
    from advml.models.http import _retry_after

    assert _retry_after("3") == 3.0 and _retry_after(None) == 1.0
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: no wait
    assert _retry_after("soon") == 1.0
