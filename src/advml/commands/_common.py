"""Arguments and loading shared by the sub-commands."""

from __future__ import annotations

import argparse
from typing import Any

import yaml

__all__ = [
    "add_model_args",
    "add_settings_arg",
    "floats",
    "load_model_and_data",
    "names",
    "setting",
]


def floats(text: str) -> tuple[float, ...]:
    """Argument type: ``"0,0.1,0.3"`` -> ``(0.0, 0.1, 0.3)``."""
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers separated by commas, got {text!r}"
        ) from None


def names(text: str) -> tuple[str, ...]:
    """Argument type: ``"fgsm, pgd"`` -> ``("fgsm", "pgd")``."""
    return tuple(v.strip() for v in text.split(",") if v.strip())


def setting(text: str) -> tuple[str, Any]:
    """Argument type: ``KEY=VALUE`` with the value read as YAML (numbers, lists, ...)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise argparse.ArgumentTypeError(
            f"the value of {key.strip()!r} in {text!r} is not valid YAML ({problem}); "
            f"write a number, a word, or a list such as [1, 2]"
        ) from None
    return key.strip(), parsed


def add_settings_arg(p: argparse.ArgumentParser, what: str = "attack") -> None:
    """``--set KEY=VALUE`` (repeatable) for any setting of a registered component."""
    p.add_argument(
        "--set",
        dest="settings",
        action="append",
        type=setting,
        default=[],
        metavar="KEY=VALUE",
        help=f"any other {what} setting, e.g. --set steps=100 --set norm=2 (repeatable)",
    )


def add_model_args(p: argparse.ArgumentParser, *, default_dataset: str = "mnist-5k") -> None:
    """``--dataset``, ``--model``, ``--trust-model-file``, ``--seed``, ``--quiet``."""
    p.add_argument(
        "--dataset",
        default=None,
        help=f"dataset name (see 'advml datasets'); default {default_dataset}",
    )
    p.set_defaults(default_dataset=default_dataset)
    p.add_argument(
        "--model",
        metavar="FILE",
        help="model file (.pt written by advml, .skops); default: a reference model "
        "trained on the dataset (cached under $ADVML_HOME/models)",
    )
    p.add_argument(
        "--trust-model-file",
        action="store_true",
        help="allow pickle/joblib model files; they can run code when loaded, so only "
        "for files you made yourself",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of data subset, model, attacks (default 0)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def load_model_and_data(args: argparse.Namespace) -> tuple[Any, Any]:
    """The model (``--model`` or the cached reference model) and the dataset."""
    from advml.data import load_dataset
    from advml.models.io import load_model
    from advml.models.reference import reference_model

    ds = load_dataset(args.dataset or getattr(args, "default_dataset", "mnist-5k"))
    if args.model:
        model = load_model(args.model, trust=args.trust_model_file)
    else:
        model, _ = reference_model(ds, seed=args.seed, show_progress=not args.quiet)
    return model, ds
