"""Backdoor benchmark: the numbers of issue 4 on the digits and mnist-5k reference models.

For each model (``digits-mlp``: the audit's digits reference MLP; ``digits-cnn``: the
reference CNN on digits; ``mnist-cnn``: the audit's mnist-5k reference CNN), all trained
with the reference recipe (:data:`advml.models.reference.TRAINING`, seed 0), it measures:

- BadNets, 3x3 checkerboard pattern in the bottom-right corner, all-to-one (label 0),
  10% of the training samples: clean accuracy of the backdoored and of the clean model
  (targets: attack success >= 99%, clean drop <= 1 point), and the same for ART's
  ``PoisoningAttackBackdoor`` with its ``add_pattern_bd`` trigger at 10% and 1%;
- attack success at smaller poisoning fractions (``--fractions``): the smallest reaching 90%;
- pruning (curve and crossing) and fine-pruning (target: attack success <= 5%, clean drop
  <= 2 points), both with the defender's clean validation half of the test split;
- activation clustering F1 on the poisoned samples of the target class (target >= 0.9);
- spectral signatures: removal of 1.5x the expected poison count and retraining;
- Neural Cleanse on the backdoored and the clean model (target: index > 2 with the right
  target on the backdoored model only);
- STRIP at 1% false rejection on triggered test inputs (target: >= 90% detected);
- transfer: attack success after the victim fine-tunes the last layer / the whole net on
  its own clean data (the validation half, 10 epochs).

The test split is halved: the first half is the defender's clean validation data (used by
the defences), the second half the evaluation data (never seen by a defence). Models are
cached under ``benchmarks/.cache/backdoor``; results go to stdout as JSON lines and to
``benchmarks/.cache/backdoor/results-<model>.json``.

Usage::

    .venv/bin/python benchmarks/backdoor.py --models digits-mlp,digits-cnn
    .venv/bin/python benchmarks/backdoor.py --models mnist-cnn --fractions 0.01,0.03
    .venv/bin/python benchmarks/backdoor.py --models mnist-cnn --parts fine_pruning \
        --fp-seeds 0,1,2,3,4,5,6,7 --fp-shift 1
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from advml.data import load_dataset
from advml.defences.backdoor import (
    STRIP,
    ActivationClustering,
    FinePruning,
    NeuralCleanse,
    Pruning,
    SpectralSignatures,
)
from advml.metrics import backdoor_success_rate
from advml.models import TorchClassifier, load_model, save_model
from advml.models.reference import train_reference
from advml.poisoning import BadNets, PatternTrigger, evaluate_backdoor, transfer_backdoor

torch.set_num_threads(1)
CACHE = Path(__file__).resolve().parent / ".cache" / "backdoor"
MODELS = {
    "digits-mlp": ("digits", "mlp"),
    "digits-cnn": ("digits", "cnn"),
    "mnist-cnn": ("mnist-5k", "cnn"),
}
TARGET = 0


def log(*args: Any) -> None:
    print(time.strftime("%H:%M:%S"), *args, flush=True)


def trained(key: str, name: str, dataset: Any, arch: str, x: np.ndarray, y: np.ndarray) -> Any:
    path = CACHE / f"{key}-{name}.pt"
    if path.exists():
        return load_model(path)
    start = time.perf_counter()
    model = train_reference(dataset, x, y, architecture=arch, seed=0, show_progress=False)
    log(f"{key}: trained {name} in {time.perf_counter() - start:.0f} s")
    CACHE.mkdir(parents=True, exist_ok=True)
    save_model(model, path)
    return model


def art_poison(
    x: np.ndarray, y: np.ndarray, fraction: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """ART's PoisoningAttackBackdoor with add_pattern_bd on ``fraction`` of the samples."""
    from art.attacks.poisoning import PoisoningAttackBackdoor
    from art.attacks.poisoning.perturbations import add_pattern_bd

    attack = PoisoningAttackBackdoor(lambda a: add_pattern_bd(a, pixel_value=1.0))
    pool = np.flatnonzero(y != TARGET)
    idx = np.random.default_rng(seed).choice(pool, size=round(fraction * len(y)), replace=False)
    xp, yp = x.copy(), y.copy()
    target = np.zeros((idx.size, 10))
    target[:, TARGET] = 1
    poisoned, _ = attack.poison(x[idx][:, 0], y=target)  # ART wants (N, H, W) here
    xp[idx, 0] = poisoned
    yp[idx] = TARGET
    return xp, yp


def art_success(model: TorchClassifier, x: np.ndarray, y: np.ndarray) -> float:
    from art.attacks.poisoning.perturbations import add_pattern_bd

    xt = x.copy()
    xt[:, 0] = add_pattern_bd(x[:, 0], pixel_value=1.0)
    pred = np.asarray(model.predict(xt))
    return backdoor_success_rate(y, np.full_like(y, TARGET), pred)


