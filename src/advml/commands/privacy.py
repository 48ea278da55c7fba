"""``advml membership`` and ``advml invert``: what a model gives away about its data."""

from __future__ import annotations

import argparse
import contextlib
import json
import re
from collections.abc import Iterator
from typing import Any

from advml.commands import Handler
from advml.commands._common import (
    add_data_args,
    add_device_args,
    add_executor_args,
    add_model_file_args,
    add_output_defence_args,
    add_settings_arg,
    add_target_args,
    announce,
    executor_from_args,
    list_components,
    load_data_from_args,
    load_model_file,
    names,
    on_device,
    output_file,
    with_output_defence,
)

__all__ = ["add_commands"]

_DEFAULT_ATTACKS = ("loss_threshold", "confidence_threshold", "modified_entropy", "label_only")


def add_commands(sub: Any) -> dict[str, Handler]:
    m = sub.add_parser(
        "membership",
        help="membership inference: tell the model's training records from others",
        description="Run membership-inference attacks and report how well they tell "
        "members (training records) from non-members: AUC, TPR at 0.1% and 1% FPR, "
        "balanced accuracy and membership advantage. Without --model a target is trained "
        "here on --target-size records of a pool of twice that many drawn from the whole "
        "dataset (the other half are the non-members; the attacker knows the pool, not "
        "the split: Carlini et al. 2022's setting). With --model the model is taken to "
        "have been trained on the dataset's training split (members) and not on its test "
        "split (non-members).",
    )
    _model_args(m)
    add_target_args(m)
    m.add_argument(
        "--attacks",
        type=names,
        default=_DEFAULT_ATTACKS,
        help="membership attacks, comma-separated (default "
        f"{','.join(_DEFAULT_ATTACKS)}; also entropy_threshold, shadow, lira, rmia); "
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
        "--shadows",
        type=int,
        help="shadow models of 'shadow' and 'lira', reference models of 'rmia' (their "
        "defaults: 4, 16, 2)",
    )
    _defence_args(m)
    add_executor_args(m)
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
    _model_args(v, classes_flag="--model-classes")  # --classes: the classes to invert
    v.add_argument(
        "--classes", type=names, help="classes to reconstruct, e.g. 0,3,7 (default: all)"
    )
    add_data_args(v)  # after --classes: here that flag names the classes to invert
    v.add_argument("--steps", type=int, help="descent steps (MI-Face default 200)")
    v.add_argument("--gradient", choices=("auto", "white-box", "zeroth-order"), default="auto")
    _defence_args(v)
    add_settings_arg(v, "MI-Face")
    v.add_argument("--out", metavar="PNG", help="write the reconstructions beside the class means")
    v.add_argument("--json", help="write the numbers to this JSON file")
    return {"membership": _membership, "invert": _invert}


