"""The ``advml`` command: a thin layer over the Python API.

advml audit                       # audit a reference CNN on mnist-5k, write a report
advml audit --quick               # the one-minute version on digits
advml attack --attack pgd --eps 0.3 --out adv.npz
advml train --dataset digits --out digits-mlp.pt
advml datasets
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from advml import __version__
from advml.errors import AdvmlError

__all__ = ["main"]


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers separated by commas, got {text!r}"
        ) from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _setting(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), yaml.safe_load(value)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="advml",
        description="How secure is this model? Attack it, defend it, measure both, report.",
        epilog="Run 'advml COMMAND --help' for each command's options.",
    )
    p.add_argument("--version", action="version", version=f"advml {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def model_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--dataset", default=None, help="dataset name (see 'advml datasets'); default mnist-5k"
        )
        sp.add_argument(
            "--model",
            metavar="FILE",
            help="model file (.pt written by advml, .skops); default: a reference model "
            "trained on the dataset (cached under $ADVML_HOME/models)",
        )
        sp.add_argument(
            "--trust-model-file",
            action="store_true",
            help="allow pickle/joblib model files; they can run code when loaded, so only "
            "for files you made yourself",
        )
        sp.add_argument("--seed", type=int, default=0, help="seed of data subset, model, attacks")
        sp.add_argument("--quiet", action="store_true", help="no progress bars")

    a = sub.add_parser(
        "audit",
        help="run the applicable attacks against a model and write a report",
        description="Run every applicable attack against a model over a range of ε and write "
        "report.json, report.html and a terminal summary. With no options it audits a "
        "reference CNN on the embedded mnist-5k dataset, offline. Finished steps are cached in "
        "OUT/steps, so an interrupted audit resumes where it stopped.",
    )
    model_args(a)
    a.add_argument("--out", default="advml-audit", help="output folder (default: advml-audit)")
    a.add_argument("--quick", action="store_true", help="a one-minute audit on digits (MLP)")
    a.add_argument("--n-samples", type=int, help="test inputs to attack (default 500; quick 200)")
    a.add_argument("--attacks", type=_names, help="comma-separated attacks (default fgsm,pgd)")
    a.add_argument("--eps", type=_floats, help="comma-separated ε values (L∞)")
    a.add_argument("--architecture", choices=("cnn", "mlp"), help="reference architecture")
    a.add_argument("--json", action="store_true", help="print report.json to stdout instead")

    t = sub.add_parser(
        "attack",
        help="craft adversarial examples and save them to .npz",
        description="Run one evasion attack on test inputs of a dataset and save x, x_adv, y, "
        "y_adv and success to an .npz file; print the numbers.",
    )
    model_args(t)
    t.add_argument("--attack", default="pgd", help="attack name: fgsm, bim, pgd (default pgd)")
    t.add_argument("--eps", type=float, help="perturbation size (attack's default if omitted)")
    t.add_argument(
        "--set",
        dest="settings",
        action="append",
        type=_setting,
        default=[],
        metavar="KEY=VALUE",
        help="any other attack setting, e.g. --set steps=100 --set norm=2 (repeatable)",
    )
    t.add_argument("--target", type=int, help="targeted attack towards this class")
    t.add_argument("--n-samples", type=int, default=100, help="test inputs to attack (default 100)")
    t.add_argument("--out", default="adversarial.npz", help="output .npz (default adversarial.npz)")

    tr = sub.add_parser(
        "train",
        help="train a reference model on a dataset and save it",
        description="Train a reference network (the same recipe the audit uses) and save it "
        "as a .pt file that loads safely (torch weights_only).",
    )
    tr.add_argument("--dataset", default="mnist-5k")
    tr.add_argument("--architecture", choices=("cnn", "mlp"))
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--out", required=True, help="where to write the model (.pt)")
    tr.add_argument("--quiet", action="store_true")

    sub.add_parser(
        "datasets", help="list the datasets", description="List the datasets advml knows."
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``advml`` console script; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    if getattr(args, "quiet", False):
        os.environ["ADVML_QUIET"] = "1"
    try:
        handler = {"audit": _audit, "attack": _attack, "train": _train, "datasets": _datasets}
        return handler[args.command](args)
    except (AdvmlError, ValueError, TypeError, FileNotFoundError) as err:
        print(f"advml {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished steps are kept and a rerun resumes", file=sys.stderr)
        return 130


def _audit(args: argparse.Namespace) -> int:
    from advml.audit import AuditConfig, run_audit
    from advml.report import format_summary

    overrides: dict[str, Any] = {"seed": args.seed}
    for key in ("dataset", "model", "n_samples", "attacks", "eps", "architecture"):
        value = getattr(args, key)
        if value is not None:
            overrides[key] = value
    if args.model is not None:
        overrides["trust_model_file"] = args.trust_model_file
    config = AuditConfig.quick(**overrides) if args.quick else AuditConfig(**overrides)
    result = run_audit(config, out=args.out, show_progress=not args.quiet and not args.json)
    if args.json:
        print(json.dumps(result.report, indent=2))
    else:
        print(format_summary(result.report))
        print(f"\nreport: {Path(args.out) / 'report.html'} and {Path(args.out) / 'report.json'}")
    return 0


def _load(args: argparse.Namespace) -> tuple[Any, Any]:
    from advml.audit.reference import reference_model
    from advml.data import load_dataset
    from advml.models.io import load_model

    ds = load_dataset(args.dataset or "mnist-5k")
    if args.model:
        model = load_model(args.model, trust=args.trust_model_file)
    else:
        model, _ = reference_model(ds, seed=args.seed, show_progress=not args.quiet)
    return ds, model


def _attack(args: argparse.Namespace) -> int:
    from advml import registry
    from advml.metrics import accuracy

    settings = dict(args.settings)
    if args.eps is not None:
        settings["eps"] = args.eps
    if args.target is not None:
        settings["targeted"] = True
    if "seed" in registry.schema("evasion", args.attack) and "seed" not in settings:
        settings["seed"] = args.seed
    attack = registry.create("evasion", args.attack, **settings)
    ds, model = _load(args)
    sub = ds.subset(n_test=min(args.n_samples, ds.x_test.shape[0]), seed=args.seed)
    x, y = sub.x_test, sub.y_test
    if args.target is not None:
        target = np.full_like(y, args.target)
        result = attack.generate(model, x, target)  # type: ignore[attr-defined]
    else:
        result = attack.generate(model, x, y)  # type: ignore[attr-defined]
    x_adv = np.asarray(result.x_adv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        x=x,
        x_adv=x_adv,
        y=y,
        y_adv=result.y_adv,
        success=result.success,
        queries=result.queries,
    )
    s = result.summary()
    print(f"{attack!r} on {ds.name}, {len(y)} test inputs")
    print(f"  clean accuracy        {accuracy(model, x, y):.1%}")
    print(f"  accuracy under attack {float((result.y_adv == y).mean()):.1%}")
    print(f"  success rate          {s['success_rate']:.1%}")
    print(f"  median L2 / L∞        {s['median_l2']:.3f} / {s['median_linf']:.3f} (successes)")
    print(f"  time                  {s['seconds']:.2f} s")
    print(f"saved x, x_adv, y, y_adv, success, queries to {out}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from advml.audit.reference import reference_model
    from advml.data import load_dataset
    from advml.metrics import accuracy
    from advml.models.io import save_model

    ds = load_dataset(args.dataset)
    model, info = reference_model(
        ds, architecture=args.architecture, seed=args.seed, show_progress=not args.quiet
    )
    path = save_model(model, args.out)
    acc = accuracy(model, ds.x_test, ds.y_test)
    print(f"{info['architecture']} on {ds.name}: test accuracy {acc:.1%}; saved to {path}")
    return 0


def _datasets(args: argparse.Namespace) -> int:
    from advml.data import list_datasets

    print(f"{'name':<15}{'input shape':<14}{'classes':<9}{'where':<13}description")
    for info in list_datasets():
        where = "embedded" if info.embedded else "download"
        shape = "x".join(map(str, info.input_shape))
        print(f"{info.name:<15}{shape:<14}{info.n_classes:<9}{where:<13}{info.description}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