PARTS = (
    "art",
    "pruning",
    "fine_pruning",
    "clustering",
    "spectral",
    "strip",
    "neural_cleanse",
    "transfer",
    "fractions",
)


def run(
    key: str,
    fractions: list[float],
    steps: int,
    parts: set[str],
    fp_seeds: list[int],
    fp_shift: int = 0,
) -> dict[str, Any]:
    ds_name, arch = MODELS[key]
    ds = load_dataset(ds_name)
    half = len(ds.x_test) // 2
    x_val, y_val = ds.x_test[:half], ds.y_test[:half]
    x_ev, y_ev = ds.x_test[half:], ds.y_test[half:]
    # A run of some parts updates the saved results of the others' earlier runs.
    saved = CACHE / f"results-{key}.json"
    out: dict[str, Any] = json.loads(saved.read_text()) if saved.exists() else {}
    out.update({"model": key, "sizes": {"train": len(ds.x_train), "val": half, "eval": len(x_ev)}})

    def save() -> None:
        CACHE.mkdir(parents=True, exist_ok=True)
        (CACHE / f"results-{key}.json").write_text(json.dumps(out, indent=1, default=float))

    trigger = PatternTrigger(size=3, corner="bottom-right", margin=1)
    poisoned = BadNets(trigger=trigger, fraction=0.1, target=TARGET).poison(
        ds.x_train, ds.y_train, n_classes=ds.n_classes
    )
    clean = trained(key, "clean", ds, arch, ds.x_train, ds.y_train)
    bd = trained(key, "badnets-0.1", ds, arch, poisoned.x, poisoned.y)
    ev_clean = evaluate_backdoor(clean, poisoned, x_ev, y_ev)
    ev = evaluate_backdoor(bd, poisoned, x_ev, y_ev)
    out["badnets_0.1"] = {
        "clean_model_accuracy": ev_clean.clean_accuracy,
        "clean_model_attack_success": ev_clean.attack_success,
        "clean_accuracy": ev.clean_accuracy,
        "attack_success": ev.attack_success,
        "clean_drop": ev_clean.clean_accuracy - ev.clean_accuracy,
    }
    log(key, "badnets", out["badnets_0.1"])
    save()

    for frac in (0.1, 0.01) if "art" in parts else ():
        xa, ya = art_poison(ds.x_train, ds.y_train, frac)
        art_model = trained(key, f"art-{frac}", ds, arch, xa, ya)
        out[f"art_{frac}"] = {
            "clean_accuracy": float((np.asarray(art_model.predict(x_ev)) == y_ev).mean()),
            "attack_success": art_success(art_model, x_ev, y_ev),
        }
        log(key, "art", frac, out[f"art_{frac}"])
        save()

    if "pruning" in parts:
        prune_part(key, bd, poisoned, x_val, y_val, x_ev, y_ev, out)
        save()
    for seed in fp_seeds if "fine_pruning" in parts else ():
        start = time.perf_counter()
        fp = FinePruning(seed=seed, shift=fp_shift).repair(bd, x_val, y_val)
        fev = evaluate_backdoor(fp.model, poisoned, x_ev, y_ev)
        row = {
            **fp.summary(),
            "seed": seed,
            "shift": fp_shift,
            "clean_accuracy": fev.clean_accuracy,
            "attack_success": fev.attack_success,
            "clean_drop": ev.clean_accuracy - fev.clean_accuracy,
            "lr_search": [dict(r) for r in fp.lr_search],
            "seconds": time.perf_counter() - start,
        }
        name = "fine_pruning" + (f"_shift{fp_shift}" if fp_shift else "")
        out[name if seed == fp_seeds[0] else f"{name}_seed{seed}"] = row
        log(key, "fine-pruning", row)
        save()
    if "clustering" in parts:
        clustering_part(key, bd, poisoned, out)
        save()
    if "spectral" in parts:
        spectral_part(key, ds, arch, bd, poisoned, x_ev, y_ev, out)
        save()
    if "strip" in parts:
        strip = STRIP(frr=0.01).fit(bd, x_val)
        eligible = y_ev != TARGET
        trig = np.asarray(poisoned.apply_trigger(x_ev[eligible]))
        out["strip"] = {
            "threshold": strip.threshold,
            "detection_rate": strip.detect(trig).detection_rate,
            "false_rejection_eval": strip.detect(x_ev).detection_rate,
        }
        log(key, "strip", out["strip"])
        save()

    for name, model in (("backdoored", bd), ("clean", clean)) if "neural_cleanse" in parts else ():
        start = time.perf_counter()
        nc = NeuralCleanse(steps=steps).inspect(model, x_val)
        out[f"neural_cleanse_{name}"] = {**nc.summary(), "seconds": time.perf_counter() - start}
        log(key, "neural cleanse", name, out[f"neural_cleanse_{name}"])
        save()

    for layers in ("last", "all") if "transfer" in parts else ():
        tr = transfer_backdoor(bd, poisoned, x_val, y_val, x_ev, y_ev, layers=layers, epochs=10)
        out[f"transfer_{layers}"] = tr.summary()
        log(key, "transfer", layers, tr.summary())
        save()

    if "fractions" in parts:
        sweep = {}
        for frac in fractions:
            p = BadNets(trigger=trigger, fraction=frac, target=TARGET).poison(
                ds.x_train, ds.y_train, n_classes=ds.n_classes
            )
            m = trained(key, f"badnets-{frac}", ds, arch, p.x, p.y)
            sweep[frac] = evaluate_backdoor(m, p, x_ev, y_ev).attack_success
            log(key, "fraction", frac, sweep[frac])
            out["fraction_sweep"] = {**sweep, 0.1: ev.attack_success}
            save()
        reached = sorted(f for f, s in out["fraction_sweep"].items() if s >= 0.9)
        out["smallest_fraction_90"] = reached[0] if reached else None
        save()
    return out


