"""What does attacking a model through HTTP cost, next to attacking it in process?

The victim is advml's reference MLP on ``digits`` (seed 0), served by ``advml
serve-model`` in a separate process on 127.0.0.1 (a server thread inside this process
would share its interpreter lock with the attack and measure that, not the API). The
same trained weights are loaded in process (``reference_model``, cached under
``$ADVML_HOME/models``).

- **Square** (ε 0.1, 200 queries per input) and **HopSkipJump** (L∞, 200 queries per
  input) on 100 test inputs, in process and through HTTP (``HTTPClassifier``, up to 100
  inputs per request), with the batch sent as float32 bytes (what the client picks
  against an advml server) and as JSON lists (any server): seconds per query (attack
  time / queries the attack asked), the ratio to in process, the **HTTP overhead** per
  query (HTTP time per query less the in-process time per query) as a multiple of the
  in-process query time (issue 14's target: at most 1.5x), and a check that all give
  the same adversarial examples;
- **Copycat** extraction (500 queries, seed 0) in process and through HTTP: fidelity of
  the copies on the test split;
- **throughput**: queries per second sending 4,000 new inputs at concurrency 1, 4 and 16
  (100 inputs per request), and 400 at one input per request.

Run ``python benchmarks/remote.py`` (``--rounds`` repeats the timings; the median is
shown). It takes about two minutes on two cores.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import torch

from advml.data import load_dataset
from advml.evasion import HopSkipJump, Square
from advml.extraction import Copycat
from advml.models.http import HTTPClassifier, TargetSpec
from advml.models.reference import reference_model

N_INPUTS = 100


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    cmd = [sys.executable, "-c", "from advml.cli import main; raise SystemExit(main())"]
    args = ["serve-model", "--dataset", "digits", "--quiet", "--port", str(port)]
    proc = subprocess.Popen(cmd + args, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("advml serve-model did not start")


def _client(
    url: str, concurrency: int = 4, per_request: int = 100, encoding: str = "float32-base64"
) -> HTTPClassifier:
    spec = TargetSpec(
        url=url,
        returns="probs",
        concurrency=concurrency,
        inputs_per_request=per_request,
        encoding=encoding,
    )
    return HTTPClassifier(spec, input_shape=(1, 8, 8), n_classes=10, bounds=(0.0, 1.0))


WHERE = ("in process", "float32-base64", "list")


def _attack_rows(
    name: str, attack: Any, local: Any, url: str, x: Any, y: Any, rounds: int
) -> list[str]:
    """Seconds per query of the attack (its in-process query count: the HTTP client
    sends a repeated input once, so its own count is lower) in process and through HTTP
    with each encoding."""
    times: dict[str, list[float]] = {w: [] for w in WHERE}
    sent: dict[str, int] = {}
    outputs: dict[str, np.ndarray] = {}
    for _ in range(rounds):
        for where in WHERE:
            model = local if where == "in process" else _client(url, encoding=where)
            model.reset_queries()
            start = time.perf_counter()
            result = attack.generate(model, x, y)
            times[where].append(time.perf_counter() - start)
            sent[where] = model.query_count
            outputs[where] = np.asarray(result.x_adv)
    asked = sent["in process"]
    base = statistics.median(times["in process"]) / asked * 1e6
    rows = []
    for where in WHERE:
        per = statistics.median(times[where]) / asked * 1e6
        same = np.array_equal(outputs["in process"], outputs[where])
        extra = "" if where == "in process" else f"{per - base:.1f}"
        ratio = "" if where == "in process" else f"{(per - base) / base:.2f}x"
        rows.append(
            f"| {name} | {where} | {asked:,} | {sent[where]:,} | {per:.1f} | "
            f"{per / base:.2f}x | {extra} | {ratio} | {'yes' if same else 'no'} |"
        )
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="timing rounds (default 3)")
    args = p.parse_args()
    torch.set_num_threads(1)
    ds = load_dataset("digits")
    local, _ = reference_model(ds, seed=0, show_progress=False)
    x, y = ds.x_test[:N_INPUTS], ds.y_test[:N_INPUTS]
    port = _free_port()
    server = _start_server(port)
    url = f"http://127.0.0.1:{port}/predict"
    try:
        print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, digits MLP, {N_INPUTS} inputs")
        print("\n| attack | where | queries asked | inputs sent | µs/query | / in process | "
              "HTTP overhead µs/query | overhead / in-process query | same examples |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|")
        square = Square(eps=0.1, max_queries=200, seed=0)
        print("\n".join(_attack_rows("Square ε=0.1", square, local, url, x, y, args.rounds)))
        hsj = HopSkipJump(norm="inf", max_queries=200, seed=0)
        print("\n".join(_attack_rows("HopSkipJump L∞", hsj, local, url, x, y, args.rounds)))

        print("\n| copycat, 500 queries, seed 0 | fidelity (test split) | queries | seconds |")
        print("|---|---|---|---|")
        copycat = Copycat(queries=500, seed=0)
        for where in ("in process", "HTTP"):
            model = local if where == "in process" else _client(url)
            model.reset_queries()
            start = time.perf_counter()
            stolen = copycat.extract(
                model, ds.x_train, x_eval=ds.x_test, y_eval=ds.y_test, n_random=1000
            )
            secs = time.perf_counter() - start
            print(f"| {where} | {stolen.fidelity:.4f} | {stolen.queries:,} | {secs:.1f} |")

        print("\n| concurrency | inputs per request | queries/s |")
        print("|---|---|---|")
        rng = np.random.default_rng(0)
        for per_request, n, levels in ((100, 4000, (1, 4, 16)), (1, 400, (1, 4, 16))):
            for c in levels:
                rates = []
                for _ in range(args.rounds):
                    batch = rng.random((n, 1, 8, 8), dtype=np.float32)  # new: never cached
                    model = _client(url, concurrency=c, per_request=per_request)
                    start = time.perf_counter()
                    model.predict_proba(batch, batch_size=n)
                    rates.append(n / (time.perf_counter() - start))
                print(f"| {c} | {per_request} | {statistics.median(rates):,.0f} |")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
