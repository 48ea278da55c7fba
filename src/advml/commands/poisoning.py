"""``advml poison`` and ``advml defend``: plant a backdoor by poisoning, then try to remove it.

``advml poison`` poisons the training split of a dataset, trains the reference
architecture on it, and writes the model and the poisoned data (with the poisoned
indices, the trigger and the target rule) to an ``.npz``. ``advml defend`` runs a backdoor
defence with the defender's clean validation data (the first half of the test split; the
second half is only used to measure) and, when given the ``.npz``, measures the attack
success before and after.
"""

from __future__ import annotations

import argparse
from typing import Any

from advml.commands import Handler
from advml.commands._common import (
    add_model_args,
    add_settings_arg,
    announce,
    list_components,
    load_data_from_args,
    output_file,
)

__all__ = ["add_commands"]

_DEFENCES = (
    "pruning, fine_pruning, neural_cleanse, activation_clustering, spectral_signatures, strip"
)


def add_commands(sub: Any) -> dict[str, Handler]:
    p = sub.add_parser(
        "poison",
        help="poison a training set with a backdoor, train on it, save model and data",
        description="Data poisoning. Stamps a trigger on a fraction of the training split "
        "and relabels those samples (BadNets: all-to-one sends every triggered input to "
        "--target, all-to-all sends label i to i+1; clean-label stamps target-class samples "
        "and keeps their labels; label_flip only changes labels), trains the reference "
        "architecture on the result, and prints clean test accuracy and attack success (the "
        "share of triggered test inputs of other classes that go to the backdoor label). "
        "The poisoned data and the poisoned indices go to --out-data for the detectors.",
        epilog="example: advml poison --dataset digits --trigger pattern --fraction 0.1 "
        "--target 0 --out-model poisoned.pt --out-data poisoned.npz",
    )
    add_model_args(p, default_dataset="digits")
    p.add_argument(
        "--attack", default="badnets", help="badnets (default), clean_label or label_flip"
    )
    p.add_argument(
        "--trigger", default="pattern", help="pixel, pattern (default), blended or tabular"
    )
    p.add_argument(
        "--trigger-set",
        dest="trigger_settings",
        action="append",
        type=_setting,
        default=[],
        metavar="KEY=VALUE",
        help="a trigger setting, e.g. size=4 or corner=top-left (repeatable)",
    )
    p.add_argument("--fraction", type=float, default=0.1, help="share poisoned (default 0.1)")
    p.add_argument("--target", type=int, default=0, help="backdoor label (default 0)")
    p.add_argument(
        "--mode", default="all-to-one", help="all-to-one (default) or all-to-all (badnets)"
    )
    p.add_argument("--source", type=int, default=None, help="poison only this class (badnets)")
    p.add_argument("--architecture", default=None, help="cnn or mlp (default: by dataset)")
    p.add_argument(
        "--epochs", type=int, default=None, help="training epochs (default: reference recipe)"
    )
    p.add_argument("--out-model", default="poisoned.pt", help="default poisoned.pt")
    p.add_argument("--out-data", default="poisoned.npz", help="default poisoned.npz")
    p.add_argument("--list", action="store_true", help="list attacks and triggers and exit")

    d = sub.add_parser(
        "defend",
        help="run a backdoor defence on a model and save the repaired model",
        description="Backdoor defences. Pruning and fine-pruning (Liu et al. 2018) and Neural "
        "Cleanse (Wang et al. 2019) use the defender's clean validation data: the first "
        "--val-fraction of the test split; the rest is only used to measure. Activation "
        "clustering and spectral signatures screen the training set in --data (the poisoned "
        "data the model was trained on) and report precision, recall and F1 against its "
        "poisoned indices; STRIP calibrates a run-time detector on the clean validation "
        "inputs. When --data carries a trigger, clean accuracy and attack success are "
        "printed before and after.",
        epilog="example: advml defend --dataset digits --model poisoned.pt --data "
        "poisoned.npz --defence fine_pruning --out-model repaired.pt",
    )
    add_model_args(d, default_dataset="digits")
    d.add_argument("--defence", default="fine_pruning", help=f"one of: {_DEFENCES}")
    d.add_argument("--data", metavar="NPZ", help="poisoned data written by 'advml poison'")
    d.add_argument(
        "--val-fraction",
        type=float,
        default=0.5,
        help="share of the test split the defender holds as clean data (default 0.5)",
    )
    add_settings_arg(d, "defence")
    d.add_argument("--out-model", default="repaired.pt", help="default repaired.pt")
    d.add_argument("--list", action="store_true", help="list the defences and exit")
    return {"poison": _poison, "defend": _defend}


