"""``advml membership`` and ``advml invert``: what a model gives away about its data."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from advml.commands import Handler
from advml.commands._common import add_settings_arg, names, output_file, setting

__all__ = ["add_commands"]

_DEFENCES = ("none", "top_k", "rounding", "labels_only", "noisy_scores")
_DEFAULT_ATTACKS = ("loss_threshold", "confidence_threshold", "modified_entropy", "label_only")


def add_commands(sub: Any) -> dict[str, Handler]:
    m = sub.add_parser(
        "membership",
        help="membership inference: tell the model's training records from others",
        description="Run membership-inference attacks and report how well they tell "
        "members (training records) from non-members: AUC, TPR at 0.1%% and 1%% FPR, "
        "balanced accuracy and membership advantage. Without --model a target is trained "
        "here on --target-size records of a pool of twice that many drawn from the whole "
        "dataset (the other half are the non-members; the attacker knows the pool, not "
        "the split: Carlini et al. 2022's setting). With --model the model is taken to "
        "have been trained on the dataset's training split (members) and not on its test "
        "split (non-members).",
    )
    _model_args(m)
    m.add_argument(
        "--attacks",
        type=names,
        default=_DEFAULT_ATTACKS,
        help="membership attacks, comma-separated (default "
        f"{','.join(_DEFAULT_ATTACKS)}; also entropy_threshold, shadow, lira); "
        "--list shows them",
    )
    m.add_argument("--list", action="store_true", help="list the membership attacks and exit")
    m.add_argument(
        "--target-size",
        type=int,
        default=500,
        help="without --model: records the target is trained on (default 500)",
    )
    m.add_argument(
        "--epochs",
        type=int,
        help="without --model: training epochs of the target and of every shadow model "
        "(default: the reference recipe's maximum, no early stopping, so the target fits "
        "its records)",
    )
    m.add_argument(
        "--n-eval",
        type=int,
        default=500,
        help="with --model: members and non-members scored, each (default 500)",
    )
    m.add_argument(
        "--shadows", type=int, help="shadow models of 'shadow' and 'lira' (their defaults: 4, 16)"
    )
    _defence_args(m)
    add_settings_arg(m, "attack (applied to every attack that has it)")
    m.add_argument("--roc", metavar="PNG", help="write the ROC curves (log-log axes) here")
    m.add_argument("--json", help="write the numbers to this JSON file")

    v = sub.add_parser(
        "invert",
        help="model inversion: reconstruct what each class looks like from the model",
        description="Reconstruct a representative input of each class from the model "
        "alone (MI-Face, Fredrikson et al. 2015): with its gradients when it has them, "
        "else from its scores (zeroth-order, counted queries). An independent judge (a "
        "logistic regression trained on the test split, which the model was not trained "
        "on) says how many reconstructions it recognises; SSIM and MSE compare each with "
        "the mean of its class's training images.",
    )
    _model_args(v)
    v.add_argument(
        "--classes", type=names, help="classes to reconstruct, e.g. 0,3,7 (default: all)"
    )
    v.add_argument("--steps", type=int, help="descent steps (MI-Face default 200)")
    v.add_argument("--gradient", choices=("auto", "white-box", "zeroth-order"), default="auto")
    _defence_args(v)
    add_settings_arg(v, "MI-Face")
    v.add_argument("--out", metavar="PNG", help="write the reconstructions beside the class means")
    v.add_argument("--json", help="write the numbers to this JSON file")
    return {"membership": _membership, "invert": _invert}


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="digits", help="dataset name (default digits)")
    p.add_argument("--model", metavar="FILE", help="model file (.pt written by advml, .skops)")
    p.add_argument(
        "--trust-model-file",
        action="store_true",
        help="allow pickle/joblib model files; they can run code when loaded",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of data, models, attacks (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _defence_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--access",
        choices=("white-box", "scores", "labels"),
        default="white-box",
        help="what the attacker sees: the model itself, a prediction API returning scores "
        "(no gradients), or labels only (default white-box)",
    )
    p.add_argument(
        "--defence",
        choices=_DEFENCES,
        default="none",
        help="put an output defence in front of the model (settings: --defence-set)",
    )
    p.add_argument(
        "--defence-set",
        dest="defence_settings",
        action="append",
        default=[],
        type=setting,
        metavar="KEY=VALUE",
        help="a setting of the output defence, e.g. --defence-set decimals=1 (repeatable)",
    )


def _as_attacked(model: Any, args: argparse.Namespace) -> Any:
    """The model as the attacker sees it: access restriction, then output defence."""
    from advml import registry
    from advml.audit.run import restrict_access

    seen = restrict_access(model, args.access)
    if args.defence != "none":
        defence = registry.create("output_defence", args.defence, **dict(args.defence_settings))
        seen = defence.wrap(seen)  # type: ignore[attr-defined]
    return seen


def _describe(model: Any) -> str:
    from advml.models.torch import TorchClassifier

    describe = getattr(model, "describe", None)
    if callable(describe):
        return str(describe())
    if isinstance(model, TorchClassifier):
        recipe = getattr(model.module, "advml_architecture", None)
        name = recipe[0] if recipe else type(model.module).__name__
        return f"PyTorch {name}, white-box"
    return type(model).__name__


# -- advml membership ---------------------------------------------------------------------


def _membership(args: argparse.Namespace) -> int:
    from advml import registry
    from advml.privacy.membership import MembershipAttack

    if args.list:
        for name in registry.available("membership"):
            cls = registry.get("membership", name)
            doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
            needs = "scores" if getattr(cls, "needs_scores", True) else "labels"
            print(f"{name:<22}needs {needs:<8}{doc}")
        return 0
    for option, value in (("--json", args.json), ("--roc", args.roc)):
        if value:
            output_file(option, value)
    known = registry.available("membership")
    unknown = [a for a in args.attacks if a not in known]
    if unknown:
        raise ValueError(f"--attacks has unknown names {unknown}; available: {', '.join(known)}")
    for flag, value, low in (("--target-size", args.target_size, 2), ("--n-eval", args.n_eval, 1)):
        if value < low:
            raise ValueError(f"{flag} must be >= {low}, got {value}")
    if args.epochs is not None and args.epochs < 1:
        raise ValueError(f"--epochs must be >= 1, got {args.epochs}")
    if args.shadows is not None and args.shadows < 2:
        raise ValueError(f"--shadows must be >= 2, got {args.shadows}")
    extra = dict(args.settings)
    attacks: dict[str, MembershipAttack] = {}
    for name in args.attacks:
        schema = registry.schema("membership", name)
        settings = {k: v for k, v in extra.items() if k in schema}
        if "seed" in schema:
            settings.setdefault("seed", args.seed)
        if args.shadows is not None and "n_shadow" in schema:
            settings["n_shadow"] = args.shadows
        attack = registry.create("membership", name, **settings)
        assert isinstance(attack, MembershipAttack)
        attacks[name] = attack
    ignored = sorted(set(extra) - {k for n in attacks for k in registry.schema("membership", n)})
    if ignored:
        raise ValueError(f"--set {ignored}: no chosen attack has such a setting")
    setup = _membership_setup(args)
    target = _as_attacked(setup["model"], args)

    print(f"target: {_describe(target)} on {setup['dataset']}")
    print(f"  {setup['story']}")
    x, y, truth = setup["x"], setup["y"], setup["is_member"]
    print(f"  scored: {int(truth.sum())} members, {int((~truth).sum())} non-members")
    rows: dict[str, Any] = {}
    curves: dict[str, Any] = {}
    print(
        f"\n{'attack':<22}{'AUC':>7}{'TPR@0.1%':>10}{'TPR@1%':>9}{'bal.acc':>9}"
        f"{'advantage':>11}{'queries':>10}{'seconds':>9}"
    )
    for name, attack in attacks.items():
        if attack.needs_scores and not target.has_scores:
            print(f"{name:<22}skipped: needs scores; the model answers labels only")
            rows[name] = {"skipped": "needs scores; the model answers labels only"}
            continue
        fit_x, fit_y = (setup["pool_x"], setup["pool_y"]) if name == "lira" else setup["aux"]
        fitted = attack.fit(
            target,
            fit_x,
            fit_y,
            train_fn=setup["train_fn"],
            shadow_wrapper=_shadow_wrapper(args),
        )
        result = fitted.infer(target, x, y)
        metrics = result.metrics(truth)
        rows[name] = {
            **metrics.summary(),
            "queries": result.queries + fitted.fit_queries,
            "seconds": result.seconds + fitted.fit_seconds,
            "exposed_at_0.1%_fpr": metrics.exposed(0.001),
        }
        curves[name] = metrics.curve()
        r = rows[name]
        print(
            f"{name:<22}{metrics.auc:>7.3f}{metrics.tpr_at_0_1_fpr:>10.3f}"
            f"{metrics.tpr_at_1_fpr:>9.3f}{metrics.balanced_accuracy:>9.3f}"
            f"{metrics.advantage:>11.3f}{r['queries']:>10d}{r['seconds']:>9.1f}"
        )
    n_out = int((~truth).sum())
    if n_out < 1000:
        print(
            f"(with {n_out} non-members, TPR at 0.1% FPR is the TPR at zero false positives; "
            "AUC 0.5 is guessing)"
        )
    if args.roc and curves:
        from advml.report.privacy_figures import roc_figure

        Path(args.roc).write_bytes(roc_figure(curves, n_non_members=n_out))
        print(f"wrote {args.roc}")
    if args.json:
        numbers = {
            "target": setup["info"],
            "n_members": int(truth.sum()),
            "n_non_members": n_out,
            "attacks": rows,
            "roc": curves,
        }
        Path(args.json).write_text(json.dumps(numbers, indent=1, default=_plain))
        print(f"wrote {args.json}")
    return 0


def _plain(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _shadow_wrapper(args: argparse.Namespace) -> Any:
    """Shadows answer like the attacked API: same access and output defence."""
    if args.access == "white-box" and args.defence == "none":
        return None
    return lambda shadow: _as_attacked(shadow, args)


def _membership_setup(args: argparse.Namespace) -> dict[str, Any]:
    """Members, non-members, the attacker's data and how shadows are trained."""
    import numpy as np

    from advml.audit.reference import TRAINING, default_architecture
    from advml.data import load_dataset
    from advml.models import TorchClassifier, build_architecture, train
    from advml.models.io import load_model

    ds = load_dataset(args.dataset)
    rng = np.random.default_rng(args.seed)
    if args.model:
        model = load_model(args.model, trust=args.trust_model_file)
        n_in = min(args.n_eval, len(ds.x_train))
        n_out = min(args.n_eval, len(ds.x_test) - 2)
        if n_out < 1:
            raise ValueError(f"dataset {ds.name!r} has too few test records to score")
        members = rng.choice(len(ds.x_train), n_in, replace=False)
        order = rng.permutation(len(ds.x_test))
        non_members, rest = order[:n_out], order[n_out:]
        x = np.concatenate([ds.x_train[members], ds.x_test[non_members]])
        y = np.concatenate([ds.y_train[members], ds.y_test[non_members]])
        truth = np.r_[np.ones(n_in, bool), np.zeros(n_out, bool)]
        aux = (ds.x_test[rest], ds.y_test[rest])
        return {
            "model": model,
            "dataset": ds.name,
            "story": f"{args.model}, taken to be trained on the training split of {ds.name}: "
            f"{n_in} training records (members) against {n_out} test records (non-members); "
            f"the attacker's own data: the other {len(rest)} test records",
            "x": x,
            "y": y,
            "is_member": truth,
            "aux": aux,
            "pool_x": np.concatenate([x, aux[0]]),
            "pool_y": np.concatenate([y, aux[1]]),
            "train_fn": None,
            "info": {"source": "file", "file": args.model},
        }
    x_all = np.concatenate([ds.x_train, ds.x_test])
    y_all = np.concatenate([ds.y_train, ds.y_test])
    n = args.target_size
    if 2 * n > len(x_all):
        raise ValueError(
            f"--target-size {n} needs a pool of {2 * n} records; {ds.name} has {len(x_all)}"
        )
    order = rng.permutation(len(x_all))
    pool, rest = order[: 2 * n], order[2 * n :]
    truth = np.zeros(2 * n, bool)
    truth[rng.choice(2 * n, n, replace=False)] = True
    arch = default_architecture(ds)
    recipe = TRAINING[arch]
    epochs = args.epochs or recipe.epochs
    show = not args.quiet

    def train_fn(xs: np.ndarray, ys: np.ndarray, seed: int) -> TorchClassifier:
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = build_architecture(arch, input_shape=ds.input_shape, n_classes=ds.n_classes)
        net = TorchClassifier(
            module, input_shape=ds.input_shape, n_classes=ds.n_classes, bounds=ds.bounds
        )
        train(
            net,
            xs,
            ys,
            epochs=epochs,
            batch_size=recipe.batch_size,
            lr=recipe.lr,
            val_fraction=0.0,
            patience=None,
            seed=seed,
            show_progress=show,
            desc="training",
        )
        return net

    x, y = x_all[pool], y_all[pool]
    model = train_fn(x[truth], y[truth], args.seed)
    train_acc = float((model.predict(x[truth]) == y[truth]).mean())
    test_acc = float((model.predict(x[~truth]) == y[~truth]).mean())
    model.reset_queries()
    return {
        "model": model,
        "dataset": ds.name,
        "story": f"a {arch} trained here for {epochs} epochs on {n} records (members; "
        f"accuracy {train_acc:.1%}) of a pool of {2 * n}, the other {n} non-members "
        f"(accuracy {test_acc:.1%}); the attacker's own data: {len(rest)} other records",
        "x": x,
        "y": y,
        "is_member": truth,
        "aux": (x_all[rest], y_all[rest]),
        "pool_x": x,
        "pool_y": y,
        "train_fn": train_fn,
        "info": {
            "source": "trained",
            "architecture": arch,
            "epochs": epochs,
            "train_accuracy": train_acc,
            "non_member_accuracy": test_acc,
        },
    }


