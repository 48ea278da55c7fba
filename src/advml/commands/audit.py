"""``advml audit``, ``advml train`` and ``advml datasets``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from advml.commands import Handler
from advml.commands._common import (
    add_data_args,
    add_executor_args,
    add_model_args,
    add_target_args,
    announce,
    floats,
    names,
    output_file,
    output_folder,
    setting,
)

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
    a.set_defaults(seed=None)  # None: the config file's seed (or 0)
    a.add_argument(
        "--config",
        metavar="FILE",
        help="threat-model config (YAML): model, data, adversary, evasion, sections, "
        "thresholds; options given on the command line override it (see --print-config)",
    )
    a.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective config as YAML and exit; save it to repeat a run exactly",
    )
    a.add_argument(
        "--access",
        choices=("white-box", "scores", "labels"),
        help="what the adversary sees: the model itself (default), a prediction API with "
        "scores, or one with labels only",
    )
    a.add_argument(
        "--fail-under",
        action="append",
        type=threshold,
        default=[],
        metavar="FIGURE=VALUE",
        help="exit with code 3 when FIGURE is below VALUE, e.g. robust_accuracy=0.5 or "
        "evasion.robust_accuracy=0.5 (repeatable); for CI pipelines",
    )
    a.add_argument(
        "--fail-over",
        action="append",
        type=threshold,
        default=[],
        metavar="FIGURE=VALUE",
        help="exit with code 3 when FIGURE is above VALUE, e.g. an attack's success rate "
        "or a membership AUC (repeatable)",
    )
    add_target_args(a)
    a.add_argument(
        "--save-examples",
        action="store_true",
        default=None,
        help="write each section's per-input results (Parquet) and the adversarial inputs "
        "beside report.json",
    )
    a.add_argument(
        "--rerun",
        metavar="REPORT",
        help="repeat the audit a report.json records (its config) into --out (default: "
        "a 'rerun' folder beside it) and print which figures moved beyond their 95%% intervals",
    )
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
    add_executor_args(a)
    a.set_defaults(executor=None)  # None: the config file's executor (or local)
    a.add_argument(
        "--models",
        metavar="YAML",
        help="audit every model of this file (name, dataset, file or architecture each), "
        "one task per model on --executor; one report per model in OUT/<name>/ and "
        "OUT/summary.html ranking them (docs/scale.md)",
    )

    tr = sub.add_parser(
        "train",
        help="train a reference model on a dataset and save it",
        description="Default dataset: mnist-5k (a few minutes on a 2-core CPU; digits: "
        "under a minute). Train a reference network (the same recipe the audit uses) and "
        "save it as a .pt file that loads safely (torch weights_only).",
    )
    tr.add_argument(
        "--dataset",
        default="mnist-5k",
        help="a dataset name (advml datasets), an image folder, a .csv/.parquet table or "
        "an .npz archive (docs/datasets.md); default mnist-5k",
    )
    tr.add_argument("--architecture", choices=("cnn", "mlp"))
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--out", required=True, help="where to write the model (.pt)")
    tr.add_argument("--quiet", action="store_true")
    add_data_args(tr)

    sub.add_parser(
        "datasets", help="list the datasets", description="List the datasets advml knows."
    )
    return {"audit": _audit, "train": _train, "datasets": _datasets}


def threshold(text: str) -> tuple[str, float]:
    """Argument type: ``FIGURE=VALUE`` with a number."""
    key, value = setting(text)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise argparse.ArgumentTypeError(f"expected FIGURE=NUMBER, got {text!r}")
    return key, float(value)


def effective_config(args: argparse.Namespace) -> Any:
    """The config file (if any), then ``--quick``, then the command-line options."""
    from advml.audit import AuditConfig
    from advml.audit.config_file import load_config

    overrides: dict[str, Any] = {}
    if args.seed is not None:
        overrides["seed"] = args.seed
    for key in (
        "dataset",
        "model",
        "n_samples",
        "attacks",
        "eps",
        "architecture",
        "sections",
        "access",
        "device",
        "precision",
        "target_url",
        "target_config",
        "max_queries",
        "executor",
        "ray_address",
        "workers",
    ):
        value = getattr(args, key)
        if value is not None:
            overrides[key] = value
    if args.model is not None:
        overrides["trust_model_file"] = args.trust_model_file
    for key, field_name in (
        ("model_factory", "model_factory"),
        ("model_kwargs", "model_kwargs"),
        ("input_shape", "model_input_shape"),
        ("model_classes", "model_classes"),
        ("mean", "model_mean"),
        ("std", "model_std"),
    ):
        if getattr(args, key, None) is not None:
            overrides[field_name] = getattr(args, key)
    bounds = getattr(args, "bounds", None)
    if bounds is not None and bounds != "data" and not os.path.isfile(bounds):
        # A LOW,HIGH pair describes the model's inputs too; a file of per-feature
        # bounds (or 'data') is the dataset's alone.
        overrides["model_bounds"] = bounds
    overrides.update(data_overrides(args))
    base = load_config(args.config) if args.config else None
    if base is not None:
        config = base.with_(**overrides)
    else:
        config = AuditConfig.quick(**overrides) if args.quick else AuditConfig(**overrides)
    if args.quick and base is not None:
        config = AuditConfig.quick(**{**config.to_dict(), **overrides, "profile": "quick"})
    if getattr(args, "save_examples", None):
        config = config.with_(save_examples=True)
    if args.fail_under:
        config = config.with_(fail_under={**config.fail_under, **dict(args.fail_under)})
    if args.fail_over:
        config = config.with_(fail_over={**config.fail_over, **dict(args.fail_over)})
    return config


def data_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields the data flags set (``--label-column --limit --bounds
    --eps-scale``; docs/datasets.md)."""
    from advml.commands._common import _label, data_bounds_arg

    out: dict[str, Any] = {}
    if getattr(args, "label_column", None) is not None:
        out["label_column"] = _label(args.label_column)
    if getattr(args, "limit", None) is not None:
        out["limit"] = args.limit
    if getattr(args, "bounds", None) is not None:
        bounds = data_bounds_arg(args.bounds)
        out["data_bounds"] = list(bounds) if isinstance(bounds, tuple) else bounds
    if getattr(args, "eps_scale", None) is not None:
        out["eps_scale"] = args.eps_scale
    return out


