"""``advml extract``: steal a model through its predictions and measure the copy."""

from __future__ import annotations

import argparse
import json
from typing import Any

from advml.commands import Handler
from advml.commands._common import (
    add_model_args,
    add_output_defence_args,
    add_settings_arg,
    add_target_args,
    announce,
    list_components,
    load_model_and_data,
    output_file,
    with_output_defence,
)

__all__ = ["add_commands"]


def add_commands(sub: Any) -> dict[str, Handler]:
    p = sub.add_parser(
        "extract",
        help="steal a model through its predictions (equation solving, copycat)",
        description="Default: mnist-5k, copycat with 1000 queries in 4 rounds, about 5 "
        "minutes on a 2-core CPU (a progress bar shows the ETA); --queries 10000 is a "
        "stronger run (about 25 minutes). "
        "Query the model as a black box, train or solve for a copy of it, and "
        "report the copy's agreement with the model on the test split and on uniform "
        "random inputs, the queries used and, with --transfer-eps, how many adversarial "
        "examples crafted on the copy fool the model. The attacker's data is the "
        "dataset's training split (unlabelled) or, with --pool, another dataset resized.",
    )
    add_model_args(p)
    add_target_args(p)
    p.add_argument(
        "--attack",
        default="copycat",
        help="extraction attack: copycat (default, any model) or equation_solving "
        "(linear/logistic models with scores)",
    )
    p.add_argument("--list", action="store_true", help="list the extraction attacks and exit")
    p.add_argument(
        "--strategy",
        choices=("random", "pool", "jacobian", "active"),
        help="copycat's query strategy (default pool)",
    )
    p.add_argument("--queries", type=int, help="query budget (copycat default 1000)")
    p.add_argument(
        "--outputs",
        choices=("auto", "scores", "labels"),
        help="use the model's scores or only its labels (default: scores when it has them)",
    )
    add_output_defence_args(p)
    p.add_argument(
        "--pool",
        default="train",
        help="attacker data: 'train' (the dataset's training split, default) or the name "
        "of another dataset, resized to the model's input (e.g. digits for mnist-5k)",
    )
    add_settings_arg(p)
    p.add_argument(
        "--transfer-eps",
        type=float,
        default=0.0,
        help="also run L-inf PGD with this eps on the copy and report its success on the "
        "model (0: skip)",
    )
    p.add_argument("--n-random", type=int, default=10_000, help="random inputs for fidelity")
    p.add_argument("--out", help="save the stolen model to this .pt file")
    p.add_argument("--json", help="write the numbers to this JSON file")
    return {"extract": _extract}


def _needs(cls: Any) -> str:
    """What an extraction attack needs from the victim, for ``--list``."""
    return "scores" if getattr(cls, "needs_scores", False) else "labels or scores"


