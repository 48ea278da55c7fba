"""Is advml's PGD as strong as torchattacks' and ART's at equal settings?

Robust accuracy (the share of inputs still classified correctly after the attack) under
L∞ PGD with 40 steps, step size ``2.5 * eps / 40`` (Madry et al.'s heuristic, advml's
default) and one random start, on test inputs of

- the mnist-5k CNN at eps 0.1, 0.2 and 0.3;
- the digits MLP at eps 0.05 and 0.1;

for 5 seeds: advml ``PGD(seed=s)``; torchattacks ``PGD`` and ART
``ProjectedGradientDescent`` after ``torch.manual_seed(s)`` and ``numpy.random.seed(s)``.
Every library's output is scored by the same evaluation of the same module and checked
to lie inside the ε-ball and the bounds. The table gives mean ± standard deviation over
the seeds and, per setting, advml minus each other library.

Target: advml within 1 point of the others, and never higher (weaker) by more than noise
(two standard errors of the difference of the means).

Run ``python benchmarks/evasion_strength.py`` (``--help`` for the options; ``make bench``
installs ART and torchattacks first). A library that is not installed is skipped.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _common as common
import numpy as np
import torch
from torch import Tensor

from advml.evasion import PGD
from advml.models import TorchClassifier

STEPS = 40
EPSILONS = {"cnn": (0.1, 0.2, 0.3), "mlp": (0.05, 0.1)}
N_INPUTS = 500
MAX_GAP_POINTS = 1.0


def test_inputs(data: common.Data, n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``n`` test inputs drawn with ``default_rng(seed)`` (all of them when there are fewer)."""
    if data.x_test.shape[0] <= n:
        x, y = data.x_test, data.y_test
    else:
        idx = np.random.default_rng(seed).choice(data.x_test.shape[0], size=n, replace=False)
        x, y = data.x_test[idx], data.y_test[idx]
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.asarray(y))


Attack = Callable[[int], "Tensor | np.ndarray"]


def attacks(
    model: TorchClassifier, x: Tensor, y: Tensor, eps: float, ta: Any, art: Any
) -> dict[str, Attack]:
    """One callable per library: seed -> adversarial inputs, all at the same settings."""
    alpha = 2.5 * eps / STEPS
    module = model.module
    out: dict[str, Attack] = {}

    def run_advml(seed: int) -> Tensor | np.ndarray:
        attack = PGD(eps=eps, steps=STEPS, step_size=alpha, random_start=True, seed=seed)
        return attack.generate(model, x, y).x_adv

    out["advml"] = run_advml
    if ta is not None:
        ta_pgd = ta.PGD(module, eps=eps, alpha=alpha, steps=STEPS, random_start=True)

        def run_ta(seed: int) -> Tensor:
            seed_globals(seed)
            result: Tensor = ta_pgd(x, y)
            return result

        out["torchattacks"] = run_ta
    if art is not None:
        art_pgd = common.art_pgd(
            module, model.input_shape, eps=eps, alpha=alpha, steps=STEPS, batch_size=N_INPUTS
        )
        x_np, y_np = x.numpy(), y.numpy()

        def run_art(seed: int) -> np.ndarray:
            seed_globals(seed)
            result: np.ndarray = art_pgd.generate(x=x_np, y=y_np)
            return result

        out["ART"] = run_art
    return out


