"""``advml serve-model``: any model advml loads, served as a prediction API."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from advml.commands import Handler
from advml.commands._common import add_model_args

__all__ = ["add_commands"]


def add_commands(sub: Any) -> dict[str, Handler]:
    p = sub.add_parser(
        "serve-model",
        help="serve a model as a prediction API (the victim of 'AI as a service' attacks)",
        description="Serve any model advml loads as a JSON prediction API in advml's "
        'default protocol: POST /predict with {"inputs": [[...], ...]} answers '
        '{"probabilities": ...}, {"labels": ...} or {"top_k": ...}. Audit it from '
        "another terminal with 'advml audit --target-url http://127.0.0.1:PORT/predict'. "
        "It listens on 127.0.0.1 only unless --host says otherwise.",
    )
    add_model_args(p)
    p.add_argument(
        "--outputs",
        default="probs",
        help="what the API reveals: probs (default), labels, or top-k:K",
    )
    p.add_argument(
        "--round", type=int, default=None, metavar="D", help="round scores to D decimals"
    )
    p.add_argument(
        "--api-key-env",
        metavar="VAR",
        default=None,
        help="require 'Authorization: Bearer KEY' where KEY is the value of environment "
        "variable VAR (the key itself is never a command-line argument)",
    )
    p.add_argument(
        "--rate-limit",
        default=None,
        metavar="RATE",
        help="most requests per second, e.g. 50/s or 600/min; more get 429 with Retry-After",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    return {"serve-model": _serve_model}


def _serve_model(args: argparse.Namespace) -> int:
    from advml.models.http import parse_rate
    from advml.models.http_server import create_app, parse_outputs
    from advml.validation import check_number

    check_number("--port", args.port, low=1, high=65535, integer=True)
    parse_outputs(args.outputs)
    if args.round is not None:
        check_number("--round", args.round, low=0, integer=True)
    rate = parse_rate(args.rate_limit)
    api_key = None
    if args.api_key_env is not None:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise ValueError(
                f"--api-key-env {args.api_key_env}: the environment variable is not set or "
                f"empty; export {args.api_key_env}=... first"
            )
    import uvicorn

    from advml.commands._common import load_model_and_data

    model, _ = load_model_and_data(args)
    app = create_app(
        model, outputs=args.outputs, round_to=args.round, api_key=api_key, rate_limit=rate
    )
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"advml prediction API: POST http://{shown}:{args.port}/predict "
        f"(outputs {args.outputs}{f', rounded to {args.round}' if args.round is not None else ''}"
        f"); Ctrl-C stops it",
        file=sys.stderr,
    )
    # No access log: at this level it is never shown, yet uvicorn formats each line's
    # arguments before the logger drops it (tens of µs a request on loopback).
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0
