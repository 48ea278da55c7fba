"""Watermark benchmark: the numbers of issue 6 for every scheme on the two reference models.

For each model (the digits MLP and the mnist-5k CNN, both the audit's reference models)
and each registered scheme it measures:

- the clean test accuracy before and after embedding (target: drop <= 0.5 points);
- the chance probability of the watermarked model's match (target: < 1e-6) and the
  queries its verification took (frontier target: <= 100);
- the chance probability on ``--nulls`` models trained independently on the same data
  (target: every one > 0.01, no false claim), with the binomial null alone and with the
  key calibrated on ``--calibration`` other independent models;
- a robustness table: each removal attack run by an attacker holding a random half of
  the training data, with the watermark's verdict and the accuracy the attacker keeps.

Usage::

    .venv/bin/python benchmarks/watermark.py --quick          # digits MLP, minutes
    .venv/bin/python benchmarks/watermark.py --models mlp     # digits MLP, full
    .venv/bin/python benchmarks/watermark.py --models cnn     # mnist-5k CNN (slow on CPU)

Null models (trained with the shared loop, seeds 1..N; calibration seeds 101..):
digits MLP nulls are reference MLPs (20 epochs, early stopping); mnist-5k nulls are
MLPs on mnist-5k (fast; the trigger-set nulls do not depend on the suspect's
architecture), except for ``uchida``, whose nulls must have the CNN's layer: CNNs
trained one epoch on 1000 training images.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from advml import registry
from advml.audit.reference import reference_model
from advml.data import load_dataset
from advml.models import TorchClassifier, build_architecture, load_model, save_model, train
from advml.watermark import RemovalAttack, WatermarkScheme, calibrate, robustness_table, verify

torch.set_num_threads(1)
CACHE = Path(__file__).resolve().parent / ".cache" / "watermark"
warnings.filterwarnings("ignore", message="this frontier-stitching key is not calibrated")


def log(*args: Any) -> None:
    print(time.strftime("%H:%M:%S"), *args, flush=True)


def independent(
    ds: Any, arch: str, seed: int, *, epochs: int, subset: int | None = None
) -> TorchClassifier:
    """A model trained from its own seed on the same data, without any watermark.

    Cached under ``benchmarks/.cache/watermark`` (advml's own model files, no pickle).
    """
    path = CACHE / f"{ds.name}-{arch}-seed{seed}-e{epochs}-n{subset or 'all'}.pt"
    if path.exists():
        cached = load_model(path)
        assert isinstance(cached, TorchClassifier)
        return cached
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        module = build_architecture(arch, input_shape=ds.input_shape, n_classes=ds.n_classes)
    model = TorchClassifier(module, input_shape=ds.input_shape, n_classes=ds.n_classes)
    x, y = ds.x_train, ds.y_train
    if subset is not None:
        idx = np.random.default_rng(seed).permutation(x.shape[0])[:subset]
        x, y = x[idx], y[idx]
    train(model, x, y, epochs=epochs, patience=3, seed=seed, show_progress=False)
    model.reset_queries()
    CACHE.mkdir(parents=True, exist_ok=True)
    save_model(model, path)
    return model


def accuracy(model: Any, x: np.ndarray, y: np.ndarray) -> float:
    return float((np.asarray(model.predict(x)) == y).mean())


def attacks_for(scheme: str, model_key: str, quick: bool, layer: str | None) -> list[RemovalAttack]:
    def make(name: str, **settings: Any) -> RemovalAttack:
        attack = registry.create("watermark_removal", name, **settings)
        assert isinstance(attack, RemovalAttack)
        return attack

    if model_key == "cnn":
        out = [make("ftal", epochs=5), make("prune", rate=0.5)]
        if scheme == "uchida":
            out.insert(0, make("prune", rate=0.5, layers=[str(layer)]))
        if scheme == "adi":
            out += [make("rtal", epochs=5), make("distill", epochs=10)]
        return out
    out = [make("ftll"), make("ftal"), make("rtll"), make("rtal")]
    rates = (0.5, 0.9) if quick else (0.25, 0.5, 0.75, 0.9)
    out += [make("prune", rate=r) for r in rates]
    if scheme == "uchida":
        out += [make("prune", rate=r, layers=[str(layer)]) for r in (0.5, 0.65)]
    out += [make("fine_prune", rate=r) for r in ((0.5,) if quick else (0.5, 0.8))]
    out += [make("preprocess", kind="median"), make("preprocess", kind="noise")]
    if not quick:
        out += [make("preprocess", kind="squeeze")]
    out += [make("distill")]
    return out


def run_model(model_key: str, args: argparse.Namespace) -> dict[str, Any]:
    dataset = "digits" if model_key == "mlp" else "mnist-5k"
    ds = load_dataset(dataset)
    owner, info = reference_model(ds, architecture=model_key, show_progress=False)
    owner.reset_queries()
    base_acc = accuracy(owner, ds.x_test, ds.y_test)
    log(f"{model_key} on {dataset}: owner model {info['file']} accuracy {base_acc:.4f}")
    null_arch, null_epochs = "mlp", (20 if model_key == "mlp" else 10)
    t = time.perf_counter()
    nulls = [independent(ds, null_arch, s, epochs=null_epochs) for s in range(1, args.nulls + 1)]
    refs = [
        independent(ds, null_arch, 100 + s, epochs=null_epochs)
        for s in range(1, args.calibration + 1)
    ]
    log(
        f"{len(nulls)} null + {len(refs)} calibration {null_arch}s in "
        f"{time.perf_counter() - t:.0f}s; null accuracies "
        f"{[round(accuracy(m, ds.x_test, ds.y_test), 3) for m in nulls]}"
    )
    cnn_nulls: list[TorchClassifier] = []
    rng = np.random.default_rng(0)
    half = rng.permutation(ds.x_train.shape[0])[: ds.x_train.shape[0] // 2]
    x_att, y_att = ds.x_train[half], ds.y_train[half]
    results: dict[str, Any] = {"model": model_key, "dataset": dataset, "base_accuracy": base_acc}
    for name in args.schemes:
        settings: dict[str, Any] = {}
        if model_key == "cnn":
            settings["epochs"] = args.cnn_epochs
        scheme = registry.create("watermark", name, **settings)
        assert isinstance(scheme, WatermarkScheme)
        t = time.perf_counter()
        marked = scheme.embed(owner, ds.x_train, ds.y_train, key=f"benchmark-{name}")
        seconds = time.perf_counter() - t
        key = marked.key
        scheme_nulls, scheme_refs = nulls, refs
        if name == "uchida" and model_key == "cnn":
            if not cnn_nulls:
                cnn_nulls = [
                    independent(ds, "cnn", s, epochs=1, subset=1000)
                    for s in range(1, args.nulls + 1)
                ]
            scheme_nulls, scheme_refs = cnn_nulls, cnn_nulls[: args.calibration]
        calibrated = calibrate(key, scheme_refs) if name != "uchida" or model_key != "cnn" else None
        acc = accuracy(marked.model, ds.x_test, ds.y_test)
        own = verify(marked.model, key)
        own_cal = verify(marked.model, calibrated) if calibrated is not None else None
        null_bin = [verify(m, key) for m in scheme_nulls]
        null_cal = [verify(m, calibrated) for m in scheme_nulls] if calibrated else []
        row = {
            "scheme": name,
            "settings": scheme.get_params(),
            "embed_seconds": round(seconds, 1),
            "accuracy_before": base_acc,
            "accuracy_after": acc,
            "drop_points": round(100 * (base_acc - acc), 2),
            "matches": own.matches,
            "n": own.n,
            "chance": own.chance_probability,
            "chance_calibrated": None if own_cal is None else own_cal.chance_probability,
            "queries": own.queries,
            "null_match_rates": [round(v.match_rate, 3) for v in null_bin],
            "null_min_chance_binomial": min(v.chance_probability for v in null_bin),
            "null_false_claims_binomial": sum(v.chance_probability <= 0.01 for v in null_bin),
            "null_min_chance_calibrated": (
                min(v.chance_probability for v in null_cal) if null_cal else None
            ),
            "null_false_claims_calibrated": (
                sum(v.chance_probability <= 0.01 for v in null_cal) if null_cal else None
            ),
        }
        log(
            f"{model_key} {name}: acc {base_acc:.4f} -> {acc:.4f} (drop {row['drop_points']} pts), "
            f"match {own.matches}/{own.n}, chance {own.chance_probability:.2e} "
            f"(calibrated {row['chance_calibrated']}), queries {own.queries}, "
            f"embed {seconds:.0f}s"
        )
        log(
            f"   nulls: match rates {row['null_match_rates']}; min chance binomial "
            f"{row['null_min_chance_binomial']:.3g} ({row['null_false_claims_binomial']} false "
            f"claims), calibrated {row['null_min_chance_calibrated']} "
            f"({row['null_false_claims_calibrated']} false claims)"
        )
        if not args.no_removal:
            layer = key.meta.get("layer")
            attacks = attacks_for(name, model_key, args.quick, layer)
            table = robustness_table(
                marked.model,
                calibrated or key,
                attacks,
                x_att,
                y_att,
                ds.x_test,
                ds.y_test,
            )
            row["robustness"] = table.summary()
            log("\n" + table.to_text())
        results[name] = row
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="digits MLP, 3 nulls, fewer attacks")
    parser.add_argument("--models", nargs="+", choices=("mlp", "cnn"), default=None)
    parser.add_argument("--schemes", nargs="+", default=None)
    parser.add_argument("--nulls", type=int, default=None)
    parser.add_argument("--calibration", type=int, default=None)
    parser.add_argument("--cnn-epochs", type=int, default=3, help="embedding epochs on the CNN")
    parser.add_argument("--no-removal", action="store_true", help="skip the robustness tables")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    args.models = args.models or (["mlp"] if args.quick else ["mlp", "cnn"])
    args.schemes = args.schemes or registry.available("watermark")
    args.nulls = args.nulls or (3 if args.quick else 10)
    args.calibration = args.calibration or (3 if args.quick else 5)
    out = {key: run_model(key, args) for key in args.models}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
