"""The web demo's HTTP layer: a FastAPI app with a JSON API and one static page.

:func:`create_app` wraps a :class:`~advml.web.service.DemoService`. Every request is
validated (422 with a message naming the parameter), bounded in size (413) and in time
(504 when the computation runs past ``service.timeout``, 503 when the model stayed busy
with other requests that long), and every computation runs on one worker thread, so
the model is never used by two requests at once. Errors are answered as
``{"detail": "message"}``; no user input can cause a 500.

The API is described at ``/openapi.json`` (and browsable at ``/docs``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from advml import __version__
from advml.errors import AdvmlError
from advml.web.images import UploadError, decode_upload
from advml.web.service import (
    DefenceNotReady,
    DemoService,
    RequestTimeout,
    ServerBusy,
)

__all__ = ["DEFAULT_MAX_UPLOAD", "create_app"]

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_MAX_UPLOAD = 2 * 1024 * 1024
"""Largest request body accepted by default (bytes): uploads and JSON alike."""

STATIC = Path(__file__).parent / "static"

# How many requests may wait for the model before new ones are refused at once (503).
_MAX_WAITING = 8

AttackName = Literal["fgsm", "pgd", "cw_l2", "greedy_pixel", "square"]
DefenceName = Literal[
    "gaussian_noise", "median_smoothing", "feature_squeezing", "jpeg", "autoencoder"
]
Strength = Literal["low", "medium", "high"]


# -- request and response bodies ---------------------------------------------------------
class ImageRef(BaseModel):
    """An input: a gallery image (``dataset`` and ``index``) or explicit ``pixels``."""

    dataset: str | None = Field(None, description="gallery dataset, e.g. 'mnist-5k'")
    index: int | None = Field(None, ge=0, description="index in the dataset's test split")
    pixels: list[Any] | None = Field(
        None,
        description="the input itself, nested lists of shape input_shape within the "
        "model's bounds (as returned in every view)",
    )


class AttackRequest(BaseModel):
    image: ImageRef
    attack: AttackName = Field(description="evasion attack")
    strength: Strength = Field("medium", description="preset strength")
    eps: float | None = Field(
        None,
        gt=0,
        le=1,
        description="L-inf budget as a fraction of the input range; overrides the "
        "strength's eps (fgsm, pgd, square only)",
    )


class DefendRequest(BaseModel):
    image: ImageRef = Field(description="the input to cleanse, usually the adversarial one")
    defence: DefenceName = Field(description="input-cleansing defence")
    strength: Strength = Field("medium", description="preset strength")
    original: ImageRef | None = Field(
        None, description="the original the input was attacked from, to say if restored"
    )


class PredictRequest(BaseModel):
    image: ImageRef


class View(BaseModel):
    """One input as the page shows it."""

    image: str = Field(description="PNG data URL at the input's native size")
    pixels: list[Any] = Field(description="the input, shape input_shape")
    label: int = Field(description="the model's label")
    label_name: str
    confidence: float | None = Field(description="the model's probability of its label")
    confidences: list[float] | None = Field(description="probability of every class")


class GalleryView(View):
    dataset: str
    index: int
    true_label: int
    true_label_name: str


class UploadView(View):
    kind: Literal["png", "jpeg", "npz"]


class Perturbation(BaseModel):
    image: str = Field(description="PNG data URL: red = pixel up, blue = down")
    magnification: float = Field(description="factor the perturbation is magnified by")
    linf: float = Field(description="largest change, as a fraction of the input range")
    l2: float = Field(description="L2 norm of the change, in units of the input range")
    l0: int = Field(description="number of input values changed")


class AttackResponse(BaseModel):
    attack: str
    strength: str
    settings: dict[str, Any] = Field(description="the attack's settings as run")
    original: View
    adversarial: View
    label_changed: bool
    perturbation: Perturbation
    queries: int = Field(description="model evaluations the attack used")
    seconds: float


class DefendResponse(BaseModel):
    defence: str
    strength: str
    settings: dict[str, Any]
    input: View
    defended: View
    original_label: int | None = None
    restored: bool | None = Field(None, description="defended label == original's label")
    seconds: float


class Error(BaseModel):
    detail: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Error, "description": text}
    for code, text in {
        413: "request body too large",
        415: "unsupported upload type",
        422: "a parameter is invalid (the message names it)",
        503: "the model is busy, or a defence is still being trained",
        504: "the computation ran past the time limit",
    }.items()
}


# -- the body-size limit -----------------------------------------------------------------
class _BodyLimit:
    """Refuse (413) any request whose body exceeds ``limit`` bytes, before the app sees it."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body.extend(message.get("body", b""))
            more = message.get("more_body", False)
            if len(body) > self.limit:
                await self._refuse(scope, receive, send)
                return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {"detail": f"the request body is larger than the limit of {self.limit} bytes"},
            status_code=413,
        )
        await response(scope, receive, send)


