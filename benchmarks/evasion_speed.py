"""How fast are advml's FGSM and PGD, next to the raw gradient work, torchattacks and ART?

On the same trained model and the same 500 inputs, for the digits MLP (eps 0.1), a GELU
MLP defined outside advml (``tests/_user_models.py``, digits, eps 0.1) and the mnist-5k
CNN (eps 0.3), all L∞, step size 0.01, PGD with 40 steps and a random start:

- **raw**: the work no implementation can avoid, the same number of forward + backward
  passes (cross-entropy, ``torch.autograd.grad`` w.r.t. the input, model in eval mode),
  at batch 500 and in chunks of 50/100/200/250 and advml's default chunk. FGSM's are
  measured at the inputs, PGD's at a random start in the ε-ball, where PGD computes its
  gradients (on the CNN a pass costs about 5-10 % more there than at clean MNIST digits; one
  row at the clean inputs shows it; another, the cost of also computing the parameters'
  gradients, as ART does). The raw work at batch 500 is the reference;
- **advml** ``FGSM`` / ``PGD`` with their default internal batching and with
  ``batch_size=500``;
- **torchattacks** ``FGSM`` / ``PGD`` on the raw ``nn.Module`` (inputs already in [0, 1]);
- **ART** ``FastGradientMethod`` / ``ProjectedGradientDescent`` on a ``PyTorchClassifier``
  (``clip_values=(0, 1)``, ``batch_size=500``, ``num_random_init=1`` for PGD).

Contenders take turns within each round; the table gives the median and the minimum over
the rounds of the wall-clock time, the ratio of the medians to the reference (``/raw``),
the same ratio of this process's CPU time (``cpu/raw``: steady on a machine shared with
other work) and the ratio to ART's attack (``/ART``). Every contender's output is checked
once (inside the ε-ball and the bounds) and its robust accuracy shown, so a fast but wrong
attack stands out.

Run ``python benchmarks/evasion_speed.py`` (``--help`` for the options; ``make bench``
installs ART and torchattacks first). A library that is not installed is skipped.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common as common
import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from advml.evasion import FGSM, PGD
from advml.models import TorchClassifier

STEPS = 40
ALPHA = 0.01
CHUNKS = (50, 100, 200, 250, 500)
N_INPUTS = 500

# Targets (issues): PGD-40 on the digits MLP and on a GELU MLP within 1.10x the raw work
# (issue 13; judged on CPU time, which a busy machine disturbs least) and >= 3x faster
# than ART; on the mnist-5k CNN within 1.05x the raw work at batch 500, and the default
# internal batching faster than the raw work at batch 500.
MLP_MAX_OVER_RAW = 1.10
MLP_MIN_SPEEDUP_OVER_ART = 3.0
CNN_MAX_OVER_RAW = 1.05
NAME_WIDTH = 62

Contender = Callable[[], "Tensor | np.ndarray | None"]


def raw_work(module: nn.Module, x: Tensor, y: Tensor, *, steps: int, chunk: int) -> Contender:
    """``steps`` forward + backward passes w.r.t. the input per chunk, nothing else."""

    def run() -> None:
        for i in range(0, x.shape[0], chunk):
            xc = x[i : i + chunk].detach().requires_grad_(True)
            yc = y[i : i + chunk]
            for _ in range(steps):
                loss = F.cross_entropy(module(xc), yc, reduction="sum")
                torch.autograd.grad(loss, xc)

    return run


def raw_work_with_parameter_gradients(
    module: nn.Module, x: Tensor, y: Tensor, *, steps: int
) -> Contender:
    """As :func:`raw_work` at one batch, but through ``loss.backward()``, which also
    computes every parameter's gradient, as ART's ``PyTorchClassifier.loss_gradient`` does."""

    def run() -> None:
        for _ in range(steps):
            xc = x.detach().requires_grad_(True)
            module.zero_grad(set_to_none=True)
            F.cross_entropy(module(xc), y, reduction="sum").backward()
        module.zero_grad(set_to_none=True)

    return run


def random_start(x: Tensor, eps: float, seed: int = 0) -> Tensor:
    """A uniform random point of the L∞ ball, clipped to [0, 1], as PGD starts from.

    The raw work of PGD is measured here, not at ``x``: the small CNN's forward and
    backward passes cost about 5-10 % more on these points than on clean MNIST digits, whose
    pixels are 80 % exact zeros (the benchmark shows both).
    """
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed))
    return (x + (2 * noise - 1) * eps).clamp(0.0, 1.0)


@dataclass
class Group:
    """The contenders for one attack, with the raw rows and the reference among them."""

    fns: dict[str, Contender]
    raw: list[str]
    reference: str


def contenders(
    model: TorchClassifier,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    steps: int,
    chunks: list[int],
    auto_chunk: int,
    advml_chunks: list[int],
    ta: Any,
    art: Any,
) -> Group:
    """Every contender for one attack (FGSM when ``steps == 1``, else PGD-``steps``).

    The raw work is measured where the attack computes its gradients: at ``x`` for FGSM,
    at a random start of the ε-ball for PGD (plus one row at ``x`` for comparison).
    """
    module = model.module
    n = x.shape[0]
    fgsm = steps == 1
    x_raw = x if fgsm else random_start(x, eps)
    where = "" if fgsm else " from a random start"
    fns: dict[str, Contender] = {}
    raw: list[str] = []
    reference = ""
    for chunk in chunks:
        label = f"batch {chunk}" if chunk >= n else f"chunk {chunk}"
        note = " (advml's default)" if chunk == auto_chunk and chunk < n else ""
        name = f"raw {steps}x fwd+bwd{where}, {label}{note}"
        fns[name] = raw_work(module, x_raw, y, steps=steps, chunk=chunk)
        raw.append(name)
        if chunk >= n:
            reference = name
    if not fgsm:
        fns[f"raw {steps}x fwd+bwd at the clean inputs, batch {n}"] = raw_work(
            module, x, y, steps=steps, chunk=n
        )
        fns[f"raw {steps}x fwd+bwd with parameter gradients, batch {n}"] = (
            raw_work_with_parameter_gradients(module, x_raw, y, steps=steps)
        )

    def advml_attack(batch_size: int | None) -> Contender:
        attack: FGSM | PGD
        if fgsm:
            attack = FGSM(eps=eps, batch_size=batch_size)
        else:
            attack = PGD(
                eps=eps, steps=steps, step_size=ALPHA, random_start=True, batch_size=batch_size
            )
        return lambda: attack.generate(model, x, y).x_adv

    name = "FGSM" if fgsm else f"PGD-{steps}"
    fns[f"advml {name}, default chunk {auto_chunk}"] = advml_attack(None)
    # The public API as most users call it: numpy in, numpy out.
    numpy_attack = (
        FGSM(eps=eps) if fgsm else PGD(eps=eps, steps=steps, step_size=ALPHA, random_start=True)
    )
    x_np, y_np = x.numpy(), y.numpy()
    fns[f"advml {name}, default chunk, numpy in/out"] = lambda: (
        numpy_attack.generate(model, x_np, y_np).x_adv
    )
    fns[f"advml {name}, batch_size=500"] = advml_attack(N_INPUTS)
    for chunk in advml_chunks:
        fns[f"advml {name}, batch_size={chunk}"] = advml_attack(chunk)
    if ta is not None:
        ta_attack = (
            ta.FGSM(module, eps=eps)
            if fgsm
            else ta.PGD(module, eps=eps, alpha=ALPHA, steps=steps, random_start=True)
        )
        fns[f"torchattacks {ta_attack.__class__.__name__}"] = lambda: ta_attack(x, y)
    if art is not None:
        from art.attacks.evasion import FastGradientMethod

        art_attack = (
            FastGradientMethod(
                estimator=common.art_classifier(module, model.input_shape),
                norm=np.inf,
                eps=eps,
                batch_size=N_INPUTS,
            )
            if fgsm
            else common.art_pgd(
                module, model.input_shape, eps=eps, alpha=ALPHA, steps=steps, batch_size=N_INPUTS
            )
        )
        x_np, y_np = x.numpy(), y.numpy()
        fns[f"ART {art_attack.__class__.__name__}"] = lambda: art_attack.generate(x=x_np, y=y_np)
    return Group(fns=fns, raw=raw, reference=reference)


def check_output(
    x_adv: Tensor | np.ndarray, x: Tensor, y: Tensor, module: nn.Module, eps: float
) -> float:
    """Robust accuracy of ``x_adv``; raises if it leaves the ε-ball or the bounds."""
    xa = torch.as_tensor(np.asarray(x_adv)) if not isinstance(x_adv, Tensor) else x_adv.detach()
    linf = float((xa - x).abs().amax())
    if linf > eps + 1e-5 or float(xa.min()) < -1e-6 or float(xa.max()) > 1 + 1e-6:
        raise RuntimeError(f"output outside the threat model: L∞ {linf:.4f} > eps {eps}?")
    return common.accuracy(module, xa, y)


def run_group(
    group: Group, x: Tensor, y: Tensor, module: nn.Module, eps: float, runs: int
) -> dict[str, Any]:
    """Warm up (checking every output once), time the contenders taking turns, add ratios.

    Ratios are of medians: to the raw work at batch ``n`` (``ratio_raw``) and to ART's
    attack (``ratio_art``); ``min_ratio_raw`` is the same ratio of the minimums, which
    a busy machine disturbs less.
    """
    robust: dict[str, float | None] = {}
    for name, fn in group.fns.items():
        torch.manual_seed(0)
        out = fn()
        robust[name] = None if out is None else check_output(out, x, y, module, eps)
    times, cpu_times = common.time_interleaved_cpu(group.fns, runs=runs)
    rows: dict[str, dict[str, Any]] = {
        name: {
            "times_s": t,
            "median_s": common.median(t),
            "min_s": min(t),
            "cpu_times_s": cpu_times[name],
            "cpu_median_s": common.median(cpu_times[name]),
            "robust_accuracy": robust[name],
        }
        for name, t in times.items()
    }
    ref = rows[group.reference]
    art = next((v for k, v in rows.items() if k.startswith("ART")), None)
    for v in rows.values():
        v["ratio_raw"] = v["median_s"] / ref["median_s"]
        v["min_ratio_raw"] = v["min_s"] / ref["min_s"]
        v["cpu_ratio_raw"] = v["cpu_median_s"] / ref["cpu_median_s"]
        v["ratio_art"] = None if art is None else v["median_s"] / art["median_s"]
    best = min(group.raw, key=lambda k: rows[k]["median_s"])
    return {"reference": group.reference, "best_raw": best, "rows": rows}


def print_group(title: str, result: dict[str, Any]) -> None:
    print(f"  {title}")
    for name, v in result["rows"].items():
        ratio_art = "" if v["ratio_art"] is None else f"{v['ratio_art']:.2f}"
        acc = "" if v["robust_accuracy"] is None else f"{100 * v['robust_accuracy']:.1f}%"
        print(
            f"    {name:<{NAME_WIDTH}} {1000 * v['median_s']:>9.1f} {1000 * v['min_s']:>9.1f} "
            f"{v['ratio_raw']:>7.3f} {v['cpu_ratio_raw']:>7.3f} {ratio_art:>7} {acc:>7}"
        )
    best = result["best_raw"]
    ratio = result["rows"][best]["ratio_raw"]
    print(f"    best raw chunking: {best.split(', ', 1)[1]} ({ratio:.3f}x the reference)")


def find(result: dict[str, Any], prefix: str) -> dict[str, Any] | None:
    return next((v for k, v in result["rows"].items() if k.startswith(prefix)), None)


def check_targets(models: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, judged on the medians; the same ratio of the minimums beside."""
    checks: list[dict[str, Any]] = []

    def add(
        what: str, value: float, at_min: float, op: str, bound: float, *, info: bool = False
    ) -> None:
        ok = value <= bound if op == "<=" else value >= bound if op == ">=" else value < bound
        checks.append(
            {
                "target": what,
                "value": value,
                "value_of_minimums": at_min,
                "op": op,
                "bound": bound,
                "met": ok,
                # Informational: the same ratio against a reference the target is not about.
                "information_only": info,
            }
        )

    pgd = f"PGD-{STEPS}"
    for key in ("mlp", "gelu"):
        if key not in models:
            continue
        g = models[key]["groups"]["pgd"]
        for prefix in (f"advml {pgd}, default chunk {models[key]['auto_chunk']}",):
            adv = find(g, prefix)
            if adv is not None:
                add(
                    f"{key}: advml {pgd} (default) / raw, CPU time",
                    adv["cpu_ratio_raw"],
                    adv["min_ratio_raw"],
                    "<=",
                    MLP_MAX_OVER_RAW,
                )
    if "mlp" in models:
        g = models["mlp"]["groups"]["pgd"]
        adv = find(g, f"advml {pgd}, default")
        art = find(g, "ART")
        if adv is not None:
            add(
                f"mlp: advml {pgd} (default) / raw",
                adv["ratio_raw"],
                adv["min_ratio_raw"],
                "<=",
                MLP_MAX_OVER_RAW,
            )
        if adv is not None and art is not None:
            add(
                f"mlp: ART PGD / advml {pgd} (speed-up)",
                art["median_s"] / adv["median_s"],
                art["min_s"] / adv["min_s"],
                ">=",
                MLP_MIN_SPEEDUP_OVER_ART,
            )
    if "cnn" in models:
        g = models["cnn"]["groups"]["pgd"]
        b500 = find(g, f"advml {pgd}, batch_size=500")
        default = find(g, f"advml {pgd}, default")
        clean = find(g, f"raw {STEPS}x fwd+bwd at the clean inputs")
        if b500 is not None:
            add(
                f"cnn: advml {pgd} (batch_size=500) / raw",
                b500["ratio_raw"],
                b500["min_ratio_raw"],
                "<=",
                CNN_MAX_OVER_RAW,
            )
            if clean is not None:
                add(
                    "cnn: same, / raw at the clean inputs (info)",
                    b500["median_s"] / clean["median_s"],
                    b500["min_s"] / clean["min_s"],
                    "<=",
                    CNN_MAX_OVER_RAW,
                    info=True,
                )
        if default is not None:
            add(
                f"cnn: advml {pgd} (default chunk) / raw",
                default["ratio_raw"],
                default["min_ratio_raw"],
                "<",
                1.0,
            )
    return checks


