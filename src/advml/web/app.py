"""The web demo's HTTP layer: a FastAPI app with a JSON API and one static page.

:func:`create_app` wraps a :class:`~advml.web.service.DemoService`. The routes are thin:
each parses its request (:mod:`advml.web.schemas`), calls one service method through
the :class:`ModelRunner` and returns its answer. Every request is validated (422 with a
message naming the parameter) and bounded in size (413); the model is used by one
request at a time, each within ``service.timeout`` seconds of work (504 past it: the
work stops at its next model query), and a request that finds the model busy for
longer than ``max_wait`` is answered 503 with ``Retry-After``. Errors are answered as
``{"detail": "message"}``; no user input can cause a 500.

The API is described at ``/openapi.json``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from advml import __version__
from advml.errors import AdvmlError
from advml.validation import check_number
from advml.web.images import UploadError, decode_upload
from advml.web.limits import ModelSlot, RequestTimeout, ServerBusy
from advml.web.schemas import (
    AdaptiveRequest,
    AdaptiveResponse,
    AttackName,
    AttackRequest,
    AttackResponse,
    DefenceName,
    DefendRequest,
    DefendResponse,
    Error,
    GalleryView,
    ImageRef,
    PredictRequest,
    UploadView,
    View,
)
from advml.web.service import DefenceNotReady, DemoService

__all__ = ["DEFAULT_MAX_UPLOAD", "AttackName", "DefenceName", "ModelRunner", "create_app"]

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_MAX_UPLOAD = 2 * 1024 * 1024
"""Largest request body accepted by default (bytes): uploads and JSON alike."""

DEFAULT_MAX_WAIT = 2.0
"""Seconds a request waits for a busy model by default before it is answered 503."""

STATIC = Path(__file__).parent / "static"

# How many requests may wait for the model before new ones are refused at once (503).
_MAX_WAITING = 8

# Seconds past the time limit the app waits for a computation that is stuck inside one
# model query (which cannot be interrupted) before it answers 504 on its own.
_GRACE = 2.0

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Error, "description": text}
    for code, text in {
        413: "request body too large",
        415: "unsupported upload type",
        422: "a parameter is invalid (the message names it)",
        503: "the model is busy (see Retry-After), or a defence is still being trained",
        504: "the computation ran past the time limit and was stopped",
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


def _validation_message(err: RequestValidationError) -> str:
    """One message naming every invalid field as a dotted path (``image.index: ...``)."""
    parts = []
    for e in err.errors():
        loc = tuple(e.get("loc", ()))
        kind = e.get("type")
        if loc == ("body",) and kind == "model_attributes_type":
            parts.append(
                "the request body must be a JSON object, sent with Content-Type: application/json"
            )
            continue
        if kind == "json_invalid":
            reason = (e.get("ctx") or {}).get("error", "invalid JSON")
            where = f" at character {loc[1]}" if len(loc) > 1 else ""
            parts.append(f"request body: not valid JSON ({reason}{where})")
            continue
        names = [str(p) for p in loc if p not in ("body", "query", "path")]
        where = ".".join(names) or ("request body" if loc[:1] == ("body",) else "request")
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


# -- running computations on the model ---------------------------------------------------
class ModelRunner:
    """Runs each request's computation on the one model worker, within its limits.

    One request at a time holds the model (:class:`~advml.web.limits.ModelSlot`); its
    computation runs on a worker thread under a :class:`~advml.web.limits.Job` of
    ``service.timeout`` seconds, so it stops with
    :class:`~advml.web.limits.RequestTimeout` at its first model query past the limit.
    A watchdog covers a query that itself hangs: ``grace`` seconds past the limit (on
    the service's clock) the request is answered 504 and the job cancelled (the work
    stops when that query returns), and the model counts as busy (503) until it does.

    Parameters
    ----------
    service : DemoService
    max_wait : float
        Seconds a request may wait for a busy model before :class:`ServerBusy`.
    grace : float
        Seconds past the limit before answering 504 without the worker's word.
    poll : float
        Seconds between the watchdog's looks at the clock.
    """

    def __init__(
        self,
        service: DemoService,
        *,
        max_wait: float = DEFAULT_MAX_WAIT,
        grace: float = _GRACE,
        poll: float = 0.05,
    ) -> None:
        check_number("max_wait", max_wait, low=0)
        check_number("grace", grace, low=0)
        check_number("poll", poll, low=0, low_inclusive=False)
        self.service = service
        self.grace = float(grace)
        self.poll = float(poll)
        self.slot = ModelSlot(max_wait=max_wait, max_waiting=_MAX_WAITING)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="advml-model")

    async def __call__(self, fn: Callable[[], T]) -> T:
        """``fn()`` computed on the worker; ServerBusy or RequestTimeout past the limits."""
        service = self.service
        await self.slot.acquire(service.timeout)
        job = service.new_job()
        self.slot.job = job
        try:
            future = asyncio.get_running_loop().run_in_executor(
                self._executor, service.run, fn, job
            )
        except BaseException:
            self.slot.release()
            raise
        # Released when the worker has really finished, not when the request is answered.
        future.add_done_callback(lambda _f: self.slot.release())
        try:
            while True:
                # asyncio.wait leaves the future running when it times out or is cancelled.
                done, _ = await asyncio.wait({future}, timeout=self.poll)
                if done:
                    return future.result()
                if job.overdue(self.grace):
                    job.cancel()
                    raise RequestTimeout("the computation ran past its time limit")
        except asyncio.CancelledError:  # the client went away
            job.cancel()
            raise


# -- the app's parts ---------------------------------------------------------------------
def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI, service: DemoService) -> None:
    """Map every error to a status and a ``{"detail": message}`` body."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(_r: Request, err: RequestValidationError) -> JSONResponse:
        return _error(422, _validation_message(err))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_r: Request, err: StarletteHTTPException) -> JSONResponse:
        detail = str(err.detail)
        if detail == "There was an error parsing the body":  # FastAPI's, e.g. on deep nesting
            detail = "request body: could not be parsed as JSON (nested too deeply?)"
        return _error(err.status_code, detail, dict(err.headers or {}))

    @app.exception_handler(UploadError)
    async def _upload(_r: Request, err: UploadError) -> JSONResponse:
        return _error(err.status, str(err))

    @app.exception_handler(ServerBusy)
    async def _busy(_r: Request, err: ServerBusy) -> JSONResponse:
        return _error(
            503,
            f"the model is busy ({err}); try again in {err.retry_after} s",
            {"Retry-After": str(err.retry_after)},
        )

    @app.exception_handler(RequestTimeout)
    async def _timeout(_r: Request, _err: RequestTimeout) -> JSONResponse:
        return _error(
            504,
            f"the computation did not finish within the server's limit of "
            f"{service.timeout:g} s and was stopped; choose a lower strength or a cheaper "
            f"attack, or start the server with a longer --timeout",
        )

    @app.exception_handler(DefenceNotReady)
    async def _not_ready(_r: Request, err: DefenceNotReady) -> JSONResponse:
        return _error(503, str(err), {"Retry-After": "5"})

    @app.exception_handler(ValueError)
    @app.exception_handler(TypeError)
    @app.exception_handler(AdvmlError)
    async def _bad_value(_r: Request, err: Exception) -> JSONResponse:
        return _error(422, str(err))

    @app.exception_handler(Exception)
    async def _unexpected(_r: Request, err: Exception) -> JSONResponse:
        log.exception("unexpected error in the demo server")
        return _error(500, f"internal error ({type(err).__name__}); see the server's log")