def _extract(args: argparse.Namespace) -> int:
    if not args.list:  # first, before torch is imported: the plan and its time
        dataset = args.dataset or args.default_dataset
        given = ", ".join(f"{k}={v}" for k, v in _given(args)) or "defaults"
        announce(
            f"advml extract: {args.attack} ({given}) "
            f"against the model of {dataset}, then its agreement on the test split and "
            f"{args.n_random} random inputs; {_estimate(args, dataset)} (the bar below "
            f"shows the ETA once the model and data are loaded)"
        )
    from advml import registry
    from advml.data import load_dataset
    from advml.extraction import transfer_evasion
    from advml.models.io import save_model
    from advml.models.torch import TorchClassifier
    from advml.runtime.files import atomic_write

    if args.list:
        return list_components("extraction", width=18, needs=_needs, needs_width=18)
    settings = dict(args.settings)
    for key in ("strategy", "queries", "outputs"):
        value = getattr(args, key)
        if value is not None:
            settings[key] = value
    schema = registry.schema("extraction", args.attack)
    if "seed" in schema and "seed" not in settings:
        settings["seed"] = args.seed
    attack = registry.create("extraction", args.attack, **settings)
    if hasattr(attack, "show_progress"):
        attack.show_progress = not args.quiet
    out = output_file("--out", args.out) if args.out else None
    json_out = output_file("--json", args.json) if args.json else None
    model, ds = load_model_and_data(args)
    victim = with_output_defence(model, args)
    if args.pool == "train":
        pool, pool_name = ds.x_train, f"{ds.name} training split ({len(ds.x_train)} inputs)"
    else:
        other = load_dataset(args.pool)
        pool = other.x_train
        pool_name = f"{other.name} training split ({len(pool)} inputs), resized"
    result = attack.extract(
        victim, pool, x_eval=ds.x_test, y_eval=ds.y_test, n_random=args.n_random
    )
    described = victim.describe() if hasattr(victim, "describe") else type(victim).__name__
    print(f"{attack!r} against {described} on {ds.name}")
    print(f"  attacker data           {pool_name}")
    print(f"  used                    {result.outputs}")
    print(f"  queries                 {result.queries}")
    print(f"  agreement (test)        {result.fidelity:.1%} of {result.n_eval} test inputs")
    print(f"  agreement (random)      {result.fidelity_random:.1%} of {result.n_random} inputs")
    print(f"  accuracy of the copy    {result.accuracy:.1%} (model: {result.victim_accuracy:.1%})")
    if len(result.curve) > 1:
        curve = ", ".join(f"{p.queries}: {p.fidelity:.1%}" for p in result.curve)
        print(f"  agreement vs queries    {curve}")
    for key, value in result.details.items():
        print(f"  {key:<24}{value}")
    print(f"  time                    {result.seconds:.1f} s")
    numbers: dict[str, Any] = {"extraction": result.summary(), "details": dict(result.details)}
    if args.transfer_eps > 0:
        n = min(500, len(ds.x_test))
        t = transfer_evasion(
            result.stolen, victim, ds.x_test[:n], ds.y_test[:n], settings={"eps": args.transfer_eps}
        )
        print(
            f"  PGD eps={args.transfer_eps} on the copy: {t.success_on_stolen:.1%} success on "
            f"the copy, {t.transfer_success:.1%} on the model ({t.n_eligible} inputs it got right)"
        )
        numbers["transfer"] = t.summary()
    if out is not None and isinstance(result.stolen, TorchClassifier):
        save_model(result.stolen, out)
        print(f"saved the stolen model to {out}")
    if json_out is not None:
        atomic_write(json_out, json.dumps(numbers, indent=1, default=str))
        print(f"wrote {json_out}")
    return 0


# Copycat training steps per second on a 2-core CPU (measured with the default
# architecture: small CNN for mnist-5k, MLP for digits); the estimate of the plan line.
_STEPS_PER_SECOND = {"mnist-5k": 5.0, "digits": 60.0}


def _given(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """The attack settings the command line sets (flags, then --set)."""
    flags = [(k, getattr(args, k)) for k in ("strategy", "queries", "outputs")]
    return [(k, v) for k, v in flags if v is not None] + list(args.settings)


def _estimate(args: argparse.Namespace, dataset: str) -> str:
    """``about N s`` / ``about N min on a 2-core CPU`` for copycat on a measured dataset,
    from its training steps (Copycat.checkpoints and _planned_steps, without pool
    pseudo-labels), computed here so that no torch import is needed."""
    rate = _STEPS_PER_SECOND.get(dataset)
    given = dict(_given(args))
    if args.attack != "copycat" or rate is None:
        return "the time depends on the model and data"
    try:
        queries = int(given.get("queries", 1000))
        rounds = int(given.get("rounds", 4))
        epochs = int(given.get("epochs", 30))
        min_steps = int(given.get("min_steps", 300))
        batch = int(given.get("batch_size", 64))
        points = [max(1, round(queries / 2 ** (rounds - 1 - r))) for r in range(rounds)]
        steps = sum(max(epochs * -(-c // batch), min_steps) for c in points)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return "the time depends on the settings"  # the attack itself says what is wrong
    seconds = steps / rate
    if seconds < 60:
        return f"about {max(1, round(seconds))} s on a 2-core CPU"
    return f"about {round(seconds / 60)} min on a 2-core CPU"