# -- advml invert -------------------------------------------------------------------------


def _invert(args: argparse.Namespace) -> int:
    import numpy as np

    from advml import registry
    from advml.audit.reference import reference_model
    from advml.data import load_dataset
    from advml.models.io import load_model
    from advml.privacy.inversion import evaluate_inversion, independent_judge

    for option, value in (("--out", args.out), ("--json", args.json)):
        if value:
            output_file(option, value)
    settings = dict(args.settings)
    if args.steps is not None:
        settings["steps"] = args.steps
    settings.setdefault("gradient", args.gradient)
    settings.setdefault("seed", args.seed)
    attack = registry.create("inversion", "mi_face", **settings)
    ds = load_dataset(args.dataset)
    if args.model:
        model = load_model(args.model, trust=args.trust_model_file)
    else:
        model, _ = reference_model(ds, seed=args.seed, show_progress=not args.quiet)
    if args.classes:
        try:
            classes = np.array([int(c) for c in args.classes])
        except ValueError:
            raise ValueError(f"--classes must be class indices, got {args.classes}") from None
    else:
        classes = np.arange(ds.n_classes)
    target = _as_attacked(model, args)
    result = attack.invert(target, classes)  # type: ignore[attr-defined]
    judge = independent_judge(
        ds.x_test, ds.y_test, bounds=ds.bounds, input_shape=ds.input_shape, seed=args.seed
    )
    judged = evaluate_inversion(result, judge, ds.x_train, ds.y_train)
    print(f"{attack!r} against {_describe(target)} on {ds.name}")
    print(f"  gradients               {result.gradient}")
    print(f"  queries                 {result.queries}")
    print(f"  target's confidence     {float(np.nanmean(result.confidence)):.1%} (mean)")
    print(
        f"  judge recognises        {judged.recognition_rate:.1%} "
        f"({int((judged.predicted == result.classes).sum())} of {len(result.classes)} classes)"
    )
    print(f"  SSIM to class mean      {float(np.nanmean(judged.ssim_to_mean)):.3f} (mean)")
    print(f"  MSE to class mean       {float(judged.mse_to_mean.mean()):.4f} (mean)")
    print(f"  time                    {result.seconds:.1f} s")
    wrong = [
        f"{ds.class_names[c]} seen as {ds.class_names[p]}"
        for c, p in zip(result.classes, judged.predicted, strict=True)
        if c != p
    ]
    if wrong:
        print(f"  not recognised          {', '.join(wrong)}")
    if args.out:
        from advml.report.privacy_figures import inversion_grid

        png = inversion_grid(
            result.images,
            judged.class_means,
            result.classes,
            ds.class_names,
            ds.bounds,
            judged.predicted,
        )
        Path(args.out).write_bytes(png)
        print(f"wrote {args.out}")
    if args.json:
        numbers = {
            "inversion": result.summary(),
            "evaluation": judged.summary(),
            "per_class": [
                {
                    "class": int(c),
                    "judged": int(p),
                    "confidence": float(conf),
                    "ssim_to_mean": float(s),
                    "mse_to_mean": float(e),
                }
                for c, p, conf, s, e in zip(
                    result.classes,
                    judged.predicted,
                    result.confidence,
                    judged.ssim_to_mean,
                    judged.mse_to_mean,
                    strict=True,
                )
            ],
        }
        Path(args.json).write_text(json.dumps(numbers, indent=1, default=_plain))
        print(f"wrote {args.json}")
    return 0
