"""A real uvicorn server on 127.0.0.1 (a free port, a thread of this process) serving a
model in advml's protocol, with faults a real API shows, injected in front of it.

Faults are counted per request (never timed), so every test sees the same sequence of
answers on every machine: ``fail_every=5`` answers every 5th request 503 (20 %),
``limit_every=3`` answers every 3rd 429 with ``Retry-After: 0``, ``delay`` sleeps
before answering, ``down_after=N`` answers the first N requests and then stops the
server (connections are refused from then on), ``body`` replaces every answer.
"""

from __future__ import annotations

import copy
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from advml.models.base import Classifier
from advml.models.http_server import create_app


@dataclass
class Faults:
    delay: float = 0.0
    fail_every: int = 0
    limit_every: int = 0
    down_after: int | None = None
    body: tuple[int, str, bytes] | None = None  # status, content type, bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)  # sent with ``body``
    requests: int = 0
    answered: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Faulty:
    def __init__(self, app: ASGIApp, faults: Faults, stop: Callable[[], None]) -> None:
        self.app, self.faults, self.stop = app, faults, stop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/predict":
            await self.app(scope, receive, send)
            return
        f = self.faults
        with f.lock:
            f.requests += 1
            n = f.requests
        if f.delay:
            time.sleep(f.delay)  # blocks the event loop: a slow, single-worker server
        if f.down_after is not None and n > f.down_after:
            self.stop()
            await _reply(send, 503, "text/plain", b"shutting down")
            return
        if f.fail_every and n % f.fail_every == 0:
            await _reply(send, 503, "text/html", b"<html><body>503 Service Unavailable</body>")
            return
        if f.limit_every and n % f.limit_every == 0:
            await _reply(send, 429, "application/json", b'{"error": "slow down"}',
                         [(b"retry-after", b"0")])  # fmt: skip
            return
        if f.body is not None:
            await _reply(send, *f.body, f.headers)
            return
        with f.lock:
            f.answered += 1
        await self.app(scope, receive, send)


async def _reply(
    send: Send, status: int, ctype: str, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode())]
    headers += extra or []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@dataclass
class Server:
    url: str
    port: int
    faults: Faults
    model: Classifier  # the served copy: its query_count is what the server computed
    server: Any
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    """``serve(model, **create_app_options)`` starts a server (HTTPS with ``tls=(cert,
    key)``, asking clients for a certificate of ``client_ca``); all stop at the test's
    end."""
    import uvicorn

    started: list[tuple[Server, socket.socket]] = []

    def start(
        model: Classifier,
        *,
        faults: Faults | None = None,
        port: int = 0,
        tls: tuple[Any, Any] | None = None,
        client_ca: Any = None,
        **options: Any,
    ) -> Server:
        faults = faults or Faults()
        holder: dict[str, Any] = {}
        served = copy.deepcopy(model)
        served.reset_queries()  # type: ignore[attr-defined]
        app = _Faulty(
            create_app(served, **options),
            faults,
            lambda: setattr(holder["server"], "should_exit", True),
        )
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # A server restarted on the port of one that went down (a resumed audit).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        ssl: dict[str, Any] = {}
        if tls is not None:
            ssl = {"ssl_certfile": str(tls[0]), "ssl_keyfile": str(tls[1])}
        if client_ca is not None:  # mutual TLS: clients must show a certificate of this CA
            ssl.update(ssl_ca_certs=str(client_ca), ssl_cert_reqs=2)  # ssl.CERT_REQUIRED
        server = uvicorn.Server(uvicorn.Config(app, log_level="critical", **ssl))
        holder["server"] = server
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        port = sock.getsockname()[1]
        scheme = "http" if tls is None else "https"
        s = Server(f"{scheme}://127.0.0.1:{port}/predict", port, faults, served, server, thread)
        started.append((s, sock))
        return s

    yield start
    for s, sock in started:
        s.server.should_exit = True
        s.thread.join(timeout=10)
        sock.close()


def wait_down(s: Server) -> None:
    """Until a server stopped by its faults has closed its socket."""
    s.thread.join(timeout=30)
