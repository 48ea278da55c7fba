"""``advml watermark embed|verify|attack``: prove ownership of a model, and test the proof."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from advml.commands import Handler
from advml.commands._common import (
    add_executor_args,
    add_model_args,
    add_settings_arg,
    announce,
    executor_from_args,
    list_components,
    load_model_and_data,
    names,
    output_file,
)

__all__ = ["add_commands"]

_DEFAULT_ATTACKS = ("ftll", "ftal", "rtal", "prune", "fine_prune", "preprocess", "distill")


def add_commands(sub: Any) -> dict[str, Handler]:
    p = sub.add_parser(
        "watermark",
        help="embed an ownership watermark, verify it, or attack it",
        description="Model ownership. 'embed' writes a watermarked copy of the model and the "
        "owner's key file (keep it secret); 'verify' checks a model against a key and states "
        "the probability that a model not derived from the owner's matches as well by "
        "chance; 'attack' runs removal attacks and prints the robustness table.",
    )
    wsub = p.add_subparsers(dest="watermark_command", metavar="ACTION", required=True)

    e = wsub.add_parser("embed", help="embed a watermark into a copy of the model")
    add_model_args(e, default_dataset="digits")
    e.add_argument(
        "--scheme", default="adi", help="uchida, adi, content, noise, unrelated, frontier"
    )
    e.add_argument("--list", action="store_true", help="list the schemes and exit")
    e.add_argument("--key", dest="secret", help="the owner's secret (default: a fresh one)")
    add_settings_arg(e, "scheme")
    e.add_argument(
        "--calibrate",
        type=int,
        default=0,
        metavar="N",
        help="store an empirical null from N independently trained models (trained as "
        "tasks on --executor; each is also checked against the key: false claims)",
    )
    add_executor_args(e)
    e.add_argument("--out-model", default="watermarked.pt", help="default watermarked.pt")
    e.add_argument("--out-key", default="owner.key.npz", help="default owner.key.npz")

    v = wsub.add_parser("verify", help="check a model against a key file")
    add_model_args(v, default_dataset="digits")
    v.add_argument("--key", dest="key_file", required=True, help="the owner's key file")
    v.add_argument("--alpha", type=float, default=None, help="significance level (1e-4)")
    v.add_argument("--json", action="store_true", help="print the result as JSON")

    a = wsub.add_parser(
        "attack",
        help="run removal attacks and print the robustness table",
        description="Default: digits, the seven default removal attacks on half the training "
        "split, about 10 seconds on a 2-core CPU (a progress bar names the attack running "
        "and shows the ETA). Each attack starts from the watermarked model; the table says "
        "whether the key still verifies and the accuracy the attacker keeps.",
    )
    add_model_args(a, default_dataset="digits")
    a.add_argument("--key", dest="key_file", required=True, help="the owner's key file")
    a.add_argument(
        "--attacks",
        type=names,
        default=_DEFAULT_ATTACKS,
        help=f"removal attacks, comma-separated (default {','.join(_DEFAULT_ATTACKS)})",
    )
    a.add_argument("--list", action="store_true", help="list the removal attacks and exit")
    a.add_argument(
        "--attacker-fraction",
        type=float,
        default=0.5,
        help="fraction of the training split the attacker holds (default 0.5)",
    )
    a.add_argument("--json", metavar="FILE", help="also write the table as JSON")
    return {"watermark": _dispatch}


def _dispatch(args: argparse.Namespace) -> int:
    handler = {"embed": _embed, "verify": _verify, "attack": _attack}[args.watermark_command]
    return handler(args)


def _accuracy(model: Any, x: Any, y: Any) -> float:
    import numpy as np

    return float((np.asarray(model.predict(x)) == y).mean())


def _print_verification(v: Any) -> None:
    verdict = "VERIFIED: the model carries the watermark" if v.verified else "not verified"
    print(f"  {verdict}")
    if v.reason is not None:
        print(f"  reason                {v.reason}")
        return
    print(f"  matches               {v.matches} of {v.n} ({v.match_rate:.1%})")
    print(f"  chance probability    {v.chance_probability:.3g} (alpha {v.alpha:g})")
    print(f"  binomial null         p0 = {v.null_rate:.3g}: {v.binomial_probability:.3g}")
    if v.empirical_probability is not None:
        print(
            f"  empirical null        {v.reference_models} reference models: "
            f"{v.empirical_probability:.3g}"
        )
    print(f"  queries               {v.queries}")


def _embed(args: argparse.Namespace) -> int:
    from advml import registry
    from advml.models import TorchClassifier
    from advml.models.io import save_model
    from advml.watermark import calibrate, save_key

    if args.list:
        return list_components("watermark", width=14)
    out_model = output_file("--out-model", args.out_model)
    out_key = output_file("--out-key", args.out_key, suffix=".npz")
    scheme = registry.create("watermark", args.scheme, **dict(args.settings))
    model, ds = load_model_and_data(args)
    if not isinstance(model, TorchClassifier):
        raise ValueError(
            "embedding retrains the model: it needs a PyTorch model file written by advml"
        )
    before = _accuracy(model, ds.x_test, ds.y_test)
    marked = scheme.embed(
        model, ds.x_train, ds.y_train, key=args.secret, show_progress=not args.quiet
    )
    key = marked.key
    if args.calibrate:
        executor = executor_from_args(args)
        references = _references(model, ds, args.calibrate, args.quiet, executor)
        claims = _false_claims(references, key)
        key = calibrate(key, references)
    after = _accuracy(marked.model, ds.x_test, ds.y_test)
    save_model(marked.model, out_model)
    save_key(key, out_key)
    print(f"{scheme!r} on {ds.name}, {marked.seconds:.1f} s")
    print(f"  clean accuracy        {before:.2%} -> {after:.2%}")
    from advml.watermark import verify

    _print_verification(verify(marked.model, key))
    if args.calibrate:
        ran = executor.describe()
        print(claims)
        print(f"  executor              {ran['executor']}, {ran['workers']} worker(s)")
    print(f"saved the watermarked model to {out_model} and the key to {out_key} (keep it secret)")
    return 0


@dataclass(frozen=True)
class _ReferenceTrainer:
    """One task: a reference network trained from its seed without the key. The data
    travels once per run with this function (``ray.put`` on Ray), the task is a seed."""

    architecture: str
    input_shape: tuple[int, ...]
    n_classes: int
    bounds: tuple[float, float]
    device: str
    x: np.ndarray
    y: np.ndarray
    n: int
    quiet: bool

    def __call__(self, seed: int) -> Any:
        import torch

        from advml.models import TorchClassifier, build_architecture, train
        from advml.models.reference import TRAINING

        recipe = TRAINING[self.architecture]
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            module = build_architecture(
                self.architecture, input_shape=self.input_shape, n_classes=self.n_classes
            )
        ref = TorchClassifier(
            module,
            input_shape=self.input_shape,
            n_classes=self.n_classes,
            bounds=self.bounds,
            device=self.device,
        )
        train(
            ref,
            self.x,
            self.y,
            epochs=recipe.epochs,
            lr=recipe.lr,
            patience=recipe.patience,
            seed=seed,
            show_progress=not self.quiet,
            desc=f"reference model {seed - 1000}/{self.n}",
        )
        return ref


def _references(model: Any, ds: Any, n: int, quiet: bool, executor: Any = None) -> list[Any]:
    """``n`` models trained like the reference one from other seeds (the empirical null),
    each a seeded task on ``executor`` (default: this process); the models do not depend
    on where they were trained."""
    from advml.models.reference import default_architecture
    from advml.runtime.executors import LocalExecutor, cached_map

    executor = executor or LocalExecutor()
    trainer = _ReferenceTrainer(
        default_architecture(ds),
        tuple(ds.input_shape),
        int(ds.n_classes),
        (float(ds.bounds[0]), float(ds.bounds[1])),
        str(model.device),
        ds.x_train,
        ds.y_train,
        n,
        # Workers print no progress bars (theirs would interleave); the map shows one.
        quiet or executor.name != "local",
    )
    with executor:
        out = cached_map(
            executor,
            trainer,
            list(range(1001, 1001 + n)),
            desc="reference models",
            show_progress=not quiet and executor.name != "local",
        )
    return out


def _false_claims(references: list[Any], key: Any) -> str:
    """How many independently trained models the key claims under its binomial null (each
    one a false claim), with the false-claim rate's 95 % interval."""
    from advml.metrics.intervals import proportion
    from advml.watermark import verify

    claimed = sum(1 for m in references if verify(m, key).verified)
    iv = proportion(claimed, len(references))
    return (
        f"  false claims          {claimed} of {len(references)} independent models verified "
        f"(95% interval {100 * iv.low:.1f}% to {100 * iv.high:.1f}%)"
    )