def _model_args(p: argparse.ArgumentParser, *, classes_flag: str = "--classes") -> None:
    from advml.commands._common import _state_default_dataset

    _state_default_dataset(p, "digits")
    p.add_argument(
        "--dataset",
        default="digits",
        help="a dataset name (advml datasets), an image folder, a .csv/.parquet table or "
        "an .npz archive (docs/datasets.md); default digits",
    )
    p.add_argument("--model", metavar="FILE", help="model file (any format: docs/models.md)")
    add_model_file_args(p, classes_flag=classes_flag)
    p.add_argument(
        "--trust-model-file",
        action="store_true",
        help="allow pickle/joblib model files; they can run code when loaded",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of data, models, attacks (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_device_args(p)
    if classes_flag == "--classes":
        add_data_args(p)


def _load_data(args: argparse.Namespace, *, classes_to_invert: bool = False) -> Any:
    """``--dataset`` with the data flags (a name or the user's files, docs/datasets.md).

    ``advml invert``'s ``--classes`` names the classes to reconstruct, not the class
    folders of an image folder: there the folders' order comes from ``--model-classes``."""
    if classes_to_invert:
        args = argparse.Namespace(**{**vars(args), "classes": None})
    return load_data_from_args(args, default="digits")


def _file_model(args: argparse.Namespace, ds: Any) -> Any:
    """``--model FILE`` read with the model flags, bounded like the data, on ``--device``."""
    from advml.models.base import adopt_data_bounds

    model = load_model_file(args, ds)
    adopt_data_bounds(model, ds)
    return on_device(model, args)


def _defence_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--access",
        choices=("white-box", "scores", "labels"),
        default="white-box",
        help="what the attacker sees: the model itself, a prediction API returning scores "
        "(no gradients), or labels only (default white-box)",
    )
    add_output_defence_args(p)


def _as_attacked(model: Any, args: argparse.Namespace) -> Any:
    """The model as the attacker sees it: access restriction, then output defence."""
    from advml.models.access import restrict_access

    return with_output_defence(restrict_access(model, args.access), args)


def _describe(model: Any) -> str:
    """The model's own one-line description (every adapter has one), else its type."""
    describe = getattr(model, "describe", None)
    return str(describe()) if callable(describe) else type(model).__name__


# -- advml membership ---------------------------------------------------------------------


def _membership(args: argparse.Namespace) -> int:
    if not getattr(args, "list", False):  # first, before torch is imported
        announce(
            f"advml membership: membership-inference attacks on {args.dataset} "
            f"(training the target and shadow models as needed); the default run takes about "
            f"2 min on a 2-core CPU (the bars below show the ETA)"
        )
    from advml.models.reference import TRAINING, default_architecture
    from advml.privacy.membership import MembershipSetup, evaluate_membership, membership_attacks
    from advml.runtime.files import atomic_write
    from advml.runtime.plain import plain

    if args.list:
        return list_components(
            "membership",
            width=22,
            needs=lambda cls: "scores" if getattr(cls, "needs_scores", True) else "labels",
            needs_width=8,
        )
    for option, value in (("--json", args.json), ("--roc", args.roc)):
        if value:
            output_file(option, value)
    for flag, value, low in (("--target-size", args.target_size, 2), ("--n-eval", args.n_eval, 1)):
        if value < low:
            raise ValueError(f"{flag} must be >= {low}, got {value}")
    if args.epochs is not None and args.epochs < 1:
        raise ValueError(f"--epochs must be >= 1, got {args.epochs}")
    if args.shadows is not None and args.shadows < 2:
        raise ValueError(f"--shadows must be >= 2, got {args.shadows}")
    with _flags_named():
        attacks = membership_attacks(
            args.attacks, dict(args.settings), seed=args.seed, n_shadow=args.shadows
        )
    ds = _load_data(args)  # a name or the user's files, read before any work
    # Started (and a cluster address checked) before the target is trained.
    executor = executor_from_args(args)
    if args.target_url or args.target_config:
        from advml.commands._common import target_model

        model = target_model(args, ds)
        with _flags_named():
            setup = MembershipSetup.from_splits(
                model, ds, n_eval=args.n_eval, seed=args.seed, name=model.describe()
            )
    elif args.model:
        model = _file_model(args, ds)
        with _flags_named():
            setup = MembershipSetup.from_splits(
                model, ds, n_eval=args.n_eval, seed=args.seed, name=args.model
            )
    else:
        arch = default_architecture(ds)
        recipe = TRAINING[arch]
        with _flags_named():
            setup = MembershipSetup.trained_here(
                ds,
                architecture=arch,
                target_size=args.target_size,
                epochs=args.epochs or recipe.epochs,
                lr=recipe.lr,
                batch_size=recipe.batch_size,
                seed=args.seed,
                show_progress=not args.quiet,
            )
    plain_view = args.access == "white-box" and args.defence == "none"
    with executor:
        report = evaluate_membership(
            setup,
            attacks,
            view=None if plain_view else (lambda m: _as_attacked(m, args)),
            executor=executor,
        )
    _print_membership(report)
    ran = executor.describe()
    print(f"executor: {ran['executor']}, {ran['workers']} worker(s)")
    n_out = setup.n_non_members
    if args.roc and report.curves():
        from advml.report.privacy_figures import roc_figure

        atomic_write(args.roc, roc_figure(report.curves(), n_non_members=n_out))
        print(f"wrote {args.roc}")
    if args.json:
        atomic_write(args.json, json.dumps(plain({**report.to_dict(), "run": ran}), indent=1))
        print(f"wrote {args.json}")
    return 0


# The API's parameter names and the flags that set them.
_FLAGS = {
    "attacks": "--attacks",
    "settings": "--set",
    "n_shadow": "--shadows",
    "target_size": "--target-size",
    "n_eval": "--n-eval",
    "epochs": "--epochs",
}


@contextlib.contextmanager
def _flags_named() -> Iterator[None]:
    """Re-raise the API's ValueErrors naming the flag the user typed, not the parameter."""
    try:
        yield
    except ValueError as e:
        text = str(e)
        for param, flag in _FLAGS.items():
            text = re.sub(rf"^{param}\b", flag, text)
        raise ValueError(text) from None


def _print_membership(report: Any) -> None:
    setup = report.setup
    print(f"target: {_describe(report.target)} on {setup.dataset}")
    print(f"  {setup.story}")
    print(f"  scored: {setup.n_members} members, {setup.n_non_members} non-members")
    print(
        f"\n{'attack':<22}{'AUC':>7}{'TPR@0.1%':>10}{'TPR@1%':>9}{'bal.acc':>9}"
        f"{'advantage':>11}{'queries':>10}{'seconds':>9}"
    )
    for name, outcome in report.outcomes.items():
        m = outcome.metrics
        if m is None:
            print(f"{name:<22}skipped: {outcome.skipped}")
            continue
        print(
            f"{name:<22}{m.auc:>7.3f}{m.tpr_at_0_1_fpr:>10.3f}{m.tpr_at_1_fpr:>9.3f}"
            f"{m.balanced_accuracy:>9.3f}{m.advantage:>11.3f}{outcome.queries:>10d}"
            f"{outcome.seconds:>9.1f}"
        )
    if setup.n_non_members < 1000:
        print(
            f"(with {setup.n_non_members} non-members, TPR at 0.1% FPR is the TPR at zero "
            "false positives; AUC 0.5 is guessing)"
        )


# -- advml invert -------------------------------------------------------------------------


def _invert(args: argparse.Namespace) -> int:
    if not getattr(args, "list", False):  # first, before torch is imported
        announce(
            f"advml invert: reconstruct a representative input of each class of {args.dataset} "
            f"from the model; the default run takes under a minute on a 2-core CPU"
        )
    import numpy as np

    from advml import registry
    from advml.models.reference import reference_model
    from advml.privacy.inversion import invert_and_judge
    from advml.runtime.files import atomic_write
    from advml.runtime.plain import plain

    for option, value in (("--out", args.out), ("--json", args.json)):
        if value:
            output_file(option, value)
    settings = dict(args.settings)
    if args.steps is not None:
        settings["steps"] = args.steps
    settings.setdefault("gradient", args.gradient)
    settings.setdefault("seed", args.seed)
    attack = registry.create("inversion", "mi_face", **settings)
    ds = _load_data(args, classes_to_invert=True)
    if args.model:
        model = _file_model(args, ds)
    else:
        model, _ = reference_model(ds, seed=args.seed, show_progress=not args.quiet)
        model = on_device(model, args)
    if args.classes:
        try:
            classes = np.array([int(c) for c in args.classes])
        except ValueError:
            raise ValueError(f"--classes must be class indices, got {args.classes}") from None
    else:
        classes = np.arange(ds.n_classes)
    target = _as_attacked(model, args)
    judged = invert_and_judge(
        attack,
        target,
        classes,
        x_judge=ds.x_test,
        y_judge=ds.y_test,
        x_real=ds.x_train,
        y_real=ds.y_train,
        seed=args.seed,
    )
    result, evaluation = judged.result, judged.evaluation
    numbers = judged.summary()
    means = {**numbers["inversion"], **numbers["evaluation"]}
    print(f"{attack!r} against {_describe(target)} on {ds.name}")
    print(f"  gradients               {result.gradient}")
    print(f"  queries                 {result.queries}")
    print(f"  target's confidence     {means['mean_confidence']:.1%} (mean)")
    print(
        f"  judge recognises        {evaluation.recognition_rate:.1%} "
        f"({int((evaluation.predicted == result.classes).sum())} of {len(result.classes)} "
        "classes)"
    )
    if ds.is_image:
        print(f"  SSIM to class mean      {means['mean_ssim_to_class_mean']:.3f} (mean)")
    else:  # SSIM compares image windows; a table's record has none
        print("  SSIM to class mean      n/a (not images)")
    print(f"  MSE to class mean       {means['mean_mse_to_class_mean']:.4f} (mean)")
    print(f"  time                    {result.seconds:.1f} s")
    wrong = [
        f"{ds.class_names[c]} seen as {ds.class_names[p]}"
        for c, p in zip(result.classes, evaluation.predicted, strict=True)
        if c != p
    ]
    if wrong:
        print(f"  not recognised          {', '.join(wrong)}")
    if args.out:
        from advml.report.privacy_figures import inversion_grid

        png = inversion_grid(
            result.images,
            evaluation.class_means,
            result.classes,
            ds.class_names,
            ds.bounds,
            evaluation.predicted,
        )
        atomic_write(args.out, png)
        print(f"wrote {args.out}")
    if args.json:
        atomic_write(args.json, json.dumps(plain(numbers), indent=1))
        print(f"wrote {args.json}")
    return 0