def prune_part(
    key: str,
    bd: TorchClassifier,
    poisoned: Any,
    x_val: np.ndarray,
    y_val: np.ndarray,
    x_ev: np.ndarray,
    y_ev: np.ndarray,
    out: dict[str, Any],
) -> None:
    start = time.perf_counter()
    pruning = Pruning().repair(bd, x_val, y_val)
    curve = pruning.curve(
        x_ev, y_ev, np.asarray(poisoned.apply_trigger(x_ev)), poisoned.backdoor_labels(y_ev)
    )
    pruned = evaluate_backdoor(pruning.model, poisoned, x_ev, y_ev)
    out["pruning"] = {
        **pruning.summary(),
        "clean_accuracy": pruned.clean_accuracy,
        "attack_success": pruned.attack_success,
        "crossing_0.05": curve.crossing(0.05),
        "clean_accuracy_at_crossing": (
            None
            if curve.crossing(0.05) is None
            else float(curve.clean_accuracy[np.flatnonzero(curve.attack_success <= 0.05)[0]])
        ),
        "curve": curve.to_dict(),
        "seconds": time.perf_counter() - start,
    }
    log(key, "pruning", {k: v for k, v in out["pruning"].items() if k != "curve"})


def clustering_part(key: str, bd: TorchClassifier, poisoned: Any, out: dict[str, Any]) -> None:
    start = time.perf_counter()
    ac = ActivationClustering().detect(bd, poisoned.x, poisoned.y)
    out["activation_clustering"] = {
        **ac.summary(),
        "target_class": ac.score(poisoned.indices, within_class=TARGET),
        "all": ac.score(poisoned.indices),
        "seconds": time.perf_counter() - start,
    }
    log(key, "activation clustering", out["activation_clustering"])


def spectral_part(
    key: str,
    ds: Any,
    arch: str,
    bd: TorchClassifier,
    poisoned: Any,
    x_ev: np.ndarray,
    y_ev: np.ndarray,
    out: dict[str, Any],
) -> None:
    ss = SpectralSignatures().detect(bd, poisoned.x, poisoned.y)
    keep = ~ss.flagged
    retrained = trained(key, "spectral-retrained", ds, arch, poisoned.x[keep], poisoned.y[keep])
    rev = evaluate_backdoor(retrained, poisoned, x_ev, y_ev)
    out["spectral_signatures"] = {
        **ss.summary(),
        "removed_poison": int(ss.flagged[poisoned.indices].sum()),
        "n_poison": poisoned.n_poisoned,
        "target_class": ss.score(poisoned.indices, within_class=TARGET),
        "retrained_clean_accuracy": rev.clean_accuracy,
        "retrained_attack_success": rev.attack_success,
    }
    log(key, "spectral", out["spectral_signatures"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="digits-mlp,digits-cnn")
    parser.add_argument("--fractions", default="0.005,0.01,0.02,0.05")
    parser.add_argument("--nc-steps", type=int, default=300, help="Neural Cleanse steps")
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"what to measure besides BadNets itself (default all: {','.join(PARTS)}); "
        "a run of some parts keeps the saved results of the others",
    )
    parser.add_argument(
        "--fp-seeds",
        default="0",
        help="fine-tuning seeds of fine-pruning (default 0; the first is the main row)",
    )
    parser.add_argument(
        "--fp-shift",
        type=int,
        default=0,
        help="fine-pruning's random image shift in pixels (default 0, its default)",
    )
    args = parser.parse_args()
    fractions = [float(f) for f in args.fractions.split(",") if f]
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if parts - set(PARTS):
        parser.error(f"--parts: unknown {sorted(parts - set(PARTS))}; choose from {PARTS}")
    fp_seeds = [int(s) for s in args.fp_seeds.split(",") if s.strip()]
    for key in args.models.split(","):
        result = run(key, fractions, args.nc_steps, parts, fp_seeds, args.fp_shift)
        print(json.dumps({k: v for k, v in result.items() if k != "pruning"}, default=float))


if __name__ == "__main__":
    main()