def _audit(args: argparse.Namespace) -> int:
    if not (args.list_sections or args.print_config):  # first, before torch is imported
        announce(
            "advml audit: "
            + ("the quick audit, about a minute" if args.quick else "the full audit")
            + f" of {args.model or 'the reference model'}; checking the plan first"
        )
    import sys

    from advml.audit import run_audit
    from advml.audit.config_file import config_to_yaml
    from advml.audit.plan import check_plan
    from advml.audit.sections import available_sections
    from advml.errors import DiskFullError
    from advml.report import format_summary
    from advml.runtime.files import atomic_write

    if args.list_sections:
        for name, cls in available_sections().items():
            print(f"{name:<18}{cls.threat:<17}{cls.title}")
        return 0
    if getattr(args, "rerun", None):
        return _rerun(args)
    config = effective_config(args)
    if args.print_config:
        print(config_to_yaml(config), end="")
        return 0
    check_plan(config)  # every problem at once, before the output folder or a model
    announce(
        f"advml audit: {', '.join(config.sections or ('every applicable section',))} on "
        f"{config.model or 'the reference model'} and {config.dataset}, "
        f"{config.n_samples} test inputs; "
        + (
            "about a minute on a 2-core CPU"
            if config.profile == "quick"
            else "minutes to an hour by model size (advml audit --quick: about a minute)"
        )
        + " (the bar below shows the ETA)"
    )
    out = output_folder("--out", args.out)
    if config.target_url or config.target_config:
        from advml.audit.cost import check_cost
        from advml.audit.run import load_audit_data

        # The data as the audit reads it: a name, or the user's folder / table / archive
        # with the data flags (--label-column, --limit, --bounds, --input-shape).
        parts = check_cost(config, load_audit_data(config))
        print(
            f"this audit will send at most about {parts['total']:,} queries to the API "
            f"(answers cached in {out / 'steps' / 'queries'} are not sent again)",
            file=sys.stderr,
        )
    if args.models:
        return _audit_models(args, config, out)
    try:
        atomic_write(out / "config.yaml", config_to_yaml(config))
        result = run_audit(config, out=out, show_progress=not args.quiet and not args.json)
    except DiskFullError as err:
        kept = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
        print(
            f"advml audit: error: {err}. Kept in {out}: {', '.join(kept) or 'nothing'}; "
            f"the finished steps in {out / 'steps'} are read back by a rerun, so it "
            f"resumes where this one stopped",
            file=sys.stderr,
        )
        return 2
    if args.json:
        print(json.dumps(result.report, indent=2))
    else:
        print(format_summary(result.report))
        print(f"\nreport: {out / 'report.html'} and {out / 'report.json'}")
    thresholds = result.report["thresholds"]
    if not thresholds["passed"]:
        for c in thresholds["checks"]:
            if not c["passed"]:
                why = c.get("problem") or (
                    f"{c['compared']:.4g} ({c.get('compared_what', 'the figure')}) is "
                    f"{c['fail_if']} {c['threshold']:g}"
                )
                print(f"advml audit: threshold not met: {c['figure']}: {why}", file=sys.stderr)
        return 3
    return 0