def _ints(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"sizes must be >= 1, got {text}")
    return values


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=None, help="timed rounds (default 5; --quick 1)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="CI smoke: 1 round, 100 inputs, no chunk sweep (numbers not comparable)",
    )
    p.add_argument(
        "--models", default="mlp,gelu,cnn", help="comma-separated subset of mlp,gelu,cnn"
    )
    p.add_argument(
        "--chunks",
        type=_ints,
        default=list(CHUNKS),
        help="chunk sizes of the raw-work sweep (default 50,100,200,250,500)",
    )
    p.add_argument(
        "--advml-chunks",
        type=_ints,
        default=[],
        help="also time advml with these batch_size values (e.g. 250,334)",
    )
    p.add_argument("--json", type=Path, default=None, help="write the results to this file")
    args = p.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in common.SETUPS]
    if unknown:
        p.error(f"unknown model(s) {', '.join(unknown)}; choose from mlp, gelu, cnn")
    if args.runs is None:
        args.runs = 1 if args.quick else 5
    if args.runs < 1:
        p.error(f"--runs must be >= 1, got {args.runs}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    threads = common.set_threads()
    n = 100 if args.quick else N_INPUTS
    ta = common.optional("torchattacks", common.TA_INSTALL)
    art = common.optional("art", common.ART_INSTALL)
    env = common.environment(threads)
    print(
        f"evasion speed: {n} inputs, L∞, alpha {ALPHA}, PGD {STEPS} steps with random start; "
        f"median and min of {args.runs} rounds; torch {torch.__version__}, "
        f"{threads} threads"
    )
    results: dict[str, Any] = {
        "environment": env,
        "settings": {
            "runs": args.runs,
            "n": n,
            "alpha": ALPHA,
            "steps": STEPS,
            "quick": args.quick,
        },
        "models": {},
    }
    for key in args.models:
        setup = common.SETUPS[key]
        data = common.load_data(setup.dataset)
        model = common.trained_model(setup, data)
        x_np, y_np = common.bench_inputs(data, n=n)
        x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
        # advml's default chunk (EvasionAttack._auto_batch_size), so the raw sweep includes it.
        auto_chunk = PGD()._auto_batch_size(model)
        chunks = [n] if args.quick else sorted({*args.chunks, n})
        if auto_chunk < n:
            chunks = sorted({*chunks, auto_chunk})
        clean = common.accuracy(model.module, x, y)
        print(
            f"\n{key} on {setup.dataset} ({data.source}): eps {setup.eps}, clean accuracy on "
            f"these inputs {100 * clean:.1f}%, advml default chunk {auto_chunk}"
        )
        header = ("median ms", "min ms", "/raw", "cpu/raw", "/ART", "rob.acc")
        print(
            f"    {'':<{NAME_WIDTH}} {header[0]:>9} {header[1]:>9} "
            + " ".join(f"{h:>7}" for h in header[2:])
        )
        groups: dict[str, Any] = {}
        for group, steps in (("fgsm", 1), ("pgd", STEPS)):
            fns = contenders(
                model,
                x,
                y,
                eps=setup.eps,
                steps=steps,
                chunks=chunks,
                advml_chunks=[c for c in args.advml_chunks if c not in (n, auto_chunk)],
                auto_chunk=auto_chunk,
                ta=ta,
                art=art,
            )
            groups[group] = run_group(fns, x, y, model.module, setup.eps, args.runs)
            print_group("FGSM" if steps == 1 else f"PGD-{STEPS}", groups[group])
        results["models"][key] = {
            "dataset": setup.dataset,
            "data_source": data.source,
            "eps": setup.eps,
            "clean_accuracy": clean,
            "auto_chunk": auto_chunk,
            "groups": groups,
        }
    checks = check_targets(results["models"])
    results["targets"] = checks
    if checks:
        print("\ntargets (judged on medians; the ratio of the minimums in brackets):")
        for c in checks:
            mark = "met" if c["met"] else "NOT met"
            if c["information_only"]:
                mark = "within" if c["met"] else "above"
            print(
                f"  {c['target']:<48} {c['value']:.3f} ({c['value_of_minimums']:.3f}) "
                f"{c['op']} {c['bound']}: {mark}"
            )
    if args.quick:
        print("(--quick: one round on 100 inputs; a smoke test, not a measurement)")
    common.write_results(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
