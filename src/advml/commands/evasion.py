"""``advml attack``: craft adversarial examples with any registered evasion attack."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np

from advml.commands import Handler
from advml.commands._common import (
    add_executor_args,
    add_model_args,
    add_settings_arg,
    add_target_args,
    announce,
    executor_from_args,
    list_components,
    load_model_and_data,
    output_file,
)

__all__ = ["add_commands"]


def add_commands(sub: Any) -> dict[str, Handler]:
    t = sub.add_parser(
        "attack",
        help="craft adversarial examples and save them to .npz",
        description="Default: mnist-5k, PGD on 100 test inputs, under a minute on a 2-core "
        "CPU (a progress bar over the model's queries shows the ETA); --n-samples 1000 "
        "attacks the whole test split. Run one evasion attack on test inputs of a dataset "
        "and save x, x_adv, y, y_adv and success to an .npz file; print the numbers. Any "
        "registered attack works (see 'advml attack --list'); its settings are given with "
        "--set KEY=VALUE.",
    )
    add_model_args(t)
    add_target_args(t)
    t.add_argument("--attack", default="pgd", help="attack name (default pgd; see --list)")
    t.add_argument("--list", action="store_true", help="list the evasion attacks and exit")
    t.add_argument("--eps", type=float, help="perturbation size (attack's default if omitted)")
    add_settings_arg(t)
    t.add_argument("--target", type=int, help="targeted attack towards this class")
    t.add_argument("--n-samples", type=int, default=100, help="test inputs to attack (default 100)")
    t.add_argument(
        "--query-budget",
        type=int,
        metavar="N",
        help="model queries the attack may spend in all (a paid API's budget); when it runs "
        "out, the inputs attacked so far are saved and the exit code is 2",
    )
    t.add_argument(
        "--out",
        default="adversarial.npz",
        help="output file, ending in .npz, or a folder to write adversarial.npz in "
        "(default adversarial.npz)",
    )
    add_executor_args(t)
    t.add_argument(
        "--shard-size",
        type=int,
        metavar="N",
        help="with --executor process|ray: inputs per shard, rounded up to a multiple of "
        "256 (default: the inputs split over twice the workers); the numbers do not depend "
        "on it",
    )
    return {"attack": _attack}


def _needs(cls: Any) -> str:
    """What an evasion attack needs from the model, for ``--list``."""
    needs = [
        flag
        for flag, attr in (("gradients", "needs_gradients"), ("scores", "needs_scores"))
        if getattr(cls, attr, False)
    ]
    return "+".join(needs) or "labels"


def _attack(args: argparse.Namespace) -> int:
    if not args.list:  # first, before torch is imported: the plan and its time
        given = [*(("eps", args.eps),) * (args.eps is not None), *args.settings]
        shown = ", ".join(f"{k}={v}" for k, v in given) or "defaults"
        announce(
            f"advml attack: {args.attack} ({shown}) on {args.n_samples} test inputs of "
            f"{args.dataset or args.default_dataset}; the README's runs take under a minute "
            f"on a 2-core CPU (the bar below shows the ETA once the model is loaded)"
        )
    from advml import registry
    from advml.validation import check_number

    if args.list:
        return list_components("evasion", width=16, needs=_needs, needs_width=20)
    settings = dict(args.settings)
    if args.eps is not None:
        settings["eps"] = args.eps
    if args.target is not None:
        settings["targeted"] = True
    if "seed" in registry.schema("evasion", args.attack) and "seed" not in settings:
        settings["seed"] = args.seed
    attack = registry.create("evasion", args.attack, **settings)
    if args.query_budget is not None:
        check_number("--query-budget", args.query_budget, low=1, integer=True)
    if args.shard_size is not None:
        check_number("--shard-size", args.shard_size, low=1, integer=True)
    sharded = args.executor != "local"
    if sharded and args.query_budget is not None:
        raise ValueError(
            "--query-budget counts the queries of one model in this process; with "
            f"--executor {args.executor} each worker holds its own copy. Use --executor "
            "local with --query-budget"
        )
    out = output_file("--out", args.out, suffix=".npz", default_name="adversarial.npz")
    # The executor's flags are checked (and Ray joined) before the model loads.
    executor = executor_from_args(args)
    try:
        return _attack_with(args, attack, settings, out, executor if sharded else None)
    finally:
        executor.close()


def _attack_with(
    args: argparse.Namespace, attack: Any, settings: dict[str, Any], out: Any, executor: Any
) -> int:
    """The rest of ``advml attack`` once the settings are checked: load, attack, save."""
    from advml.audit.sections.evasion import scale_matters
    from advml.errors import QueryBudgetExceededError
    from advml.models.checks import check_finite_outputs
    from advml.runtime.files import atomic_write
    from advml.runtime.progress import QueryProgress

    per_input = _queries_per_input(attack)
    model, ds = load_model_and_data(args)
    if "eps_scale" in attack.get_params() and "eps_scale" not in settings:
        # The CLI reads eps relative to each feature's range unless told otherwise (the
        # same attack as absolute on one (0, 1) pair: its settings are then left alone).
        scale = args.eps_scale or "relative"
        if args.eps_scale is not None or scale_matters(model):
            attack = attack.set_params(eps_scale=scale)
    sub = ds.subset(n_test=min(args.n_samples, ds.x_test.shape[0]), seed=args.seed)
    x, y = sub.x_test, sub.y_test
    check_finite_outputs(model, x, name=args.model or "the reference model")
    goal = np.full_like(y, args.target) if args.target is not None else y
    clean_pred = np.asarray(model.predict(x))
    if args.query_budget is not None:
        # The budget is the attack's: the clean predictions above are not charged to it.
        model.reset_queries()
        model.query_budget = args.query_budget
    budget_error: QueryBudgetExceededError | None = None
    total = per_input * len(y) if per_input else None
    if args.query_budget is not None:
        total = min(total, args.query_budget) if total else args.query_budget
    try:
        if executor is not None:
            result = _sharded(attack, model, x, goal, args.shard_size, executor)
        else:
            with QueryProgress(model, total=total, desc=args.attack, enabled=not args.quiet):
                result = attack.generate(model, x, goal)
    except QueryBudgetExceededError as err:
        if err.partial_result is None or err.partial_result.n == 0:
            raise
        # The queries are paid for: save and report what they bought.
        budget_error, result = err, err.partial_result
        x, y, clean_pred = x[: result.n], y[: result.n], clean_pred[: result.n]
    x_adv = np.asarray(result.x_adv)
    arrays = {
        "x": x,
        "x_adv": x_adv,
        "y": y,
        "y_adv": result.y_adv,
        "success": result.success,
        "queries": result.queries,
    }
    for extra in ("radius", "lower_bound", "optimal"):  # the tree attacks' minimal radii
        if hasattr(result, extra):
            arrays[extra] = getattr(result, extra)
    atomic_write(out, lambda f: np.savez_compressed(f, **arrays))
    s = result.summary()
    print(f"{attack!r} on {ds.name}, {len(y)} test inputs")
    print(f"  clean accuracy        {float((clean_pred == y).mean()):.1%}")
    print(f"  accuracy under attack {float((result.y_adv == y).mean()):.1%}")
    print(f"  success rate          {s['success_rate']:.1%}")
    print(f"  median L2 / L∞        {s['median_l2']:.3f} / {s['median_linf']:.3f} (successes)")
    if "median_radius" in s:
        print(
            f"  median radius (L{s['norm']})  {s['median_radius']:.4f}, proven optimal on "
            f"{s['proven_optimal']:.0%} of inputs"
        )
    print(f"  queries / input       {s['mean_queries']:.0f}")
    print(f"  time                  {s['seconds']:.2f} s")
    print(f"saved x, x_adv, y, y_adv, success, queries to {out}")
    if budget_error is not None:
        print(
            f"advml attack: the query budget ran out: all {model.query_count} queries of "
            f"--query-budget {model.query_budget} spent; {out} holds the {result.n} of "
            f"{len(sub.y_test)} inputs attacked so far ({int(result.success.sum())} "
            f"adversarial). Raise --query-budget, attack fewer inputs (--n-samples) or "
            f"lower max_queries",
            file=sys.stderr,
        )
        return 2
    return 0


def _sharded(
    attack: Any, model: Any, x: np.ndarray, y: np.ndarray, shard_size: int | None, executor: Any
) -> Any:
    """The attack over shards of ``x`` on ``executor``; the result equals one run's
    (randomness is drawn per block of inputs, see docs/scale.md)."""
    from advml.evasion.base import random_block
    from advml.evasion.shards import generate_sharded, shard_bounds

    size = shard_size or max(1, -(-len(x) // (2 * executor.workers)))
    shards = len(shard_bounds(len(x), size, random_block(model.device)))
    announce(
        f"advml attack: {len(x)} inputs in {shards} shard(s) on --executor "
        f"{executor.name} with {executor.workers} worker(s)"
    )
    return generate_sharded(attack, model, x, y, executor=executor, shard_size=size)


def _queries_per_input(attack: Any) -> int | None:
    """The model queries one input costs at most (iterations, or a query cap), plus the
    final check; None when the attack states neither."""
    for name in ("max_queries", "steps", "max_iter", "iterations"):
        value = getattr(attack, name, None)
        if isinstance(value, int) and value > 0:
            return value * max(1, int(getattr(attack, "restarts", 1) or 1)) + 1
    return None