def _add_page(app: FastAPI) -> None:
    """The page and its static files, under a strict Content-Security-Policy."""

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


def _add_gallery_routes(app: FastAPI, service: DemoService, run: ModelRunner) -> None:
    """What there is: the model and its verbs, the gallery datasets and their images."""

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
        return await run(lambda: service.thumbnails(dataset, offset, limit))

    @app.get(
        "/api/datasets/{dataset}/images/{index}",
        summary="One gallery image with the model's answer",
        response_model=GalleryView,
        responses=_ERRORS,
    )
    async def image(dataset: str, index: int) -> dict[str, Any]:
        return await run(lambda: service.gallery_view(dataset, index))


def _resolve(service: DemoService, ref: ImageRef, name: str) -> Any:
    return service.resolve(pixels=ref.pixels, dataset=ref.dataset, index=ref.index, name=name)


def _add_upload_route(
    app: FastAPI, service: DemoService, run: ModelRunner, max_upload_bytes: int
) -> None:
    """An uploaded file as a model input (decoded as data, never as code)."""

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

        def decode_and_view() -> dict[str, Any]:
            x, kind = decode_upload(
                data, input_shape=service.input_shape, bounds=service.bounds, invert=invert
            )
            return {"kind": kind, **service.view(x)}

        return await run(decode_and_view)


