"""Any advml model as a prediction API in advml's default JSON protocol.

``POST /predict`` with ``{"inputs": [input, ...]}`` (each input nested lists of the
model's input shape, or a base64 PNG string) answers ``{"probabilities": [[...], ...]}``,
``{"labels": [...]}`` or ``{"top_k": [{"labels": [...], "scores": [...]}, ...]}``.
``GET /health`` answers ``{"status": "ok"}``. A batch may also come as
``{"inputs": {"float32": base64 bytes, "shape": [n, ...]}}``; the probabilities (or
logits) then come back as ``{"float64": base64 bytes, "shape": [n, k]}``: the same
numbers, without the cost of writing and parsing JSON floats; or as raw float32 bytes
(``Content-Type: application/x-advml-float32`` with ``X-Advml-Shape: n,...``), answered
by raw float64 probabilities (protocol 2, docs/remote.md). Every answer carries the
header ``X-Advml-Protocol: 2``, which is how :class:`~advml.models.http.HTTPClassifier`
knows it may send those forms. It is the victim of the "AI as a service"
threat for tests, benchmarks and demos (``advml serve-model``), with the output
hardening defences (labels only, top-k, rounding) and an API key and rate limit as
options.
"""

from __future__ import annotations

import base64
import hmac
import json
import math
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import numpy as np
from fastapi import FastAPI
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from advml.models.base import Classifier
from advml.models.http import RAW_INPUTS, RAW_SCORES, decode_png, dumps_json, loads_json
from advml.validation import check_number

__all__ = ["MAX_INPUTS", "create_app", "parse_outputs"]

# Inputs per request the server accepts (a bound on the memory one request can take).
MAX_INPUTS = 10_000


def parse_outputs(text: str) -> tuple[str, int | None]:
    """``probs``, ``labels`` or ``top-k:K`` as (kind, k)."""
    if text in ("probs", "labels"):
        return text, None
    if text.startswith("top-k:"):
        try:
            k = int(text.split(":", 1)[1])
        except ValueError:
            k = 0
        if k >= 1:
            return "top-k", k
    raise ValueError(f"--outputs must be probs, labels or top-k:K (K >= 1), got {text!r}")


