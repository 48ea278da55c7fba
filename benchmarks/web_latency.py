"""Latency of the web demo's attack request: PGD-40 on mnist-5k images, model warm.

Starts ``advml serve`` (the reference CNN on mnist-5k) on a free local port, sends one
warm-up request, then times ``--requests`` PGD-40 attack requests on different test
images end to end over HTTP (JSON encoding, the attack, both views and the magnified
perturbation included) and prints the median, min and max.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/web_latency.py --requests 15
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time

import httpx2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=15)
    p.add_argument("--strength", default="medium", choices=("low", "medium", "high"))
    p.add_argument("--attack", default="pgd")
    args = p.parse_args()
    port = _free_port()
    advml = os.path.join(os.path.dirname(sys.executable), "advml")
    server = subprocess.Popen(
        [advml, "serve", "--dataset", "mnist-5k", "--port", str(port), "--quiet"],
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx2.Client(base_url=base, timeout=60) as client:
            for _ in range(600):
                try:
                    info = client.get("/api/info").json()
                    break
                except httpx2.TransportError:
                    time.sleep(0.5)
            else:
                raise RuntimeError("the server did not start")
            print(
                f"model: {info['model']} on {info['dataset']}, torch threads: "
                f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
            )

            def attack(index: int) -> tuple[float, dict]:
                body = {
                    "image": {"dataset": "mnist-5k", "index": index},
                    "attack": args.attack,
                    "strength": args.strength,
                }
                start = time.perf_counter()
                r = client.post("/api/attack", json=body)
                elapsed = time.perf_counter() - start
                r.raise_for_status()
                return elapsed, r.json()

            attack(0)  # warm-up
            times, inside, changed = [], [], 0
            for i in range(1, args.requests + 1):
                elapsed, out = attack(i)
                times.append(elapsed)
                inside.append(out["seconds"])
                changed += out["label_changed"]
            print(
                f"{args.attack} ({out['settings']}) x {args.requests} requests: median "
                f"{statistics.median(times):.3f} s (min {min(times):.3f}, max {max(times):.3f}); "
                f"attack alone median {statistics.median(inside):.3f} s; label changed on "
                f"{changed}/{args.requests}"
            )
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
