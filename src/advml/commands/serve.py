"""``advml serve``: the interactive web demo (select an image, attack it, defend it)."""

from __future__ import annotations

import argparse
import errno
import ipaddress
import socket
import sys
from typing import Any

from advml.commands import Handler
from advml.commands._common import add_model_args

__all__ = ["add_commands"]

_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def add_commands(sub: Any) -> dict[str, Handler]:
    p = sub.add_parser(
        "serve",
        help="the interactive web demo: attack a model, defend it, see both",
        description="Serve a page (and its JSON API, described at /openapi.json) where you "
        "pick an image from the embedded datasets or upload one, attack the model with "
        "FGSM, PGD, C&W, greedy pixel or Square, cleanse the result with a defence, and "
        "see the original, adversarial and defended images with the model's label and "
        "confidences. The model is loaded once; it listens on 127.0.0.1 only unless "
        "--host says otherwise.",
    )
    add_model_args(p)
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only). The demo has no "
        "authentication: listen on another address only on a network you trust",
    )
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds one request may compute before it is stopped with 504 (default 30; "
        "greedy pixel needs about 10 s on a 28x28 image on two cores)",
    )
    p.add_argument(
        "--max-wait",
        type=float,
        default=2.0,
        help="seconds a request may wait while the model works for another before it is "
        "answered 503 with Retry-After (default 2; 0 answers 503 at once)",
    )
    p.add_argument(
        "--max-upload-mb",
        type=float,
        default=2.0,
        help="largest upload or request body in MiB (default 2)",
    )
    return {"serve": _serve}


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _serve(args: argparse.Namespace) -> int:
    from advml.validation import check_number

    check_number("--port", args.port, low=1, high=65535, integer=True)
    check_number("--timeout", args.timeout, low=0, low_inclusive=False)
    check_number("--max-wait", args.max_wait, low=0)
    check_number("--max-upload-mb", args.max_upload_mb, low=0, low_inclusive=False)
    try:
        import fastapi  # noqa: F401  (checked here, used by advml.web)
        import uvicorn  # noqa: F401
    except ImportError as err:
        raise ImportError(
            f"advml serve needs FastAPI and uvicorn ({err}); install them with "
            f"pip install 'fastapi>=0.110' 'uvicorn>=0.29'"
        ) from err
    from advml.commands._common import load_model_and_data
    from advml.models.reference import default_architecture

    # Bind before anything slow and before the URL is printed: a busy port is a one-line
    # error at once, not a URL followed by uvicorn's Errno 98 after the model loaded.
    sock = _bind(args.host, args.port)
    try:
        return _serve_on(sock, args, load_model_and_data, default_architecture)
    finally:
        sock.close()


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, or an error naming ``--port`` / ``--host``."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as err:
        raise ValueError(
            f"--host {host}: not an address of this machine ({err.strerror}); use --host 127.0.0.1"
        ) from None
    sock = socket.socket(family, kind, proto)
    # As uvicorn does: a port left in TIME_WAIT by a stopped demo can be reused at once;
    # one that a running program listens on still refuses the bind.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            other = port + 1 if port < 65535 else 8000
            raise ValueError(
                f"--port {port}: the port is in use on {host} (another program listens "
                f"there); choose another with --port, e.g. --port {other}"
            ) from None
        raise ValueError(
            f"--host {host} --port {port}: cannot listen there ({err.strerror}); choose "
            f"another --port (above 1023 needs no privileges) or --host"
        ) from None
    return sock


def _serve_on(
    sock: socket.socket, args: argparse.Namespace, load: Any, default_architecture: Any
) -> int:
    """Load the model, build the app and serve it on the bound ``sock``."""
    import uvicorn

    from advml.web import DemoService, create_app

    model, ds = load(args)
    description = (
        f"{args.model}"
        if args.model
        else f"reference {default_architecture(ds).upper()} (seed {args.seed})"
    )
    service = DemoService(
        model, ds, model_description=description, timeout=args.timeout, seed=args.seed
    )
    loopback = _is_loopback(args.host)
    # Answering only to loopback host names keeps web pages elsewhere from reaching the
    # demo through DNS rebinding.
    hosts = ["localhost", "127.0.0.1", "[::1]", args.host] if loopback else None
    app = create_app(
        service,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        allowed_hosts=hosts,
        max_wait=args.max_wait,
    )
    if not loopback:
        print(
            f"warning: listening on {args.host}: anyone who can reach this address can use "
            f"the demo (it has no authentication)",
            file=sys.stderr,
        )
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"advml demo: http://{shown}:{args.port}/ (API: /openapi.json); Ctrl-C stops it",
        flush=True,
    )
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])
    return 0
