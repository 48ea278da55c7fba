"""Model extraction: the numbers of issue 5, beside IBM ART's CopycatCNN and KnockoffNets.

1. Equation solving (Tramèr et al. 2016) on scikit-learn LogisticRegression: breast-cancer
   (binary, d = 30) and digits (10 classes, d = 64): queries used and agreement with the
   victim on the test split and on 10,000 uniform random inputs; then behind each output
   defence.
2. Learning-based stealing of the mnist-5k reference CNN
   (``advml.models.reference.reference_model(load_dataset("mnist-5k"), architecture="cnn",
   seed=0)``) at 1,000 queries, labels and scores, with ART's CopycatCNN and KnockoffNets
   on the same pool, the same copy architecture and the same epochs.
3. The fidelity-vs-queries curves with scores and with labels only, up to 5,000 queries
   (the 4,000 training images, then Jacobian-style steps from them: the pool strategy
   cannot ask more than the pool holds, so the last round asks about the pool images
   moved along the copy's gradient), the queries each needs to reach 90/95/98% test
   agreement, hence the query cost labels-only output adds; then each output defence
   at 1,000 queries.
4. The same with an out-of-distribution pool (Knockoff-style): the 1,797 8x8 ``digits``
   images resized to 28x28.
5. Extraction enables evasion: PGD on the stolen copy, success on the victim.

The attacker's pool is the mnist-5k *training* split (4,000 unlabelled images: the victim's
own training inputs, without their labels); fidelity is measured on the 1,000-image test
split, which no attack ever queries.

Run::

    .venv/bin/python benchmarks/extraction.py --quick     # about 10-20 min on 2 idle cores
    .venv/bin/python benchmarks/extraction.py             # everything
    .venv/bin/python benchmarks/extraction.py --parts linear,compare --json out.json

``--parts`` picks among ``linear`` (1), ``compare`` (2), ``curves`` (3), ``ood`` (4) and
``transfer`` (5; it needs ``curves``' stolen model and runs them if asked alone).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from torch import nn

from advml.data import load_dataset
from advml.defences.output import LabelsOnly, NoisyScores, Rounding, TopK
from advml.errors import UnsupportedModelError
from advml.extraction import Copycat, EquationSolving, fit_to_input_shape, transfer_evasion
from advml.models import SklearnClassifier, TorchClassifier
from advml.models.architectures import build
from advml.models.reference import reference_model

RESULTS: dict[str, Any] = {}
JSON_PATH: list[str] = []
"""Where --json writes; RESULTS is written after every line so a stopped run keeps its numbers."""


def log(text: str = "") -> None:
    print(text, flush=True)
    if JSON_PATH:
        with open(JSON_PATH[0], "w") as f:
            json.dump(RESULTS, f, indent=1, default=str)


def pct(v: float) -> str:
    return "   n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:6.1%}"


# -- 1. equation solving ---------------------------------------------------------------------
def equation_solving() -> None:
    log("== 1. Equation solving (Tramer et al. 2016) on LogisticRegression ==")
    rows = []
    for name, shape in (("breast-cancer", None), ("digits", (1, 8, 8))):
        ds = load_dataset(name)
        x = ds.x_train.reshape(len(ds.x_train), -1)
        est = LogisticRegression(max_iter=5000).fit(x, ds.y_train)
        victim = SklearnClassifier(est, bounds=(0.0, 1.0), input_shape=shape)
        d = x.shape[1]
        log(
            f"{name}: d = {d}, {ds.n_classes} classes, victim test accuracy "
            f"{(victim.predict(ds.x_test) == ds.y_test).mean():.1%}"
        )
        log(f"  {'output':<34}{'queries':>8}{'test agr.':>11}{'random agr.':>13}  note")
        for label, defence, queries in (
            ("full probabilities", None, None),
            ("full probabilities, one query fewer", None, d),
            ("rounded to 4 decimals", Rounding(decimals=4), None),
            ("rounded to 2 decimals", Rounding(decimals=2), None),
            ("rounded to 2 decimals", Rounding(decimals=2), 5 * (d + 1)),
            ("top-3", TopK(k=3), None),
            ("top-3", TopK(k=3), 10 * (d + 1)),
            ("noisy (scale 0.01)", NoisyScores(scale=0.01), 5 * (d + 1)),
            ("labels only", LabelsOnly(), None),
        ):
            api = victim if defence is None else defence.wrap(victim)
            try:
                r = EquationSolving(queries=queries).extract(api, x_eval=ds.x_test)
            except (UnsupportedModelError, ValueError) as err:
                note = str(err).split(";")[0][:90]
                log(f"  {label:<34}{queries or d + 1:>8}{'-':>11}{'-':>13}  refused: {note}")
                rows.append(
                    {
                        "dataset": name,
                        "output": label,
                        "queries": queries or d + 1,
                        "refused": str(err),
                    }
                )
                continue
            log(
                f"  {label:<34}{r.queries:>8}{pct(r.fidelity):>11}{pct(r.fidelity_random):>13}"
                f"  residual {r.details['max_residual']:.1e}"
            )
            rows.append(
                {
                    "dataset": name,
                    "output": label,
                    "queries": r.queries,
                    "fidelity": r.fidelity,
                    "fidelity_random": r.fidelity_random,
                    "details": dict(r.details),
                }
            )
    RESULTS["equation_solving"] = rows
    log()


# -- 2.-5. learning-based stealing ----------------------------------------------------------
def small_cnn(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return build("cnn", input_shape=(1, 28, 28), n_classes=10, channels=(16, 32), hidden=64)


def ours(victim: Any, pool: np.ndarray, ds: Any, label: str, **settings: Any) -> Any:
    start = time.perf_counter()
    r = Copycat(**settings).extract(
        victim, pool, x_eval=ds.x_test, y_eval=ds.y_test, n_random=10_000
    )
    secs = time.perf_counter() - start
    curve = ", ".join(f"{p.queries}: {p.fidelity:.3f}" for p in r.curve)
    log(
        f"  {label:<44}{r.queries:>7}{pct(r.fidelity):>9}{pct(r.fidelity_random):>9}"
        f"{pct(r.accuracy):>9}{secs:>7.0f}s   [{curve}]"
    )
    RESULTS.setdefault("stealing", []).append(
        {"method": label, "settings": settings, **r.summary(), "wall_seconds": secs}
    )
    return r


def art_runs(
    victim: TorchClassifier, pool: np.ndarray, ds: Any, budget: int, epochs: int, seed: int
) -> None:
    try:
        from art.attacks.extraction import CopycatCNN, KnockoffNets
        from art.estimators.classification import PyTorchClassifier
    except ImportError:
        log(
            "  ART not installed: .venv/bin/python -m pip install --constraint constraints.txt "
            "-e '.[dev,bench]'"
        )
        return

    def wrap(module: nn.Module, *, fit: bool) -> Any:
        return PyTorchClassifier(
            model=module,
            loss=nn.CrossEntropyLoss(),
            input_shape=(1, 28, 28),
            nb_classes=10,
            clip_values=(0.0, 1.0),
            optimizer=torch.optim.Adam(module.parameters(), lr=1e-3) if fit else None,
        )

    victim.module.eval()
    logits_victim = wrap(victim.module, fit=False)
    softmax_victim = wrap(nn.Sequential(victim.module, nn.Softmax(dim=1)).eval(), fit=False)
    x_eval = torch.as_tensor(ds.x_test)
    with torch.no_grad():
        victim_eval = victim.module(x_eval).argmax(1).numpy()
    runs = (
        ("ART CopycatCNN, labels", CopycatCNN, logits_victim, False, {}),
        (
            "ART KnockoffNets random, labels",
            KnockoffNets,
            logits_victim,
            False,
            {"sampling_strategy": "random", "verbose": False},
        ),
        (
            "ART KnockoffNets random, probabilities",
            KnockoffNets,
            logits_victim,
            True,
            {"sampling_strategy": "random", "verbose": False},
        ),
        (
            "ART KnockoffNets, re-normalised probs",
            KnockoffNets,
            softmax_victim,
            True,
            {"sampling_strategy": "random", "verbose": False},
        ),
        ("ART CopycatCNN, re-normalised probs", CopycatCNN, softmax_victim, True, {}),
    )
    for label, cls, art_victim, proba, extra in runs:
        np.random.seed(seed)  # noqa: NPY002  (ART draws its sample from the global generator)
        thief = wrap(small_cnn(seed), fit=True)
        start = time.perf_counter()
        attack = cls(
            classifier=art_victim,
            batch_size_fit=64,
            batch_size_query=64,
            nb_epochs=epochs,
            nb_stolen=budget,
            use_probability=proba,
            **extra,
        )
        stolen = attack.extract(x=pool, thieved_classifier=thief)
        secs = time.perf_counter() - start
        pred = stolen.predict(ds.x_test).argmax(1)
        fid = float((pred == victim_eval).mean())
        acc = float((pred == ds.y_test).mean())
        log(f"  {label:<44}{budget:>7}{pct(fid):>9}{'':>9}{pct(acc):>9}{secs:>7.0f}s")
        RESULTS.setdefault("stealing", []).append(
            {
                "method": label,
                "queries": budget,
                "fidelity": fid,
                "accuracy": acc,
                "nb_epochs": epochs,
                "wall_seconds": secs,
            }
        )


def stealing(args: argparse.Namespace) -> None:
    ds = load_dataset("mnist-5k")
    victim, _ = reference_model(ds, architecture="cnn", seed=0, show_progress=False)
    victim.module.eval()
    pool = ds.x_train
    parts = args.parts
    log(
        f"mnist-5k victim: reference CNN, test accuracy "
        f"{(victim.predict(ds.x_test) == ds.y_test).mean():.1%}; attacker pool: the "
        f"{len(pool)} mnist-5k training images, unlabelled; fidelity on the {len(ds.x_test)} "
        f"test images (never queried) and on 10,000 uniform random inputs; copy: "
        f"{args.architecture}, {args.epochs} epochs per round"
    )
    header = f"  {'method':<46}{'queries':>7}{'test':>9}{'random':>9}{'acc.':>9}{'time':>8}   curve"
    base = {
        "queries": 1000,
        "epochs": args.epochs,
        "seed": args.seed,
        "architecture": args.architecture,
    }
    if "compare" in parts:
        log("== 2. Learning-based stealing at 1,000 queries, beside ART ==")
        log(header)
        for outputs in ("labels", "scores"):
            ours(
                victim,
                pool,
                ds,
                f"advml copycat pool, {outputs}",
                strategy="pool",
                outputs=outputs,
                rounds=1,
                **base,
            )
        ours(
            victim,
            pool,
            ds,
            "advml copycat pool, labels, semi-supervised",
            strategy="pool",
            outputs="labels",
            rounds=2,  # pseudo-labels come from the previous round's copy
            semi_supervised=True,
            **base,
        )
        if not args.quick and not args.no_strategies:
            for strategy, rounds in (("active", 4), ("jacobian", 4), ("random", 1)):
                ours(
                    victim,
                    pool,
                    ds,
                    f"advml copycat {strategy}, labels",
                    strategy=strategy,
                    outputs="labels",
                    rounds=rounds,
                    **base,
                )
        if not args.skip_art:
            art_runs(victim, pool, ds, 1000, args.epochs, args.seed)
        log()

    curves: dict[str, Any] = {}
    if "curves" in parts or "transfer" in parts:
        log("== 3. Fidelity vs queries: scores and labels only (pool strategy) ==")
        log(header)
        top = len(pool) if not args.quick else 1000
        rounds = 6 if not args.quick else 4
        for outputs in ("scores", "labels"):
            curves[outputs] = ours(
                victim,
                pool,
                ds,
                f"advml copycat pool, {outputs}, curve",
                strategy="pool",
                outputs=outputs,
                queries=top,
                rounds=rounds,
                epochs=args.epochs,
                seed=args.seed,
                architecture=args.architecture,
            )
        if not args.quick:
            # Beyond the pool: 4,000 pool images plus 1,000 of the 1,797 digits images
            # resized (the pool strategy asks each pool input at most once).
            digits = load_digits()
            ood = fit_to_input_shape(
                (digits.data / 16.0).reshape(-1, 1, 8, 8),
                (1, 28, 28),
                (0.0, 1.0),
                source_bounds=(0, 1),
            ).numpy()
            ours(
                victim,
                np.concatenate([pool, ood]),
                ds,
                "advml copycat pool+digits, scores, 5,000",
                strategy="pool",
                outputs="scores",
                queries=5000,
                rounds=1,
                epochs=args.epochs,
                seed=args.seed,
                architecture=args.architecture,
            )
        for target in (0.90, 0.95, 0.98):
            qs, ql = (curves[o].queries_to_reach(target) for o in ("scores", "labels"))
            log(f"  queries to reach {target:.0%} test agreement: scores {qs}, labels only {ql}")
            RESULTS.setdefault("query_cost", []).append(
                {"target": target, "scores": qs, "labels": ql}
            )
        log()

    if "ood" in parts:
        log("== 4. Out-of-distribution pool: digits 8x8 resized to 28x28 (Knockoff-style) ==")
        log(header)
        digits = load_digits()
        ood = fit_to_input_shape(
            (digits.data / 16.0).reshape(-1, 1, 8, 8), (1, 28, 28), (0.0, 1.0), source_bounds=(0, 1)
        ).numpy()
        for outputs in ("labels", "scores"):
            ours(
                victim,
                ood,
                ds,
                f"advml copycat digits pool, {outputs}",
                strategy="pool",
                outputs=outputs,
                rounds=1,
                **base,
            )
        log()

    if "transfer" in parts:
        from advml.evasion import PGD

        log("== 5. Extraction enables evasion: PGD on the stolen copy, sent to the victim ==")
        stolen = curves["scores"].stolen
        x, y = ds.x_test[:500], ds.y_test[:500]
        clean_ok = victim.predict(x) == y
        for eps in (0.1, 0.2, 0.3):
            t = transfer_evasion(stolen, victim, x, y, settings={"eps": eps, "steps": 40})
            white = PGD(eps=eps, steps=40).generate(victim, x, y)
            log(
                f"  eps {eps}: success on the stolen copy {t.success_on_stolen:.1%}, transferred "
                f"to the victim {t.transfer_success:.1%} (white-box PGD on the victim "
                f"{white.success[clean_ok].mean():.1%}); victim queries {t.victim_queries}"
            )
            RESULTS.setdefault("transfer", []).append(
                {"eps": eps, **t.summary(), "white_box": float(white.success[clean_ok].mean())}
            )

    if "hardening" in parts:
        log("== 3b. Output hardening at 1,000 queries (pool strategy) ==")
        log(header)
        for label, defence in (
            ("labels only", LabelsOnly()),
            ("top-1", TopK(k=1)),
            ("rounded to 1 decimal", Rounding(decimals=1)),
            ("noisy scores (scale 0.1)", NoisyScores(scale=0.1)),
        ):
            ours(
                defence.wrap(victim),
                pool,
                ds,
                f"advml copycat pool, behind {label}",
                strategy="pool",
                rounds=1,
                **base,
            )
        log()


PARTS = ("linear", "compare", "curves", "transfer", "hardening", "ood")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, curves to 1,000")
    parser.add_argument("--skip-art", action="store_true", help="do not run ART")
    parser.add_argument(
        "--no-strategies",
        action="store_true",
        help="skip the active, jacobian and random-input strategies at 1,000 queries",
    )
    parser.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma-separated subset of {', '.join(PARTS)}"
    )
    parser.add_argument("--epochs", type=int, default=30, help="copy training epochs (30)")
    parser.add_argument(
        "--architecture",
        default="small-cnn",
        choices=("small-cnn", "cnn", "mlp"),
        help="the copy's network (ART's thieves get the same small CNN)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the numbers to this file")
    args = parser.parse_args(argv)
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown:
        parser.error(f"--parts has unknown names {unknown}; choose from {', '.join(PARTS)}")
    torch.set_num_threads(1)
    RESULTS["command"] = " ".join(sys.argv)
    if args.json:
        JSON_PATH.append(args.json)
    started = time.perf_counter()
    try:
        if "linear" in args.parts:
            equation_solving()
        if set(args.parts) - {"linear"}:
            stealing(args)
    finally:
        RESULTS["command"] = " ".join(sys.argv)
        RESULTS["wall_seconds"] = round(time.perf_counter() - started, 1)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(RESULTS, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
