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
    "add_data_args",
    "add_device_args",
    "add_executor_args",
    "add_model_args",
    "add_model_file_args",
    "add_output_defence_args",
    "add_settings_arg",
    "add_target_args",
    "announce",
    "executor_from_args",
    "floats",
    "list_components",
    "load_data_from_args",
    "load_model_and_data",
    "load_model_file",
    "model_file_options",
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
        help="model file: advml .pt, TorchScript, torch.export .pt2, ONNX, state dict "
        "(.pt/.safetensors, with --model-factory), .skops, XGBoost .json/.ubj, LightGBM "
        ".txt (docs/models.md); default: a reference model trained on the dataset "
        "(cached under $ADVML_HOME/models)",
    )
    p.add_argument(
        "--trust-model-file",
        action="store_true",
        help="allow pickle/joblib model files; they can run code when loaded, so only "
        "for files you made yourself",
    )
    add_model_file_args(p)
    p.add_argument(
        "--seed", type=int, default=0, help="seed of data subset, model, attacks (default 0)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_device_args(p)
    add_data_args(p)


def add_data_args(p: argparse.ArgumentParser) -> None:
    """The flags of ``--dataset`` given as the user's files (docs/datasets.md):
    ``--label-column``, ``--limit``, ``--bounds``, ``--classes``, ``--input-shape``,
    ``--eps-scale``. A flag another group already added (the model flags share
    ``--bounds``, ``--classes`` and ``--input-shape``) is read from there, not added twice."""
    have = set(p._option_string_actions)

    def add(flag: str, **kwargs: Any) -> None:
        if flag not in have:
            p.add_argument(flag, **kwargs)

    add(
        "--label-column",
        metavar="NAME",
        help="the label column of a --dataset table (.csv/.parquet); CSV default: the last",
    )
    add(
        "--limit",
        type=int,
        metavar="N",
        help="use at most N samples of each split of --dataset: a stratified sample "
        "(classes keep their shares), seeded by --seed",
    )
    add(
        "--bounds",
        metavar="LOW,HIGH|FILE",
        help="valid input range: LOW,HIGH for every feature, or a .npy/.json/.csv file with "
        "one low and high per feature (or per channel), or 'data' for each feature's "
        "min/max; default: pixels 0..1 for image folders, per-feature min/max for tables",
    )
    add(
        "--classes",
        metavar="NAMES",
        help="comma-separated class names in label order (image folder: the class folders; "
        "default: sorted folder names)",
    )
    add(
        "--input-shape",
        metavar="C,H,W",
        help="shape images of a --dataset folder are resized to (C 1: grayscale, 3: RGB); "
        "default: the first image's",
    )
    add(
        "--eps-scale",
        choices=("relative", "absolute"),
        default=None,
        help="read eps as a fraction of each feature's range (relative, the default: 0.1 "
        "is a tenth of every range) or in the data's units (absolute)",
    )


def data_bounds_arg(text: str | None) -> Any:
    """``--bounds``: ``None``, ``"data"``, a ``LOW,HIGH`` pair, or a bounds file path."""
    if text is None or text == "data":
        return text
    parts = text.split(",")
    if len(parts) == 2:
        try:
            return (float(parts[0]), float(parts[1]))
        except ValueError:
            pass
    if not os.path.exists(text):
        raise ValueError(
            f"--bounds {text!r} is neither LOW,HIGH (e.g. 0,1), 'data', nor an existing "
            ".npy/.json/.csv file"
        )
    return text


def _shape_arg(value: Any) -> tuple[int, ...] | None:
    if value is None or isinstance(value, tuple | list):
        return None if value is None else tuple(int(v) for v in value)
    try:
        return tuple(int(v) for v in str(value).split(","))
    except ValueError:
        raise ValueError(f"--input-shape must be C,H,W (e.g. 3,32,32), got {value!r}") from None


def _classes_arg(value: Any) -> list[str] | None:
    """Class names from ``--classes`` (a bare count names no folder: ignored here)."""
    if value is None or isinstance(value, int):
        return None
    names = list(value) if isinstance(value, list | tuple) else str(value).split(",")
    names = [str(n).strip() for n in names if str(n).strip()]
    return None if len(names) == 1 and names[0].isdigit() else names


def load_data_from_args(args: argparse.Namespace, default: str = "mnist-5k") -> Any:
    """The dataset ``--dataset`` and the data flags name (see :func:`add_data_args`)."""
    from advml.data import load_data

    return load_data(
        args.dataset or getattr(args, "default_dataset", default),
        label_column=_label(getattr(args, "label_column", None)),
        input_shape=_shape_arg(getattr(args, "input_shape", None)),
        classes=_classes_arg(
            getattr(args, "classes", None) or getattr(args, "model_classes", None)
        ),
        bounds=data_bounds_arg(getattr(args, "bounds", None)),
        limit=getattr(args, "limit", None),
        seed=getattr(args, "seed", None) or 0,
    )


def _label(value: str | None) -> str | int | None:
    """A column name, or an index when it is a number (CSV files without a header)."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return value


def add_model_file_args(p: argparse.ArgumentParser, *, classes_flag: str = "--classes") -> None:
    """What a model file does not carry: ``--model-factory``, ``--model-kwargs``,
    ``--input-shape``, ``--classes`` (``classes_flag``), ``--bounds``, ``--mean``, ``--std``
    (read by :func:`model_file_options`; a ``model.yaml`` beside the file can give them).

    A flag the parser already has (the dataset's ``--input-shape``, ``--classes`` or
    ``--bounds``, which describe the same inputs) is not added twice; the model then
    reads that one.
    """
    g = p.add_argument_group(
        "model file settings (what the file does not carry; or a model.yaml beside it)"
    )

    def add(flag: str, **kwargs: Any) -> None:
        if flag not in p._option_string_actions:
            g.add_argument(flag, **kwargs)

    add(
        "--model-factory",
        metavar="MODULE:CALLABLE",
        help="builds the network a state dict (.pt/.safetensors) is loaded into, e.g. "
        "mynets:Net (imported also from the working folder); this runs that code",
    )
    add(
        "--model-kwargs",
        metavar="JSON",
        help="keyword arguments of --model-factory as JSON, e.g. '{\"num_classes\": 10}'",
    )
    add("--input-shape", metavar="SHAPE", help="shape of one input, e.g. 3,32,32")
    add(
        classes_flag,
        dest="model_classes",
        metavar="N|NAMES",
        help="number of classes, or class names separated by commas",
    )
    add("--bounds", metavar="MIN,MAX", help="valid input range, e.g. 0,1")
    add(
        "--mean",
        metavar="VALUES",
        help="normalisation inside the model, (x - mean) / std: one value or one per "
        "channel, e.g. 0.485,0.456,0.406 (inputs stay in --bounds units)",
    )
    add("--std", metavar="VALUES", help="see --mean, e.g. 0.229,0.224,0.225")


def model_file_options(args: argparse.Namespace, ds: Any = None) -> dict[str, Any]:
    """Keyword arguments of :func:`advml.models.load_model` from the model flags, with
    the dataset's input shape, class count and bounds as defaults."""
    options: dict[str, Any] = {
        "trust": bool(getattr(args, "trust_model_file", False)),
        "factory": getattr(args, "model_factory", None),
        "factory_kwargs": getattr(args, "model_kwargs", None),
        "input_shape": getattr(args, "input_shape", None),
        "classes": getattr(args, "model_classes", None),
        "bounds": _pair_or_none(getattr(args, "bounds", None)),
        "mean": getattr(args, "mean", None),
        "std": getattr(args, "std", None),
    }
    if getattr(args, "device", None) is not None:
        options["device"] = args.device
    if ds is not None:
        from advml.models.formats.spec import dataset_defaults

        options["defaults"] = dataset_defaults(ds)
    return options


def _pair_or_none(value: Any) -> Any:
    """``--bounds`` for the model: a ``min,max`` pair; a file of per-feature bounds
    (a dataset option) is left to the data."""
    if isinstance(value, str) and os.path.isfile(value):
        return None
    return value


def load_model_file(args: argparse.Namespace, ds: Any = None) -> Any:
    """``load_model(args.model, ...)`` with the model flags; the load report is printed
    to stderr (unless ``--quiet``)."""
    import sys

    from advml.models.io import how_loaded, load_model

    model = load_model(args.model, **model_file_options(args, ds))
    report = how_loaded(model)
    if report is not None and not getattr(args, "quiet", False):
        print(f"model: {report}", file=sys.stderr)
    return model


def _state_default_dataset(p: argparse.ArgumentParser, dataset: str) -> None:
    """Begin the command's ``--help`` text with its default dataset (the defaults differ
    between commands: mnist-5k for the evasion ones, digits for the slower families)."""
    if not (p.description or "").startswith("Default"):
        p.description = f"Default dataset: {dataset}. {p.description or ''}".strip()


def load_model_and_data(args: argparse.Namespace) -> tuple[Any, Any]:
    """The model (``--model`` or the cached reference model) and the dataset."""
    from advml.models.base import adopt_data_bounds
    from advml.models.reference import reference_model

    chosen_device(args)  # a device that does not exist: said before any work
    ds = load_data_from_args(args)
    if getattr(args, "target_url", None) or getattr(args, "target_config", None):
        return target_model(args, ds), ds
    if args.model:
        model = load_model_file(args, ds)
        adopt_data_bounds(model, ds)
    else:
        model, _ = reference_model(ds, seed=args.seed, show_progress=not args.quiet)
    return on_device(model, args), ds


# -- --device and --precision ---------------------------------------------------------
def add_device_args(p: argparse.ArgumentParser) -> None:
    """``--device`` (auto, cpu, cuda, cuda:N) and ``--precision`` (float32, bf16)."""
    p.add_argument(
        "--device",
        default=None,
        metavar="DEVICE",
        help="where PyTorch models run: auto (default: the GPU when there is one), cpu, "
        "cuda or cuda:N",
    )
    p.add_argument(
        "--precision",
        choices=("float32", "bf16"),
        default=None,
        help="bf16 runs PyTorch models under autocast (faster on recent GPUs; results "
        "stay float32); default float32",
    )


def chosen_device(args: argparse.Namespace) -> Any:
    """The ``torch.device`` that ``--device`` names (auto when not given); a
    :class:`~advml.runtime.device.DeviceUnavailableError` naming ``--device`` when it does
    not exist here."""
    from advml.runtime.device import resolve_device

    return resolve_device(getattr(args, "device", None), name="--device")


def on_device(model: Any, args: argparse.Namespace) -> Any:
    """``model`` on ``--device`` with ``--precision`` (see
    :func:`advml.runtime.device.place`)."""
    from advml.runtime.device import place

    return place(
        model, getattr(args, "device", None), getattr(args, "precision", None), name="--device"
    )


def add_target_args(p: argparse.ArgumentParser) -> None:
    """``--target-url``, ``--target-config``, ``--max-queries``: a model behind an HTTP API."""
    p.add_argument(
        "--target-url",
        metavar="URL",
        help="attack a model behind an HTTP prediction API (black box) instead of --model; "
        "advml's protocol unless --target-config describes another (see docs/remote.md)",
    )
    p.add_argument(
        "--target-config",
        metavar="FILE",
        help="target.yaml: the API's URL, headers (secrets as ${ENV_VAR}), body, JSON paths",
    )
    p.add_argument(
        "--max-queries",
        type=int,
        metavar="N",
        help="most inputs sent to the API; a plan above it is refused before the first query",
    )


def target_model(args: argparse.Namespace, ds: Any) -> Any:
    """The HTTPClassifier of ``--target-url`` / ``--target-config`` for dataset ``ds``."""
    from advml.models.http import open_target
    from advml.validation import check_number

    if getattr(args, "model", None):
        raise ValueError("give either --model or --target-url/--target-config, not both")
    if args.max_queries is not None:
        check_number("--max-queries", args.max_queries, low=1, integer=True)
    return open_target(
        args.target_url,
        args.target_config,
        input_shape=tuple(ds.input_shape),
        n_classes=ds.n_classes,
        bounds=ds.bounds,
        query_budget=args.max_queries,
        seed=getattr(args, "seed", None) or 0,
    )


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


# -- executors (issue 16) ------------------------------------------------------------------


def add_executor_args(p: argparse.ArgumentParser) -> None:
    """``--executor``, ``--ray-address``, ``--workers``: where independent tasks run."""
    p.add_argument(
        "--executor",
        choices=("local", "process", "ray"),
        default="local",
        help="where independent tasks (shadow / reference models, shards of attacked inputs) "
        "run: in this process (default), a pool of processes, or Ray; the figures do not "
        "depend on it",
    )
    p.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="with --executor ray: 'auto' (the cluster this machine is in), "
        "'ray://host:10001' (Ray Client); default a local Ray started here",
    )
    p.add_argument(
        "--workers",
        type=int,
        help="tasks at once: processes of --executor process (default the CPU count), "
        "CPUs of a local Ray",
    )


def executor_from_args(args: argparse.Namespace) -> Any:
    """The executor the flags ask for (:func:`advml.runtime.executors.make_executor`),
    with errors that name the flags."""
    from advml.runtime.executors import make_executor

    name = getattr(args, "executor", "local")
    workers = getattr(args, "workers", None)
    address = getattr(args, "ray_address", None)
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    if address is not None and name != "ray":
        raise ValueError(f"--ray-address needs --executor ray (got --executor {name})")
    return make_executor(name, workers=workers, ray_address=address)