class _Bucket:
    """Token bucket: ``rate`` requests per second, bursts of up to ``rate``."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> float:
        """0 when a request may go, else the seconds until it may."""
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return 0.0
            return (1 - self.tokens) / self.rate


def create_app(
    model: Classifier,
    *,
    outputs: str = "probs",
    round_to: int | None = None,
    api_key: str | None = None,
    rate_limit: float | None = None,
) -> Any:
    """The FastAPI app serving ``model``.

    Parameters
    ----------
    model : Classifier
        Any advml model (white-box or not); it is asked without a query budget.
    outputs : {"probs", "labels", "top-k:K"}
        What the API reveals; default full probabilities.
    round_to : int, optional
        Decimals the scores are rounded to (an output hardening defence).
    api_key : str, optional
        Requests must send ``Authorization: Bearer KEY`` (or ``X-API-Key: KEY``); others
        get 401.
    rate_limit : float, optional
        Requests per second; more get 429 with ``Retry-After``.

    Returns
    -------
    fastapi.FastAPI
    """
    from starlette.concurrency import run_in_threadpool

    kind, k = parse_outputs(outputs)
    if k is not None and k > model.n_classes:
        raise ValueError(f"--outputs top-k:{k} asks for more than the {model.n_classes} classes")
    if round_to is not None:
        check_number("round_to", round_to, low=0, integer=True)
    if kind != "labels" and not model.has_scores:
        raise ValueError(
            f"--outputs {outputs} needs a model with scores; this one answers labels only "
            f"(use --outputs labels)"
        )
    bucket = _Bucket(rate_limit) if rate_limit is not None else None
    lock = threading.Lock()  # one forward pass at a time: models are not thread-safe
    app = _PredictionAPI(title="advml prediction API", docs_url=None, redoc_url=None)

    def answer(inputs: list[Any] | dict[str, Any] | np.ndarray) -> dict[str, Any] | np.ndarray:
        """The answer to a batch: a JSON document, or for raw float32 inputs the
        probabilities as an array (sent back as raw float64 bytes)."""
        raw = isinstance(inputs, np.ndarray)
        binary = isinstance(inputs, dict)
        if isinstance(inputs, np.ndarray):
            x = inputs
        elif isinstance(inputs, dict):
            x = _decode_batch(inputs)
        elif not inputs:
            x = np.empty((0, *model.input_shape), np.float32)
        elif any(isinstance(v, str) for v in inputs):
            rows = [
                decode_png(v, model.input_shape, model.bounds)
                if isinstance(v, str)
                else np.asarray(v, dtype=np.float32)
                for v in inputs
            ]
            x = np.stack(rows)
        else:
            try:
                x = np.asarray(inputs, dtype=np.float32)  # one conversion for the batch
            except ValueError:
                raise ValueError(
                    f"inputs must be numbers, each input of shape {list(model.input_shape)}"
                ) from None
        if x.shape[1:] != tuple(model.input_shape):
            raise ValueError(
                f"inputs have shape {list(x.shape[1:])}; the model expects "
                f"{list(model.input_shape)}"
            )
        if not np.isfinite(x).all():
            raise ValueError("inputs hold NaN or infinite values")
        with lock:
            if kind == "labels":
                return {"labels": np.asarray(model.predict(x)).astype(int).tolist()}
            p = np.asarray(model.predict_proba(x), dtype=np.float64)
        if kind == "probs":
            p = _rounded(p, round_to)
            if raw:
                return np.ascontiguousarray(p)
            if binary:
                data = base64.b64encode(np.ascontiguousarray(p).tobytes()).decode()
                return {"probabilities": {"float64": data, "shape": list(p.shape)}}
            return {"probabilities": np.ascontiguousarray(p)}  # written by orjson
        order = np.argsort(-p, axis=1, kind="stable")[:, :k]
        top = np.take_along_axis(p, order, axis=1)
        top = _rounded(top, round_to)
        return {
            "top_k": [
                {"labels": o.tolist(), "scores": s.tolist()}
                for o, s in zip(order, top, strict=True)
            ]
        }

    @app.get("/health")
    async def health() -> dict[str, str]:  # async: no hop to a worker thread
        return {"status": "ok"}

    def refusal(headers: Mapping[bytes, bytes]) -> _Refusal | None:
        """401 or 429 for a request without the key or over the rate, else None."""
        if api_key is not None:
            given = headers.get(b"x-api-key", b"").decode("latin-1")
            auth = headers.get(b"authorization", b"").decode("latin-1")
            if auth.lower().startswith("bearer "):
                given = auth[7:]
            if not hmac.compare_digest(given.encode(), api_key.encode()):
                return 401, {"error": "missing or wrong API key"}, {}
        if bucket is not None:
            wait = bucket.take()
            if wait > 0:
                retry = {"Retry-After": str(max(1, math.ceil(wait)))}
                return 429, {"error": "rate limit exceeded"}, retry
        return None

    async def handle(raw: bytes, headers: Mapping[bytes, bytes]) -> tuple[int, bytes, str]:
        """Status, body and content type of the answer to a request body."""
        inputs: list[Any] | dict[str, Any] | np.ndarray
        if headers.get(b"content-type", b"").startswith(RAW_INPUTS.encode()):
            try:
                inputs = _raw_batch(raw, headers.get(b"x-advml-shape", b""))
            except ValueError as err:
                return 400, _error(str(err)), _JSON
        else:
            try:
                body = loads_json(raw)
            except ValueError:
                return 400, _error("the body is not JSON"), _JSON
            found = body.get("inputs") if isinstance(body, dict) else None
            if not isinstance(found, list | dict):
                return 400, _error("the body must be {'inputs': [input, ...]}"), _JSON
            inputs = found
        n = len(inputs) if isinstance(inputs, list | np.ndarray) else _batch_len(inputs)
        if n > MAX_INPUTS:
            return 413, _error(f"at most {MAX_INPUTS} inputs per request"), _JSON
        try:
            # Small batches run on the event loop itself: the model lock serialises them
            # anyway, and a hop to a worker thread costs more than a digits MLP's forward
            # pass when the machine is busy. Large ones go to a thread, so /health answers.
            if n <= _INLINE_INPUTS:
                result = answer(inputs)
            else:
                result = await run_in_threadpool(answer, inputs)
        except (ValueError, TypeError) as err:
            return 422, _error(str(err)), _JSON
        if isinstance(result, np.ndarray):
            # The rows follow from the body's size: n x n_classes float64 values.
            return 200, result.tobytes(), RAW_SCORES
        return 200, dumps_json(result), _JSON

    # The most bytes a request of MAX_INPUTS inputs written as JSON floats can need
    # (~24 characters a number), checked before the body is read into memory.
    max_body = MAX_INPUTS * int(np.prod(model.input_shape)) * 24 + (1 << 20)

    async def predict(scope: Scope, receive: Receive, send: Send) -> None:
        # A bare ASGI endpoint: Starlette's Request/Response objects and FastAPI's
        # parameter analysis cost ~0.1 ms a request here, a third of what the digits MLP
        # takes to answer 36 inputs, and this endpoint needs none of what they add.
        headers = dict(scope["headers"])
        refused = refusal(headers)
        if refused is not None:
            status, doc, extra = refused
            await _send(send, status, json.dumps(doc).encode(), extra)
            return
        declared = headers.get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > max_body:
            await _send(send, 413, _error(f"the body is over {max_body} bytes"), {})
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > max_body:
                await _send(send, 413, _error(f"the body is over {max_body} bytes"), {})
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        status, payload, ctype = await handle(b"".join(chunks), headers)
        extra = dict(_PROTOCOL) if status in (200, 422) else {}
        if ctype == RAW_SCORES:
            rows = len(payload) // (8 * model.n_classes)
            extra["X-Advml-Shape"] = f"{rows},{model.n_classes}"
        await _send(send, status, payload, extra, ctype)

    app.router.routes.append(Route("/predict", _Asgi(predict), methods=["POST"]))
    app.predict = predict
    return app


# Protocol 2 adds raw bodies: float32 inputs (RAW_INPUTS, shape in X-Advml-Shape) answered
# with float64 probabilities (RAW_SCORES), without base64 and JSON on either side.
_PROTOCOL = {"X-Advml-Protocol": "2"}
_JSON = "application/json"
_Refusal = tuple[int, dict[str, Any], dict[str, str]]  # status, JSON body, headers
_INLINE_INPUTS = 256


class _PredictionAPI(FastAPI):
    """The FastAPI app, with ``POST /predict`` handed straight to its endpoint.

    FastAPI's middleware stack (error pages, exception handlers, the exit stack) and the
    router's matching cost ~35 µs a request here, an eighth of what the whole request takes
    on the digits MLP; the endpoint answers its own errors, and every other path (health,
    a wrong method, a 404) still goes through FastAPI.
    """

    predict: Callable[[Scope, Receive, Send], Awaitable[None]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.predict is not None
            and scope["type"] == "http"
            and scope["path"] == "/predict"
            and scope["method"] == "POST"
            and not scope.get("root_path")
        ):
            await self.predict(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


class _Asgi:
    """An ASGI callable Starlette's ``Route`` takes as it is (a bare function it would
    call with a ``Request``)."""

    def __init__(self, fn: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.fn = fn

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.fn(scope, receive, send)


def _error(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


async def _send(
    send: Send,
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    ctype: str = "application/json",
) -> None:
    """One response through the ASGI ``send``."""
    raw = [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _raw_batch(raw: bytes, shape_header: bytes) -> np.ndarray:
    """A raw float32 body and its ``X-Advml-Shape: n,d1,...`` header as an array."""
    try:
        shape = [int(d) for d in shape_header.decode("latin-1").split(",")]
    except ValueError:
        shape = []
    if not shape or any(d < 0 for d in shape):
        raise ValueError(
            f"a {RAW_INPUTS} body needs the header X-Advml-Shape: n,d1,d2,... (got "
            f"{shape_header[:40].decode('latin-1')!r})"
        )
    if shape[0] > MAX_INPUTS:
        raise ValueError(f"at most {MAX_INPUTS} inputs per request")
    need = 4 * math.prod(shape)
    if len(raw) != need:
        raise ValueError(f"the body has {len(raw)} bytes; X-Advml-Shape {shape} needs {need}")
    return np.frombuffer(raw, dtype=np.float32).reshape(shape).copy()  # writable for torch


def _batch_len(batch: dict[str, Any]) -> int:
    shape = batch.get("shape")
    return int(shape[0]) if isinstance(shape, list) and shape and isinstance(shape[0], int) else 0


def _decode_batch(batch: dict[str, Any]) -> np.ndarray:
    """``{"float32": base64, "shape": [n, ...]}`` as an array, or ValueError."""
    shape = batch.get("shape")
    if not isinstance(batch.get("float32"), str) or not isinstance(shape, list):
        raise ValueError("a batch object must be {'float32': base64 bytes, 'shape': [n, ...]}")
    try:
        raw = base64.b64decode(batch["float32"], validate=True)
        return np.frombuffer(raw, dtype=np.float32).reshape([int(d) for d in shape]).copy()
    except (ValueError, TypeError) as err:
        raise ValueError(f"the float32 batch does not match shape {shape}: {err}") from None


def _rounded(p: np.ndarray, decimals: int | None) -> np.ndarray:
    return p if decimals is None else np.round(p, decimals)
