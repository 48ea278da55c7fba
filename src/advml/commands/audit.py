"""``advml audit``, ``advml train`` and ``advml datasets``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from advml.commands import Handler
from advml.commands._common import add_model_args, floats, names

__all__ = ["add_commands"]


def add_commands(sub: Any) -> dict[str, Handler]:
    a = sub.add_parser(
        "audit",
        help="run the applicable attacks and defences against a model and write a report",
        description="Run every applicable check against a model (evasion over a range of ε, "
        "and each other family's section that the model allows) and write report.json, "
        "report.html and a terminal summary. With no options it audits a reference CNN on "
        "the embedded mnist-5k dataset, offline. Finished steps are cached in OUT/steps, so "
        "an interrupted audit resumes where it stopped.",
    )
    add_model_args(a)
    a.add_argument("--out", default="advml-audit", help="output folder (default: advml-audit)")
    a.add_argument("--quick", action="store_true", help="a one-minute audit on digits (MLP)")
    a.add_argument("--n-samples", type=int, help="test inputs to attack (default 500; quick 200)")
    a.add_argument("--attacks", type=names, help="comma-separated attacks (default fgsm,pgd)")
    a.add_argument("--eps", type=floats, help="comma-separated ε values (L∞)")
    a.add_argument(
        "--sections",
        type=names,
        help="comma-separated report sections to run (default: every applicable one; "
        "see 'advml audit --list-sections')",
    )
    a.add_argument(
        "--list-sections", action="store_true", help="list the audit's sections and exit"
    )
    a.add_argument("--architecture", choices=("cnn", "mlp"), help="reference architecture")
    a.add_argument("--json", action="store_true", help="print report.json to stdout instead")

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
    return {"audit": _audit, "train": _train, "datasets": _datasets}


def _audit(args: argparse.Namespace) -> int:
    from advml.audit import AuditConfig, run_audit
    from advml.audit.sections import available_sections
    from advml.report import format_summary

    if args.list_sections:
        for name, cls in available_sections().items():
            print(f"{name:<18}{cls.threat:<17}{cls.title}")
        return 0
    overrides: dict[str, Any] = {"seed": args.seed}
    for key in ("dataset", "model", "n_samples", "attacks", "eps", "architecture", "sections"):
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
