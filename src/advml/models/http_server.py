"""Any advml model as a prediction API in advml's default JSON protocol.

``POST /predict`` with ``{"inputs": [input, ...]}`` (each input nested lists of the
model's input shape, or a base64 PNG string) answers ``{"probabilities": [[...], ...]}``,
``{"labels": [...]}`` or ``{"top_k": [{"labels": [...], "scores": [...]}, ...]}``.
``GET /health`` answers ``{"status": "ok"}``. A batch may also come as
``{"inputs": {"float32": base64 bytes, "shape": [n, ...]}}``; the probabilities (or
logits) then come back as ``{"float64": base64 bytes, "shape": [n, k]}``: the same
numbers, without the cost of writing and parsing JSON floats. Every answer carries the
header ``X-Advml-Protocol: 1``, which is how :class:`~advml.models.http.HTTPClassifier`
knows it may send that form. It is the victim of the "AI as a service"
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
from typing import Any

import numpy as np
from fastapi import Request  # module level: FastAPI resolves the endpoint's annotation

from advml.models.base import Classifier
from advml.models.http import decode_png
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
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, Response
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
    app = FastAPI(title="advml prediction API", docs_url=None, redoc_url=None)

    def answer(inputs: list[Any] | dict[str, Any]) -> dict[str, Any]:
        binary = isinstance(inputs, dict)
        if isinstance(inputs, dict):
            x = _decode_batch(inputs)
        else:
            rows = [
                decode_png(v, model.input_shape, model.bounds)
                if isinstance(v, str)
                else np.asarray(v, dtype=np.float32)
                for v in inputs
            ]
            x = np.stack(rows) if rows else np.empty((0, *model.input_shape), np.float32)
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
            if binary:
                data = base64.b64encode(np.ascontiguousarray(p).tobytes()).decode()
                return {"probabilities": {"float64": data, "shape": list(p.shape)}}
            return {"probabilities": p.tolist()}
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

    async def predict(request: Request) -> Any:
        if api_key is not None:
            given = request.headers.get("x-api-key") or ""
            auth = request.headers.get("authorization") or ""
            if auth.lower().startswith("bearer "):
                given = auth[7:]
            if not hmac.compare_digest(given.encode(), api_key.encode()):
                return JSONResponse({"error": "missing or wrong API key"}, status_code=401)
        if bucket is not None:
            wait = bucket.take()
            if wait > 0:
                return JSONResponse(
                    {"error": "rate limit exceeded"},
                    status_code=429,
                    headers={"Retry-After": str(max(1, math.ceil(wait)))},
                )
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"error": "the body is not JSON"}, status_code=400)
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list | dict):
            return JSONResponse(
                {"error": "the body must be {'inputs': [input, ...]}"}, status_code=400
            )
        n = len(inputs) if isinstance(inputs, list) else _batch_len(inputs)
        if n > MAX_INPUTS:
            return JSONResponse(
                {"error": f"at most {MAX_INPUTS} inputs per request"}, status_code=413
            )
        try:
            # Small batches run on the event loop itself: the model lock serialises them
            # anyway, and a hop to a worker thread costs more than a digits MLP's forward
            # pass when the machine is busy. Large ones go to a thread, so /health answers.
            if n <= _INLINE_INPUTS:
                result = answer(inputs)
            else:
                result = await run_in_threadpool(answer, inputs)
        except (ValueError, TypeError) as err:
            return JSONResponse({"error": str(err)}, status_code=422, headers=_PROTOCOL)
        # Written here: FastAPI's own encoder walks every float in Python first.
        return Response(json.dumps(result), media_type="application/json", headers=_PROTOCOL)

    # A plain Starlette route: FastAPI's parameter analysis and response handling cost
    # ~50 µs a request here and this endpoint reads its body itself.
    app.add_route("/predict", predict, methods=["POST"])
    return app


_PROTOCOL = {"X-Advml-Protocol": "1"}
_INLINE_INPUTS = 256


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