# -- the app -----------------------------------------------------------------------------
def _validation_message(err: RequestValidationError) -> str:
    parts = []
    for e in err.errors():
        if tuple(e.get("loc", ())) == ("body",) and e.get("type") == "model_attributes_type":
            parts.append(
                "the request body must be a JSON object, sent with Content-Type: application/json"
            )
            continue
        loc = [str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path")]
        parts.append(f"{'.'.join(loc) or 'request'}: {e.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def create_app(
    service: DemoService,
    *,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD,
    allowed_hosts: Sequence[str] | None = None,
    prepare_defences: bool = True,
) -> FastAPI:
    """The demo's ASGI app around ``service``.

    Parameters
    ----------
    service : DemoService
        The model, data and verbs; its ``timeout`` bounds every request.
    max_upload_bytes : int
        Largest request body (an upload or a JSON request), in bytes; larger ones get 413.
    allowed_hosts : sequence of str, optional
        Host names the server answers to (others get 400), e.g. ``["127.0.0.1",
        "localhost"]`` for a server on the loopback interface: a page on another site
        cannot then reach it through DNS rebinding. ``None`` accepts any host.
    prepare_defences : bool
        Start training (or loading) the autoencoder defence in the background now.

    Returns
    -------
    fastapi.FastAPI
    """
    if max_upload_bytes < 1:
        raise ValueError(f"max_upload_bytes must be >= 1, got {max_upload_bytes}")
    app = FastAPI(
        title="advml demo",
        version=__version__,
        description="Attack a model, defend it, and see what each step does to its "
        "answer. Inputs are gallery images (GET /api/datasets/...), uploads "
        "(POST /api/upload) or pixels returned by earlier calls; every answer about an "
        "input is a view: its PNG, its pixels, the model's label and confidences.",
        # FastAPI's /docs and /redoc viewers load their scripts from a CDN: off, so the
        # demo never makes a page fetch anything from outside; /openapi.json stays.
        docs_url=None,
        redoc_url=None,
    )
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="advml-model")
    waiting = 0

    async def compute(fn: Callable[[], T]) -> T:
        nonlocal waiting
        if waiting >= _MAX_WAITING:
            raise ServerBusy("too many requests are waiting for the model")
        deadline = time.monotonic() + service.timeout
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(executor, service.bounded, fn, deadline)
        waiting += 1
        try:
            # The model-call hook stops a torch model on time; the grace covers a model
            # without one (its computation is left to finish on the worker).
            return await asyncio.wait_for(asyncio.shield(future), service.timeout + 2.0)
        except asyncio.TimeoutError:
            raise RequestTimeout("the computation ran past its deadline") from None
        finally:
            waiting -= 1

    def resolve(ref: ImageRef, name: str = "image") -> np.ndarray:
        if ref.pixels is not None:
            if ref.dataset is not None or ref.index is not None:
                raise ValueError(f"{name}: give either pixels or dataset and index, not both")
            return service.check_input(ref.pixels, f"{name}.pixels")
        if ref.dataset is None or ref.index is None:
            raise ValueError(f"{name}: give pixels, or both dataset and index")
        return service.image(ref.dataset, ref.index)[0]

    # -- error handlers ------------------------------------------------------------------
    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"detail": message}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_r: Request, err: RequestValidationError) -> JSONResponse:
        return error(422, _validation_message(err))

    @app.exception_handler(UploadError)
    async def _upload(_r: Request, err: UploadError) -> JSONResponse:
        return error(err.status, str(err))

    @app.exception_handler(ServerBusy)
    async def _busy(_r: Request, err: ServerBusy) -> JSONResponse:
        return error(
            503,
            f"the model is busy with other requests ({err}); try again in a moment",
        )

    @app.exception_handler(RequestTimeout)
    async def _timeout(_r: Request, _err: RequestTimeout) -> JSONResponse:
        return error(
            504,
            f"the computation did not finish within the server's limit of "
            f"{service.timeout:g} s; choose a lower strength or a cheaper attack, or start "
            f"the server with a longer --timeout",
        )

    @app.exception_handler(DefenceNotReady)
    async def _not_ready(_r: Request, err: DefenceNotReady) -> JSONResponse:
        return error(503, str(err))

    @app.exception_handler(ValueError)
    @app.exception_handler(TypeError)
    @app.exception_handler(AdvmlError)
    async def _bad_value(_r: Request, err: Exception) -> JSONResponse:
        return error(422, str(err))

    @app.exception_handler(Exception)
    async def _unexpected(_r: Request, err: Exception) -> JSONResponse:
        log.exception("unexpected error in the demo server")
        return error(500, f"internal error ({type(err).__name__}); see the server's log")

    # -- the page ------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(
            STATIC / "index.html",
            headers={
                "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-cache",
            },
        )

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # -- the API -------------------------------------------------------------------------
    @app.get("/api/info", summary="The model, its data, the attacks and defences")
    async def info() -> dict[str, Any]:
        return service.info()

    @app.get("/api/datasets", summary="The embedded image datasets of the gallery")
    async def datasets() -> list[dict[str, Any]]:
        return service.datasets()

    @app.get(
        "/api/datasets/{dataset}/images",
        summary="Thumbnails and true labels of gallery images",
        responses=_ERRORS,
    )
    async def images(
        dataset: str,
        offset: int = Query(0, ge=0, description="first test image"),
        limit: int = Query(24, ge=1, le=200, description="how many"),
    ) -> dict[str, Any]:
        return await compute(lambda: service.thumbnails(dataset, offset, limit))

    @app.get(
        "/api/datasets/{dataset}/images/{index}",
        summary="One gallery image with the model's answer",
        response_model=GalleryView,
        responses=_ERRORS,
    )
    async def image(dataset: str, index: int) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            x, y = service.image(dataset, index)
            names = service.dataset.class_names
            return {
                "dataset": dataset,
                "index": index,
                "true_label": y,
                "true_label_name": names[y] if y < len(names) else str(y),
                **service.view(x),
            }

        return await compute(run)

    @app.post(
        "/api/upload",
        summary="Upload a PNG, JPEG or .npz input",
        description="The request body is the file itself (any content type; the kind is "
        "recognised from the content). Images are converted to the model's channels and "
        f"resized to its input; an .npz must hold one array of the input shape. At most "
        f"{max_upload_bytes} bytes.",
        response_model=UploadView,
        responses=_ERRORS,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    m: {"schema": {"type": "string", "format": "binary"}}
                    for m in ("image/png", "image/jpeg", "application/octet-stream")
                },
            }
        },
    )
    async def upload(
        request: Request,
        invert: bool = Query(False, description="swap dark and light (for dark-on-light)"),
    ) -> dict[str, Any]:
        data = await request.body()

        def run() -> dict[str, Any]:
            x, kind = decode_upload(
                data, input_shape=service.input_shape, bounds=service.bounds, invert=invert
            )
            return {"kind": kind, **service.view(x)}

        return await compute(run)

    @app.post(
        "/api/predict",
        summary="The model's answer on an input",
        response_model=View,
        responses=_ERRORS,
    )
    async def predict(body: PredictRequest) -> dict[str, Any]:
        return await compute(lambda: service.view(resolve(body.image)))

    @app.post(
        "/api/attack",
        summary="Attack an input",
        description="Runs an untargeted evasion attack against the model's own label of "
        "the input; returns the original and adversarial views and the perturbation, "
        "magnified.",
        response_model=AttackResponse,
        responses=_ERRORS,
    )
    async def attack(body: AttackRequest) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            x = resolve(body.image)
            return service.attack(x, attack=body.attack, strength=body.strength, eps=body.eps)

        return await compute(run)

    @app.post(
        "/api/defend",
        summary="Cleanse an input with a defence",
        response_model=DefendResponse,
        responses=_ERRORS,
    )
    async def defend(body: DefendRequest) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            x = resolve(body.image)
            ref = resolve(body.original, "original") if body.original is not None else None
            return service.defend(x, defence=body.defence, strength=body.strength, reference=ref)

        return await compute(run)

    if prepare_defences:
        service.prepare_autoencoders(background=True)
    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    app.add_middleware(_BodyLimit, limit=max_upload_bytes)
    return app