def seed_globals(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (ART draws its random start from the global generator)


def robust_accuracy(
    x_adv: Tensor | np.ndarray, x: Tensor, y: Tensor, model: TorchClassifier, eps: float
) -> float:
    """Accuracy on ``x_adv``; raises if ``x_adv`` leaves the ε-ball or the bounds."""
    xa = x_adv.detach() if isinstance(x_adv, Tensor) else torch.from_numpy(np.asarray(x_adv))
    linf = float((xa - x).abs().amax())
    if linf > eps + 1e-5 or float(xa.min()) < -1e-6 or float(xa.max()) > 1 + 1e-6:
        raise RuntimeError(f"output outside the threat model: L∞ {linf:.5f} for eps {eps}")
    return common.accuracy(model.module, xa, y)


def summarise(per_lib: dict[str, list[float]]) -> dict[str, Any]:
    """Mean, std (in points) per library and advml minus each other library."""
    stats: dict[str, dict[str, Any]] = {
        lib: {
            "accuracies": accs,
            "mean": 100 * statistics.fmean(accs),
            "std": 100 * statistics.stdev(accs) if len(accs) > 1 else 0.0,
        }
        for lib, accs in per_lib.items()
    }
    comparisons: dict[str, dict[str, Any]] = {}
    a = stats["advml"]
    k = len(a["accuracies"])
    for lib, s in stats.items():
        if lib == "advml":
            continue
        diff = a["mean"] - s["mean"]
        noise = 2 * math.sqrt((a["std"] ** 2 + s["std"] ** 2) / k)
        comparisons[lib] = {
            "advml_minus": diff,
            "noise": noise,
            "within_1_point": abs(diff) <= MAX_GAP_POINTS,
            "not_weaker_beyond_noise": diff <= noise,
        }
    means = [s["mean"] for s in stats.values()]
    return {
        "libraries": stats,
        "vs_advml": comparisons,
        "max_difference": max(means) - min(means),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default 5; --quick 2)")
    p.add_argument(
        "--n",
        type=int,
        default=None,
        help=f"test inputs per model (default {N_INPUTS}; digits has 360; --quick 100)",
    )
    p.add_argument(
        "--quick", action="store_true", help="CI smoke: 2 seeds, 100 inputs, the largest eps only"
    )
    p.add_argument("--models", default="cnn,mlp", help="comma-separated subset of cnn,mlp")
    p.add_argument("--json", type=Path, default=None, help="write the results to this file")
    args = p.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in common.SETUPS]
    if unknown:
        p.error(f"unknown model(s) {', '.join(unknown)}; choose from mlp, cnn")
    if args.seeds is None:
        args.seeds = 2 if args.quick else 5
    if args.n is None:
        args.n = 100 if args.quick else N_INPUTS
    if args.seeds < 1 or args.n < 1:
        p.error("--seeds and --n must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    threads = common.set_threads()
    ta = common.optional("torchattacks", common.TA_INSTALL)
    art = common.optional("art", common.ART_INSTALL)
    print(
        f"evasion strength: L∞ PGD-{STEPS}, step 2.5*eps/{STEPS}, one random start, "
        f"seeds 0..{args.seeds - 1}; robust accuracy in % (mean ± std over seeds)"
    )
    results: dict[str, Any] = {
        "environment": common.environment(threads),
        "settings": {"steps": STEPS, "seeds": args.seeds, "n": args.n, "quick": args.quick},
        "models": {},
    }
    verdicts: list[bool] = []
    for key in args.models:
        setup = common.SETUPS[key]
        data = common.load_data(setup.dataset)
        model = common.trained_model(setup, data)
        x, y = test_inputs(data, args.n)
        clean = common.accuracy(model.module, x, y)
        print(
            f"\n{key} on {setup.dataset} ({data.source}): {x.shape[0]} test inputs, "
            f"clean accuracy {100 * clean:.1f}%"
        )
        epsilons = EPSILONS[key][-1:] if args.quick else EPSILONS[key]
        per_eps: dict[str, Any] = {}
        for eps in epsilons:
            fns = attacks(model, x, y, eps, ta, art)
            per_lib: dict[str, list[float]] = {lib: [] for lib in fns}
            seconds: dict[str, float] = dict.fromkeys(fns, 0.0)
            for seed in range(args.seeds):
                for lib, fn in fns.items():
                    start = time.perf_counter()
                    x_adv = fn(seed)
                    seconds[lib] += time.perf_counter() - start
                    per_lib[lib].append(robust_accuracy(x_adv, x, y, model, eps))
            summary = summarise(per_lib)
            summary["seconds"] = seconds
            per_eps[str(eps)] = summary
            cells = "   ".join(
                f"{lib} {s['mean']:5.1f} ± {s['std']:3.1f}"
                for lib, s in summary["libraries"].items()
            )
            print(f"  eps {eps:<5} {cells}   max difference {summary['max_difference']:.2f}")
            for lib, c in summary["vs_advml"].items():
                ok = c["within_1_point"] and c["not_weaker_beyond_noise"]
                verdicts.append(ok)
                print(
                    f"    advml - {lib}: {c['advml_minus']:+.2f} points (noise ±{c['noise']:.2f}): "
                    f"{'ok' if ok else 'NOT ok'}"
                )
        results["models"][key] = {
            "dataset": setup.dataset,
            "data_source": data.source,
            "n": int(x.shape[0]),
            "clean_accuracy": clean,
            "eps": per_eps,
        }
    if verdicts:
        print(
            f"\ntarget (advml within {MAX_GAP_POINTS:g} point of each library, never weaker "
            f"beyond noise): {'met' if all(verdicts) else 'NOT met'} "
            f"({sum(verdicts)}/{len(verdicts)} comparisons)"
        )
    else:
        print("\nno other library installed: nothing to compare advml's PGD with")
    results["target_met"] = all(verdicts) if verdicts else None
    common.write_results(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