def _verify(args: argparse.Namespace) -> int:
    from advml.watermark import DEFAULT_ALPHA, load_key, verify

    key = load_key(args.key_file)
    model, _ = load_model_and_data(args)
    v = verify(model, key, alpha=args.alpha if args.alpha is not None else DEFAULT_ALPHA)
    if args.json:
        print(json.dumps(v.summary(), indent=1))
    else:
        print(f"{key.scheme} watermark, key {args.key_file}")
        _print_verification(v)
    return 0 if v.verified else 1


def _attack(args: argparse.Namespace) -> int:
    if not args.list:  # first, before torch is imported: the plan and its time
        announce(
            f"advml watermark attack: {len(args.attacks)} removal attacks "
            f"({', '.join(args.attacks)}) on the model of {args.dataset or args.default_dataset}, "
            f"each verified against {args.key_file}; the default seven take about 10 s on the "
            f"digits MLP and a few minutes on the mnist-5k CNN, 2-core CPU (the bar below "
            f"shows the ETA)"
        )
    import numpy as np

    from advml import registry
    from advml.runtime.files import atomic_write
    from advml.watermark import load_key, robustness_table

    if args.list:
        return list_components("watermark_removal", width=14)
    json_out = output_file("--json", args.json) if args.json else None
    if not 0 < args.attacker_fraction <= 1:
        raise ValueError(f"--attacker-fraction must be in (0, 1], got {args.attacker_fraction}")
    attacks = []
    for name in args.attacks:
        attack = registry.create("watermark_removal", name)
        attacks.append(attack)
    key = load_key(args.key_file)
    model, ds = load_model_and_data(args)
    n = ds.x_train.shape[0]
    idx = np.random.default_rng(args.seed).permutation(n)[
        : max(1, round(args.attacker_fraction * n))
    ]
    table = robustness_table(
        model,
        key,
        attacks,
        ds.x_train[idx],
        ds.y_train[idx],
        ds.x_test,
        ds.y_test,
        show_progress=not args.quiet,
    )
    print(table.to_text())
    if json_out is not None:
        atomic_write(json_out, json.dumps(table.summary(), indent=1))
        print(f"wrote {json_out}")
    return 0
