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
import json
from pathlib import Path
from typing import Any

from advml.commands import Handler
from advml.commands._common import add_model_args, add_settings_arg, output_file

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
    from advml import registry

    for family in families:
        print(f"{family}:")
        for name in registry.available(family):
            doc = (registry.get(family, name).__doc__ or "").strip().splitlines()
            print(f"  {name:<22}{doc[0] if doc else ''}")
    return 0


def _poison(args: argparse.Namespace) -> int:
    import numpy as np

    from advml import registry
    from advml.audit.reference import default_architecture, train_reference
    from advml.data import load_dataset
    from advml.models.io import save_model
    from advml.poisoning import PoisoningAttack, evaluate_backdoor

    if args.list:
        return _list("poisoning", "trigger")
    out_model = output_file("--out-model", args.out_model)
    out_data = output_file("--out-data", args.out_data, suffix=".npz")
    ds = load_dataset(args.dataset or args.default_dataset)
    trigger = registry.create("trigger", args.trigger, **dict(args.trigger_settings))
    settings: dict[str, Any] = {"fraction": args.fraction, "target": args.target, "seed": args.seed}
    if args.attack == "badnets":
        settings.update(mode=args.mode, source=args.source)
    if args.attack != "label_flip":
        settings["trigger"] = trigger
    attack = registry.create("poisoning", args.attack, **settings)
    assert isinstance(attack, PoisoningAttack)
    data = attack.poison(ds.x_train, ds.y_train, n_classes=ds.n_classes, bounds=ds.bounds)
    arch = args.architecture or default_architecture(ds)
    model = train_reference(
        ds,
        data.x,
        data.y,
        architecture=arch,
        seed=args.seed,
        epochs=args.epochs,
        show_progress=not args.quiet,
        desc="training on poisoned data",
    )
    save_model(model, out_model)
    meta = {
        "attack": data.attack,
        "dataset": ds.name,
        "target": data.target,
        "mode": data.mode,
        "n_classes": data.n_classes,
        "bounds": list(data.bounds),
        "trigger": None
        if data.trigger is None
        else {"name": data.trigger.name, **_plain(data.trigger.get_params())},
    }
    np.savez_compressed(
        out_data,
        x=data.x,
        y=data.y,
        y_original=data.y_original,
        indices=data.indices,
        meta=np.array(json.dumps(meta)),
    )
    print(f"{attack!r} on {ds.name}: {data.n_poisoned} of {len(data.y)} training samples")
    accuracy = float((np.asarray(model.predict(ds.x_test)) == ds.y_test).mean())
    print(f"  clean test accuracy   {accuracy:.2%}")
    if data.trigger is not None:
        ev = evaluate_backdoor(model, data, ds.x_test, ds.y_test)
        print(f"  attack success        {ev.attack_success:.2%}")
    print(f"saved the poisoned model to {out_model} and the poisoned data to {out_data}")
    return 0


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}


def load_poisoned(path: str | Path) -> Any:
    """The :class:`~advml.poisoning.PoisonedData` written by ``advml poison``."""
    import numpy as np

    from advml import registry
    from advml.poisoning import PoisonedData

    with np.load(path, allow_pickle=False) as f:
        missing = {"x", "y", "y_original", "indices", "meta"} - set(f.files)
        if missing:
            raise ValueError(f"--data {path} is not written by 'advml poison' (no {missing})")
        meta = json.loads(str(f["meta"]))
        arrays = {k: f[k] for k in ("x", "y", "y_original", "indices")}
    trig = meta["trigger"]
    trigger = None
    if trig is not None:
        trigger = registry.create("trigger", trig.pop("name"), **trig)
    return PoisonedData(
        x=arrays["x"],
        y=arrays["y"],
        indices=arrays["indices"],
        trigger=trigger,  # type: ignore[arg-type]
        target=meta["target"],
        mode=meta["mode"],
        n_classes=int(meta["n_classes"]),
        bounds=(float(meta["bounds"][0]), float(meta["bounds"][1])),
        y_original=arrays["y_original"],
        attack=meta["attack"],
    )


def _defend(args: argparse.Namespace) -> int:
    import numpy as np

    from advml import registry
    from advml.commands._common import load_model_and_data
    from advml.defences.backdoor import BackdoorDefence, PoisonDetection, bake_masks
    from advml.models.io import save_model
    from advml.poisoning import evaluate_backdoor
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
    assert isinstance(defence, BackdoorDefence)
    model, ds = load_model_and_data(args)
    data = load_poisoned(args.data) if args.data else None
    n_val = max(1, round(args.val_fraction * len(ds.y_test)))
    x_val, y_val = ds.x_test[:n_val], ds.y_test[:n_val]
    x_ev, y_ev = ds.x_test[n_val:], ds.y_test[n_val:]
    trained_on = defence.uses
    print(f"{defence!r} on {ds.name}; it uses {trained_on}")

    def measure(m: Any, label: str) -> None:
        acc = float((np.asarray(m.predict(x_ev)) == y_ev).mean())
        line = f"  {label:<8} clean accuracy {acc:.2%}"
        if data is not None and data.trigger is not None:
            line += f", attack success {evaluate_backdoor(m, data, x_ev, y_ev).attack_success:.2%}"
        print(line)

    if args.defence in ("activation_clustering", "spectral_signatures"):
        if data is None:
            raise ValueError(f"--defence {args.defence} screens a training set: give --data")
        found = defence.run(model, data.x, data.y)
        assert isinstance(found, PoisonDetection)
        scores = found.score(data.indices)
        print(
            f"  flagged {int(found.flagged.sum())} of {len(data.y)} training samples "
            f"in classes {list(found.flagged_classes)}"
        )
        print(
            f"  precision {scores['precision']:.2%}, recall {scores['recall']:.2%}, "
            f"F1 {scores['f1']:.3f} (against the {data.n_poisoned} poisoned indices)"
        )
        if data.target is not None:
            t = found.score(data.indices, within_class=data.target)
            print(f"  in the target class {data.target}: F1 {t['f1']:.3f}")
        return 0
    if args.defence == "strip":
        detector = defence.run(model, x_val, y_val)
        print(
            f"  threshold {detector.threshold:.4f} (false rejection {detector.frr:.1%} on "
            "clean validation inputs)"
        )
        print(f"  clean test inputs flagged     {detector.detect(x_ev).detection_rate:.2%}")
        if data is not None and data.trigger is not None:
            keep = data.backdoor_labels(y_ev) != y_ev
            trig = np.asarray(data.apply_trigger(x_ev[keep]))
            print(f"  triggered test inputs flagged {detector.detect(trig).detection_rate:.2%}")
        return 0
    measure(model, "before")
    result = defence.run(model, x_val, y_val)
    if args.defence == "neural_cleanse":
        print(
            f"  anomaly index {float(result.anomaly_index.max()):.2f}; "
            + (f"backdoor to label {result.target}" if result.flagged else "not flagged")
        )
        repaired = defence.repair(model, x_val, y_val, inspection=result)  # type: ignore[attr-defined]
    else:
        repaired = result.model
        print(f"  pruned {result.summary()['fraction_pruned']:.0%} of {result.summary()['layer']}")
    measure(repaired, "after")
    save_model(bake_masks(repaired), out)
    print(f"saved the repaired model to {out}")
    return 0
