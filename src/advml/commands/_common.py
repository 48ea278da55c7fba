"""Arguments and loading shared by the sub-commands."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from advml.errors import OutputPathError

__all__ = [
    "add_model_args",
    "add_output_defence_args",
    "add_settings_arg",
    "announce",
    "floats",
    "list_components",
    "load_model_and_data",
    "names",
    "output_file",
    "output_folder",
    "setting",
    "with_output_defence",
]

# The output defences a sub-command can put in front of the model (advml.defences.output).
OUTPUT_DEFENCES = ("none", "top_k", "rounding", "labels_only", "noisy_scores")


def announce(text: str) -> None:
    """Say on stderr what a command is about to do and roughly how long it takes; the
    results go to stdout, so a pipe of them stays clean. Silent under ``ADVML_QUIET``
    (``--quiet``). Here, not in advml.runtime, so that a command says it before torch
    is imported (seconds on a busy machine)."""
    if os.environ.get("ADVML_QUIET", "") in ("", "0"):
        print(text, file=sys.stderr, flush=True)


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


def list_components(
    family: str,
    *,
    width: int,
    needs: Callable[[Any], str] | None = None,
    needs_width: int = 0,
    indent: str = "",
) -> int:
    """Print what ``--list`` shows: one line per registered component of ``family``, its
    name padded to ``width``, then ``needs <needs(cls)>`` padded to ``needs_width`` when
    ``needs`` is given, then the first line of its docstring. Returns the exit status 0."""
    from advml import registry

    for name in registry.available(family):
        cls = registry.get(family, name)
        lines = (cls.__doc__ or "").strip().splitlines()
        column = f"needs {needs(cls):<{needs_width}}" if needs is not None else ""
        print(f"{indent}{name:<{width}}{column}{lines[0] if lines else ''}")
    return 0


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


def add_output_defence_args(p: argparse.ArgumentParser) -> None:
    """``--defence NAME`` and ``--defence-set KEY=VALUE``: an output defence in front of
    the model (applied by :func:`with_output_defence`)."""
    p.add_argument(
        "--defence",
        choices=OUTPUT_DEFENCES,
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


def with_output_defence(model: Any, args: argparse.Namespace) -> Any:
    """``model`` behind the output defence that ``--defence`` / ``--defence-set`` name, or
    ``model`` itself for ``--defence none``."""
    if args.defence == "none":
        return model
    from advml import registry

    defence = registry.create("output_defence", args.defence, **dict(args.defence_settings))
    return defence.wrap(model)


def add_model_args(p: argparse.ArgumentParser, *, default_dataset: str = "mnist-5k") -> None:
    """``--dataset``, ``--model``, ``--trust-model-file``, ``--seed``, ``--quiet``."""
    _state_default_dataset(p, default_dataset)
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


def _state_default_dataset(p: argparse.ArgumentParser, dataset: str) -> None:
    """Begin the command's ``--help`` text with its default dataset (the defaults differ
    between commands: mnist-5k for the evasion ones, digits for the slower families)."""
    if not (p.description or "").startswith("Default"):
        p.description = f"Default dataset: {dataset}. {p.description or ''}".strip()


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


# -- output paths: checked before any work, so a long run never ends in a traceback ---
def output_file(
    option: str,
    value: str | os.PathLike[str],
    *,
    suffix: str | None = None,
    default_name: str | None = None,
) -> Path:
    """The file an output option names, checked before any work; missing folders made.

    Parameters
    ----------
    option : str
        The option's name for messages, e.g. ``"--out"``.
    value : str or path-like
        What the user gave.
    suffix : str, optional
        The file must end with it (e.g. ``".npz"``); nothing is appended, so the file
        written is exactly the path printed.
    default_name : str, optional
        When ``value`` is an existing folder (or ends with ``/``), the file is this name
        inside it; without one a folder is refused.

    Raises
    ------
    OutputPathError
        For an empty value, a folder where a file is needed, a wrong suffix, a file in
        the way of a folder, or a folder that cannot be written.
    """
    text = os.fspath(value)
    if not text.strip():
        example = default_name or f"result{suffix or ''}"
        raise OutputPathError(f"{option} is empty; give a file name, e.g. {option} {example}")
    path = Path(text)
    names_a_folder = path.is_dir() or text.endswith(("/", os.sep))
    if names_a_folder:
        if default_name is None:
            raise OutputPathError(
                f"{option} {text} is a folder; give a file name inside it, e.g. "
                f"{option} {path / ('result' + (suffix or ''))}"
            )
        path = path / default_name
    elif suffix is not None and path.suffix.lower() != suffix:
        folder_hint = (
            f" or an existing folder ({default_name} is then written inside it)"
            if default_name
            else ""
        )
        raise OutputPathError(
            f"{option} {text}: give a path ending in {suffix} (the file written is exactly "
            f"that path){folder_hint}, e.g. {option} {path.with_suffix(suffix)}"
        )
    if path.is_dir():
        raise OutputPathError(
            f"{option} {path} is a folder; give a file name, or remove the folder"
        )
    _make_folder(option, text, path.parent)
    if path.exists() and not _can_write(path):
        raise OutputPathError(
            f"{option} {path}: the file exists and cannot be overwritten (permission "
            f"denied); choose another name or change its permissions"
        )
    return path


def output_folder(option: str, value: str | os.PathLike[str]) -> Path:
    """The folder an output option names, checked (and made) before any work.

    Raises
    ------
    OutputPathError
        For an empty value, an existing file of that name, a file in the way of one of
        its parent folders, or a folder that cannot be written.
    """
    text = os.fspath(value)
    if not text.strip():
        raise OutputPathError(f"{option} is empty; give a folder, e.g. {option} advml-audit")
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise OutputPathError(
            f"{option} {text} is a file, but the command writes a folder of files there; "
            f"give a folder path (new or existing), e.g. {option} {path.with_suffix('')}-out"
        )
    _make_folder(option, text, path)
    return path


def _make_folder(option: str, text: str, folder: Path) -> None:
    """Create ``folder`` (and its parents) or say precisely why it cannot be."""
    ancestor = folder
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        raise OutputPathError(
            f"{option} {text}: {ancestor} is a file, not a folder, so nothing can be "
            f"written under it; choose a path in a folder"
        )
    target = folder if folder.exists() else ancestor
    if not _can_write(target):
        raise OutputPathError(
            f"{option} {text}: cannot write in folder {target} (permission denied); "
            f"choose a folder you can write to"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputPathError(
            f"{option} {text}: cannot create folder {folder} ({err.strerror}); choose another path"
        ) from None


def _can_write(path: Path) -> bool:
    """Whether this process may write ``path`` (a file, or files in a folder)."""
    mode = os.W_OK | (os.X_OK if path.is_dir() else 0)
    return os.access(path, mode)
