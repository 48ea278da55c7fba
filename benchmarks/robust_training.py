"""Robust training of the mnist-5k reference CNN: clean vs robust accuracy, training time.

Trains the reference CNN architecture (``architectures.build("cnn")``, as in
``advml/models/reference.py``) on mnist-5k's 4,000 training images with each robust
training method, then evaluates every model - the standard reference CNN included -
on the 1,000 test images: clean accuracy and robust accuracy under PGD-40 at ε = 0.3
(the issue's target: >= 70% robust, clean accuracy at most 3 points below the
reference), and the cross-evaluation matrix (trained against A, attacked with B).

Each trained model is saved under ``--out`` (``<method>.pt`` + ``<method>.json`` with its
history and training time) and reused by later runs unless ``--retrain``; training the
CNN with PGD takes tens of minutes on a busy 2-core machine, so train once, evaluate
often::

    .venv/bin/python benchmarks/robust_training.py --methods pgd_training
    .venv/bin/python benchmarks/robust_training.py --methods fgsm_training,trades
    .venv/bin/python benchmarks/robust_training.py --quick   # digits MLP, a few minutes
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from advml import registry
from advml.data import load_dataset
from advml.defences.training import RobustTraining
from advml.defences.training.cross_eval import cross_evaluate, default_attacks
from advml.models import TorchClassifier, load_model, save_model
from advml.models.reference import reference_model

# The recipe for the mnist-5k CNN, sized for a shared 2-core machine: adversarial
# fine-tuning of the reference CNN (init="model") with 5 PGD steps of 2.5 * eps / 5
# (Madry et al. trained from scratch with 40 steps of 0.01 for ~100k iterations) and a
# linear ε warm-up over the first 2 epochs; 10 epochs, 25 for PGD training (10 gave
# 61.5% under PGD-40, short of the 70% target; 25 give 78.7%, docs/defences.md).
CNN_RECIPES: dict[str, dict[str, Any]] = {
    "standard": {"epochs": 15},
    "fgsm_training": {"eps": 0.3, "epochs": 10, "warmup_epochs": 2, "init": "model"},
    "pgd_training": {"eps": 0.3, "steps": 5, "epochs": 25, "warmup_epochs": 2, "init": "model"},
    "trades": {
        "eps": 0.3,
        "beta": 6.0,
        "steps": 5,
        "epochs": 10,
        "warmup_epochs": 2,
        "init": "model",
    },
}
MLP_RECIPES: dict[str, dict[str, Any]] = {
    "standard": {"epochs": 30},
    "fgsm_training": {"eps": 0.1, "epochs": 30},
    "pgd_training": {"eps": 0.1, "steps": 5, "epochs": 30},
    "trades": {"eps": 0.1, "beta": 6.0, "steps": 5, "epochs": 30},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="digits MLP at eps=0.1 instead of the mnist-5k CNN"
    )
    parser.add_argument(
        "--methods",
        default="pgd_training",
        help="comma-separated robust_training methods to train (default pgd_training)",
    )
    parser.add_argument("--eps", type=float, default=None, help="evaluation eps (0.3; quick 0.1)")
    parser.add_argument("--n-test", type=int, default=None, help="test images evaluated (all)")
    parser.add_argument("--eval-steps", type=int, default=40, help="PGD steps of the evaluation")
    parser.add_argument("--out", default="benchmarks/.cache/robust_training", help="model folder")
    parser.add_argument("--retrain", action="store_true", help="train even if a model is saved")
    parser.add_argument("--no-matrix", action="store_true", help="skip the cross-evaluation")
    parser.add_argument(
        "--extra-epochs",
        type=int,
        default=0,
        help="fine-tune each trained model this many more epochs (same recipe, no warm-up, "
        "seed + 1), saved and evaluated as '<method>+<N>'",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    dataset = load_dataset("digits" if args.quick else "mnist-5k")
    arch = "mlp" if args.quick else "cnn"
    recipes = MLP_RECIPES if args.quick else CNN_RECIPES
    eps = args.eps if args.eps is not None else (0.1 if args.quick else 0.3)
    out = Path(args.out) / f"{dataset.name}-{arch}"
    out.mkdir(parents=True, exist_ok=True)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in methods:
        if m not in recipes:
            parser.error(f"--methods: unknown method {m!r}; choose from {', '.join(recipes)}")

    reference, info = reference_model(dataset, architecture=arch, seed=args.seed)
    print(f"reference {arch} on {dataset.name}: {info.get('file')}", flush=True)
    models: dict[str, TorchClassifier] = {"reference": reference}
    records: dict[str, dict[str, Any]] = {}
    for method in methods:
        models[method], records[method] = _trained(
            method, recipes[method], reference, dataset, out, args.retrain, args.seed
        )
    if args.extra_epochs > 0:
        for method in methods:
            name = f"{method}+{args.extra_epochs}"
            recipe = {**recipes[method], "epochs": args.extra_epochs, "warmup_epochs": 0}
            if method == "standard":
                recipe.pop("warmup_epochs")
            models[name], records[name] = _trained(
                method,
                recipe,
                models[method],
                dataset,
                out,
                args.retrain,
                args.seed + 1,
                save_as=name,
            )
    # Saved models of other methods join the evaluation too.
    for method in recipes:
        path = out / f"{method}.pt"
        if method not in models and path.exists():
            models[method] = _load(path)
            records[method] = json.loads((out / f"{method}.json").read_text())

    n_test = args.n_test or dataset.x_test.shape[0]
    x, y = dataset.x_test[:n_test], dataset.y_test[:n_test]
    pgd = registry.create("evasion", "pgd", eps=eps, steps=args.eval_steps, seed=args.seed)
    attacks = {f"pgd-{args.eval_steps}": pgd}
    if not args.no_matrix:
        attacks = {**default_attacks(eps=eps, seed=args.seed), **attacks}
    start = time.perf_counter()
    matrix = cross_evaluate(models, attacks, x, y, show_progress=True)
    print(f"evaluated in {time.perf_counter() - start:.0f} s on {n_test} test inputs\n")

    ref_clean = matrix.accuracy_of("reference", "clean")
    print(f"{'model':<15} {'clean':>7} {'drop':>6} " + " ".join(f"{c:>8}" for c in matrix.attacks))
    for row in matrix.models:
        clean = matrix.accuracy_of(row, "clean")
        cells = " ".join(f"{100 * matrix.accuracy_of(row, c):7.1f}%" for c in matrix.attacks)
        print(f"{row:<15} {100 * clean:6.1f}% {100 * (ref_clean - clean):5.1f} {cells}")
    print()
    for method, rec in records.items():
        print(
            f"{method}: trained {rec['epochs']} epochs in {rec['seconds']:.0f} s "
            f"(settings {rec['params']})"
        )
    target = f"pgd-{args.eval_steps}"
    for row in [m for m in models if m.startswith("pgd_training")] if not args.quick else []:
        robust = matrix.accuracy_of(row, target)
        drop = ref_clean - matrix.accuracy_of(row, "clean")
        print(
            f"\ntarget, {row}: PGD-{args.eval_steps} robust accuracy {100 * robust:.1f}% (>= 70%: "
            f"{'met' if robust >= 0.70 else 'NOT met'}), clean drop {100 * drop:.1f} points "
            f"(<= 3: {'met' if drop <= 0.03 else 'NOT met'})"
        )
    (out / "matrix.json").write_text(json.dumps(matrix.to_dict(), indent=2))
    return 0


def _trained(
    method: str,
    recipe: dict[str, Any],
    reference: TorchClassifier,
    dataset: Any,
    out: Path,
    retrain: bool,
    seed: int,
    *,
    save_as: str | None = None,
) -> tuple[TorchClassifier, dict[str, Any]]:
    name = save_as or method
    path, meta = out / f"{name}.pt", out / f"{name}.json"
    if path.exists() and meta.exists() and not retrain:
        print(f"{name}: reusing {path}", flush=True)
        return _load(path), json.loads(meta.read_text())
    defence = registry.create("robust_training", method, seed=seed, **recipe)
    assert isinstance(defence, RobustTraining)
    print(f"{name}: training {defence!r}", flush=True)
    trained = defence.fit(reference, dataset.x_train, dataset.y_train, show_progress=True)
    save_model(trained.model, path)
    record = {
        "method": name,
        "params": {k: v for k, v in trained.params.items()},
        "epochs": trained.history.epochs_run,
        "seconds": trained.seconds,
        "train_loss": list(trained.history.train_loss),
        "train_accuracy": list(trained.history.train_accuracy),
        "eps_schedule": list(trained.eps_schedule),
        "torch_threads": torch.get_num_threads(),
    }
    meta.write_text(json.dumps(record, indent=2))
    print(
        f"{name}: {trained.history.epochs_run} epochs in {trained.seconds:.0f} s; "
        f"final train loss {trained.history.train_loss[-1]:.3f}",
        flush=True,
    )
    return trained.model, record


def _load(path: Path) -> TorchClassifier:
    model = load_model(path)
    assert isinstance(model, TorchClassifier)
    return model


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    sys.exit(main())