def _add_model_routes(app: FastAPI, service: DemoService, run: ModelRunner) -> None:
    """The verbs on an input: predict, attack, defend."""

    @app.post(
        "/api/predict",
        summary="The model's answer on an input",
        response_model=View,
        responses=_ERRORS,
    )
    async def predict(body: PredictRequest) -> dict[str, Any]:
        return await run(lambda: service.view(_resolve(service, body.image, "image")))

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
        return await run(
            lambda: service.attack(
                _resolve(service, body.image, "image"),
                attack=body.attack,
                strength=body.strength,
                eps=body.eps,
            )
        )

    @app.post(
        "/api/defend",
        summary="Cleanse an input with a defence",
        response_model=DefendResponse,
        responses=_ERRORS,
    )
    async def defend(body: DefendRequest) -> dict[str, Any]:
        original = body.original
        return await run(
            lambda: service.defend(
                _resolve(service, body.image, "image"),
                defence=body.defence,
                strength=body.strength,
                reference=None if original is None else _resolve(service, original, "original"),
            )
        )


def _add_adaptive_route(app: FastAPI, service: DemoService, run: ModelRunner) -> None:
    """Step 4 of the demo: the attack that knows the defence (BPDA / EOT)."""

    @app.post(
        "/api/adaptive",
        summary="Attack the original again, through the defence (BPDA / EOT)",
        description="PGD against the defended model as an attacker who knows the defence "
        "sees it (Athalye et al. 2018): gradients pass non-differentiable preprocessing "
        "as the identity (BPDA) and randomised preprocessing as the mean over draws (EOT). "
        "Says whether the deployed defence still gives the original's label.",
        response_model=AdaptiveResponse,
        responses=_ERRORS,
    )
    async def adaptive(body: AdaptiveRequest) -> dict[str, Any]:
        return await run(
            lambda: service.adaptive_attack(
                _resolve(service, body.image, "image"),
                defence=body.defence,
                strength=body.strength,
                attack_strength=body.attack_strength,
                eps=body.eps,
            )
        )


# -- the app -----------------------------------------------------------------------------
def create_app(
    service: DemoService,
    *,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD,
    allowed_hosts: Sequence[str] | None = None,
    prepare_defences: bool = True,
    max_wait: float = DEFAULT_MAX_WAIT,
) -> FastAPI:
    """The demo's ASGI app around ``service``.

    Parameters
    ----------
    service : DemoService
        The model, data and verbs; its ``timeout`` bounds every request's work.
    max_upload_bytes : int
        Largest request body (an upload or a JSON request), in bytes; larger ones get 413.
    allowed_hosts : sequence of str, optional
        Host names the server answers to (others get 400), e.g. ``["127.0.0.1",
        "localhost"]`` for a server on the loopback interface: a page on another site
        cannot then reach it through DNS rebinding. ``None`` accepts any host.
    prepare_defences : bool
        Start training (or loading) the autoencoder defence in the background now.
    max_wait : float
        Seconds a request may wait while the model works for another before it is
        answered 503 with ``Retry-After``; 0 answers 503 at once.

    Returns
    -------
    fastapi.FastAPI
    """
    check_number("max_upload_bytes", max_upload_bytes, low=1, integer=True)
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
    run = ModelRunner(service, max_wait=max_wait)
    app.state.runner = run
    _add_error_handlers(app, service)
    _add_page(app)
    _add_gallery_routes(app, service, run)
    _add_upload_route(app, service, run, max_upload_bytes)
    _add_model_routes(app, service, run)
    _add_adaptive_route(app, service, run)
    if prepare_defences:
        service.prepare_autoencoders(background=True)
    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    app.add_middleware(_BodyLimit, limit=max_upload_bytes)
    return app