def _setting(text: str) -> tuple[str, Any]:
    from advml.commands._common import setting

    return setting(text)


def _list(*families: str) -> int:
    for family in families:
        print(f"{family}:")
        list_components(family, width=22, indent="  ")
    return 0


def _poison(args: argparse.Namespace) -> int:
    if not getattr(args, "list", False):  # first, before torch is imported
        announce(
            f"advml poison: stamp a {args.trigger} trigger on a share of "
            f"{args.dataset or args.default_dataset}'s training split and train a model on it; "
            f"about a minute for digits on a 2-core CPU (the bar below shows the ETA)"
        )
    from advml import registry
    from advml.commands._common import chosen_device
    from advml.models.io import save_model
    from advml.models.reference import default_architecture, train_reference
    from advml.models.torch import TorchClassifier
    from advml.poisoning import poison_and_train, save_poisoned

    if args.list:
        return _list("poisoning", "trigger")
    out_model = output_file("--out-model", args.out_model)
    out_data = output_file("--out-data", args.out_data, suffix=".npz")
    device = chosen_device(args)
    ds = load_data_from_args(args)  # a name or the user's files (docs/datasets.md)
    trigger = registry.create("trigger", args.trigger, **dict(args.trigger_settings))
    settings: dict[str, Any] = {"fraction": args.fraction, "target": args.target, "seed": args.seed}
    if args.attack == "badnets":
        settings.update(mode=args.mode, source=args.source)
    if args.attack != "label_flip":
        settings["trigger"] = trigger
    attack = registry.create("poisoning", args.attack, **settings)
    arch = args.architecture or default_architecture(ds)

    def train(x: Any, y: Any) -> Any:
        return train_reference(
            ds,
            x,
            y,
            architecture=arch,
            seed=args.seed,
            epochs=args.epochs,
            show_progress=not args.quiet,
            desc="training on poisoned data",
            device=device,
        )

    run = poison_and_train(
        attack,
        ds.x_train,
        ds.y_train,
        ds.x_test,
        ds.y_test,
        n_classes=ds.n_classes,
        bounds=ds.bounds,
        train=train,
    )
    model = run.model
    assert isinstance(model, TorchClassifier)  # train_reference builds one
    save_model(model, out_model)
    out_data = save_poisoned(run.data, out_data, dataset=ds.name)
    print(f"{attack!r} on {ds.name}: {run.data.n_poisoned} of {len(run.data.y)} training samples")
    print("\n".join(run.lines()[1:]))
    print(f"saved the poisoned model to {out_model} and the poisoned data to {out_data}")
    return 0


def _defend(args: argparse.Namespace) -> int:
    if not getattr(args, "list", False):  # first, before torch is imported
        announce(
            f"advml defend: {args.defence} against the backdoor of {args.model or 'the model'}; "
            f"under a minute for a digits model on a 2-core CPU"
        )
    from advml import registry
    from advml.commands._common import load_model_and_data
    from advml.defences.backdoor import bake_masks, run_defence
    from advml.models.io import save_model
    from advml.poisoning import load_poisoned
    from advml.validation import check_number

    if args.list:
        return _list("backdoor_defence")
    out = output_file("--out-model", args.out_model)
    check_number(
        "--val-fraction",
        args.val_fraction,
        low=0,
        high=1,
        low_inclusive=False,
        high_inclusive=False,
    )
    defence = registry.create("backdoor_defence", args.defence, **dict(args.settings))
    data = load_poisoned(args.data) if args.data else None
    model, ds = load_model_and_data(args)
    n_val = max(1, round(args.val_fraction * len(ds.y_test)))
    print(f"{defence!r} on {ds.name}; it uses {defence.uses}")
    run = run_defence(
        defence,
        model,
        ds.x_test[:n_val],
        ds.y_test[:n_val],
        ds.x_test[n_val:],
        ds.y_test[n_val:],
        backdoor=data,
    )
    print("\n".join(run.lines()))
    if run.repaired is not None:
        save_model(bake_masks(run.repaired), out)
        print(f"saved the repaired model to {out}")
    return 0