def _audit_models(args: argparse.Namespace, config: Any, out: Any) -> int:
    """``advml audit --models FILE``: one audit per model and a summary page."""
    from advml.audit.config_file import config_to_yaml
    from advml.audit.many import audit_models, load_models_file
    from advml.audit.summary_page import rank_models
    from advml.runtime.executors import make_executor
    from advml.runtime.files import atomic_write

    entries = load_models_file(args.models)
    atomic_write(out / "config.yaml", config_to_yaml(config))
    executor = make_executor(
        config.executor, workers=config.workers, ray_address=config.ray_address
    )
    with executor:
        reports = audit_models(entries, config, out, executor=executor)
    failed = [n for n, r in reports.items() if not r["thresholds"]["passed"]]
    for rank, name in enumerate(rank_models(reports), start=1):
        levels = {s: v["verdict"]["level"] for s, v in reports[name]["sections"].items()}
        print(f"{rank:>2}. {name:<24}" + "  ".join(f"{s}: {lv}" for s, lv in levels.items()))
    print(f"\nsummary: {out / 'summary.html'}; reports in {out}/<name>/")
    for name in failed:
        print(f"advml audit: threshold not met for model {name!r}", file=sys.stderr)
    return 3 if failed else 0


def _rerun(args: argparse.Namespace) -> int:
    """``--rerun REPORT``: the same config again, then the figures compared."""
    from pathlib import Path

    from advml.audit import AuditConfig, run_audit
    from advml.audit.run import load_report
    from advml.report.rerun import compare_reports, format_comparison

    path = Path(args.rerun)
    if not path.is_file():
        raise ValueError(f"--rerun: {str(path)!r} is not a file; give the report.json to repeat")
    try:
        old = load_report(path)
    except json.JSONDecodeError as err:
        raise ValueError(f"--rerun: {str(path)!r} is not a report.json ({err})") from None
    if old.get("model", {}).get("source") == "given":
        raise ValueError(
            "--rerun: that audit's model was passed in from Python, not named in its config; "
            "rerun it with run_audit(config, model=...) and advml.report.rerun.compare_reports"
        )
    if not isinstance(old.get("config"), dict):
        raise ValueError(f"--rerun: {str(path)!r} has no 'config'; is it an advml report.json?")
    try:
        config = AuditConfig(**old["config"])
    except TypeError as err:
        raise ValueError(
            f"--rerun: the report's config does not fit this version of advml ({err}); it "
            f"was written by advml {old.get('advml_version', '?')}"
        ) from None
    out = output_folder("--out", path.parent / "rerun" if args.out == "advml-audit" else args.out)
    result = run_audit(config, out=out, show_progress=not args.quiet)
    print(format_comparison(compare_reports(old, result.report)))
    print(f"\nrepeated report: {out / 'report.html'} and {out / 'report.json'}")
    return 0


def _train(args: argparse.Namespace) -> int:
    if not getattr(args, "list", False):  # first, before torch is imported
        announce(
            f"advml train: the reference network for {args.dataset} (cached under "
            f"$ADVML_HOME/models once trained); under a minute for digits, a few minutes for "
            f"mnist-5k on a 2-core CPU (the bar below shows the ETA)"
        )
    from advml.commands._common import load_data_from_args
    from advml.metrics import accuracy
    from advml.models.io import save_model
    from advml.models.reference import reference_model

    out = output_file("--out", args.out)
    ds = load_data_from_args(args)  # a name or the user's files (docs/datasets.md)
    model, info = reference_model(
        ds, architecture=args.architecture, seed=args.seed, show_progress=not args.quiet
    )
    path = save_model(model, out)
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
