"""Backdoor defences on networks defined outside advml (issue 11 §2, items 1-3).

A conv-BatchNorm-ReLU CNN and a GELU MLP on the 8x8 digits, BadNets 10% with a 2x2
corner patch to label 0, seeds 0-3. Prints, per seed: activation clustering's F1 over
the whole training set, fine-pruning's chosen rate, its search (held-out clean accuracy
per rate), attack success, clean drop against the backdoored model and seconds, and on
the CNN the BatchNorm pruning check (pruned channels exactly 0 after the block).

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/backdoor_user_models.py
    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/backdoor_user_models.py \
        --archs mlp --parts fine_pruning --seeds 2
    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/backdoor_user_models.py \
        --archs mlp --parts clustering_checks [--source 3 --fraction 0.5]

``clustering_checks`` measures, for every class whose split passes the absolute tests,
Chen et al.'s exclusionary reclassification (a fresh copy trained 5 epochs without the
suspect cluster: how often the cluster keeps its label, against the most common other
label) and the suspect cluster's spread (total variance over the rest of the class's).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from advml.defences.backdoor import ActivationClustering, FinePruning, Pruning
from advml.defences.backdoor.activation_clustering import clustering_layer
from advml.defences.backdoor.base import features
from advml.metrics import backdoor_success_rate
from advml.models import TorchClassifier, train
from advml.poisoning import BadNets, PatternTrigger, PoisonedData

# The user architectures the backdoor tests use (tests/_user_models.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _user_models import bn_cnn, gelu_mlp

TRIGGER = PatternTrigger(size=2, margin=0, shape="square")


def _net(arch: str) -> nn.Module:
    return bn_cnn() if arch == "cnn" else gelu_mlp()


def _measure(model: TorchClassifier, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    with model.evaluating():
        acc = float((np.asarray(model.predict(x)) == y).mean())
        pred = np.asarray(model.predict(TRIGGER.apply(x)))
    return acc, backdoor_success_rate(y, np.zeros_like(y), pred)


def _clustering_checks(arch: str, seed: int, model: TorchClassifier, data: PoisonedData) -> None:
    """Exclusionary reclassification and spread of every candidate class's suspect cluster."""
    loose = ActivationClustering(min_relative_spread=0.0).detect(model, data.x, data.y)
    acts = features(model, data.x, clustering_layer(model))
    for info in loose.per_class:
        if not info["poisoned"]:
            continue
        c, members = int(info["class"]), info["members"]
        suspect = members[loose.flagged[members]]
        rest = np.setdiff1d(members, suspect)
        keep = np.ones(len(data.y), dtype=bool)
        keep[suspect] = False
        fresh = model.clone()
        for module in fresh.module.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        train(fresh, data.x[keep], data.y[keep], epochs=5, seed=seed, patience=None,
              val_fraction=0.0, show_progress=False)  # fmt: skip
        with fresh.evaluating():
            counts = np.bincount(np.asarray(fresh.predict(data.x[suspect])), minlength=10)
        own, other = int(counts[c]), int(np.delete(counts, c).max())
        spread = float(acts[suspect].var(axis=0).sum() / acts[rest].var(axis=0).sum())
        poison = int(np.isin(suspect, data.indices).sum())
        print(
            f"  {arch} seed {seed} class {c}: cluster {suspect.size} ({poison} poisoned), "
            f"relative spread {info['relative_spread']:.1f} at {info['layer']}, "
            f"reclassified as own label {own} / most common other {other} = "
            f"{own / max(other, 1):.2f}, "
            f"spread {spread:.2f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4, help="seeds 0..N-1 (default 4)")
    parser.add_argument("--archs", default="cnn,mlp", help="cnn, mlp or both (default)")
    parser.add_argument("--source", type=int, default=None, help="BadNets source class")
    parser.add_argument("--fraction", type=float, default=0.1, help="BadNets fraction")
    parser.add_argument(
        "--parts",
        default="clustering,pruning,fine_pruning",
        help="what to measure (default clustering,pruning,fine_pruning; also clustering_checks)",
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    torch.set_num_threads(1)
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
    half = len(x_te) // 2
    x_val, y_val, x_ev, y_ev = x_te[:half], y_te[:half], x_te[half:], y_te[half:]
    for arch in args.archs.split(","):
        for seed in range(args.seeds):
            data = BadNets(
                trigger=TRIGGER, fraction=args.fraction, target=0, source=args.source, seed=seed
            ).poison(x_tr, y_tr, n_classes=10)
            torch.manual_seed(seed)
            model = TorchClassifier(_net(arch), input_shape=(1, 8, 8), n_classes=10)
            train(model, data.x, data.y, epochs=15, seed=seed, patience=None,
                  val_fraction=0.0, show_progress=False)  # fmt: skip
            acc0, asr0 = _measure(model, x_ev, y_ev)
            line = f"{arch} seed {seed}: clean {acc0:.3f} attack {asr0:.3f}"
            if "clustering" in parts:
                ac = ActivationClustering().detect(model, data.x, data.y)
                line += (
                    f" | AC F1 {ac.score(data.indices)['f1']:.3f} "
                    f"classes {list(ac.flagged_classes)}"
                )
            if "pruning" in parts and arch == "cnn":
                pr = Pruning().repair(model, x_val, y_val)
                with pr.model.evaluating():
                    acts = np.asarray(pr.model.activations(x_ev, pr.layer))
                cut = pr.order[: pr.n_pruned]
                line += f" | pruned {pr.n_pruned}/{pr.order.size} at {pr.layer}, "
                line += f"max |pruned output| {float(np.abs(acts[:, cut]).max(initial=0)):.1f}"
            if "fine_pruning" in parts:
                start = time.perf_counter()
                r = FinePruning().repair(model, x_val, y_val)
                seconds = time.perf_counter() - start
                acc, asr = _measure(r.model, x_ev, y_ev)
                search = " ".join(
                    f"{row['lr']:g}:{row['accuracy']:.3f}"
                    + ("" if row["held_out"] == len(y_val) else "(cut)")
                    for row in r.lr_search
                )
                line += (
                    f" | FP lr {r.lr:g} ({search}; reference {r.lr_search[0]['reference']:.3f})"
                    f", {r.epochs} ep: attack {asr:.3f}"
                    f"{' REPAIR FAILED' if asr > 0.2 else ''}, clean drop "
                    f"{100 * (acc0 - acc):.1f} pt, {seconds:.1f} s"
                )
            print(line, flush=True)
            if "clustering_checks" in parts:
                _clustering_checks(arch, seed, model, data)


if __name__ == "__main__":
    main()
