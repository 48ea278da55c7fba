"""What an audit runs: a plain, validated description that can be written and re-read.

:class:`AuditConfig` is a pydantic dataclass: every field is checked when the config is
made, and every bad field is reported at once (one :class:`ConfigValidationError` whose
message has a ``path: message`` line per problem), not only the first. The checks that
need several fields together (a model file *and* a URL, ``ray_address`` without the ray
executor) run once every field is valid, as pydantic's after-validators do.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from dataclasses import asdict, field, replace
from typing import Any, Literal, TypeVar

from pydantic import (
    ConfigDict,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass

from advml.audit import sections as audit_sections
from advml.errors import AdvmlError
from advml.validation import check_bool, check_choice, check_number

__all__ = ["AuditConfig", "ConfigValidationError"]

_F = TypeVar("_F", bound=Callable[..., Any])


class ConfigValidationError(AdvmlError, ValueError, TypeError):
    """An :class:`AuditConfig` with one or more bad settings.

    ``problems`` lists ``(path, message)`` pairs, one per problem, in field order; the
    message has a line per problem. It is a ``ValueError`` (what callers catch for bad
    input) and a ``TypeError`` (what a wrong type raised before the config collected its
    errors), so code written for either still catches it.
    """

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = list(problems)
        lines = [_problem_line(path, message) for path, message in self.problems]
        if len(lines) == 1:
            text = lines[0]
        else:
            text = f"the audit config has {len(lines)} problems:\n" + "\n".join(
                f"  {line}" for line in lines
            )
        super().__init__(text)


def _problem_line(path: str, message: str) -> str:
    """``path: message``, unless the message already starts with the path (the checks'
    messages name their setting: ``n_samples must be >= 1``)."""
    if not path or message.startswith(path):
        return message
    return f"{path}: {message}"


class _FieldProblem(ValueError):
    """A cross-field check's problem, with the field it is reported under."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


class _Problems(ValueError):
    """Several cross-field problems, raised at once from the after-validator."""

    def __init__(self, problems: list[_FieldProblem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


def _from_pydantic(err: ValidationError) -> ConfigValidationError:
    """pydantic's errors as ``(path, message)`` pairs, in the checks' own words."""
    problems: list[tuple[str, str]] = []
    for e in err.errors():
        path = "".join(
            f"[{part!r}]" if isinstance(part, int) else f".{part}" for part in e["loc"]
        ).lstrip(".")
        cause = (e.get("ctx") or {}).get("error")
        if isinstance(cause, _Problems):
            problems.extend((p.path, str(p)) for p in cause.problems)
        elif isinstance(cause, _FieldProblem):
            problems.append((cause.path, str(cause)))
        elif isinstance(cause, Exception):
            problems.append((path, str(cause)))
        elif e["type"] == "unexpected_keyword_argument":
            known = ", ".join(AuditConfig.__dataclass_fields__)
            problems.append((path, f"no such setting; known: {known}"))
        else:  # pydantic's own type check (a check above let it through)
            problems.append((path, f"{e['msg']}, got {e['input']!r}"))
    return ConfigValidationError(problems)


def _as_value_error(check: _F) -> _F:
    """pydantic collects ``ValueError``s only; the checks raise ``TypeError`` for a
    wrong type (``check_number``), which would escape as one bare error."""

    @functools.wraps(check)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return check(*args, **kwargs)
        except TypeError as err:
            raise ValueError(str(err)) from None

    return wrapped  # type: ignore[return-value]


# n_samples: (low, integer); every count or size of the config.
_NUMBERS: dict[str, tuple[float, bool]] = {
    "n_samples": (1, True),
    "seed": (0, True),
    "examples": (0, True),
    "reference_eps": (0, False),
    "queries_per_input": (1, True),
    "limit": (1, True),
    "max_queries": (1, True),
    "workers": (1, True),
}
_CHOICES: dict[str, tuple[str, ...]] = {
    "architecture": ("cnn", "mlp"),
    "profile": ("default", "quick"),
    "access": ("white-box", "scores", "labels"),
    "eps_scale": ("relative", "absolute"),
    "precision": ("float32", "bf16"),
    "executor": ("local", "process", "ray"),
}
# AuditConfig field -> ModelSpec key (the model-file settings, parsed as load_model does).
_MODEL_KEYS = {
    "model_factory": "factory",
    "model_kwargs": "factory_kwargs",
    "model_input_shape": "input_shape",
    "model_classes": "classes",
    "model_bounds": "bounds",
    "model_mean": "mean",
    "model_std": "std",
}


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class AuditConfig:
    """Settings of an audit; defaults audit a reference CNN on ``mnist-5k``.

    Parameters
    ----------
    dataset : str
        Dataset name (``advml datasets`` lists them).
    model : str, optional
        Path of a model file (``.pt`` written by advml, ``.skops``); ``None`` trains (or
        reuses, from ``$ADVML_HOME/models``) a reference model for ``dataset``.
    trust_model_file : bool
        Allow pickle-based model files, which can run code when loaded. Only the bool
        ``True`` does: a string such as ``"false"`` (quoted in YAML) is refused.
    architecture : {"cnn", "mlp"}, optional
        Reference architecture; default ``cnn`` for images of 16 pixels and more, else ``mlp``.
    n_samples : int
        Test inputs attacked (a stratified, seeded subset of the test split).
    attacks : tuple of str
        Evasion attacks to run over ``eps``.
    eps : tuple of float
        Perturbation sizes (L∞, in the units of the input bounds).
    reference_eps : float
        The ε at which the verdict is stated (0.1: a tenth of the pixel range).
    attack_settings : dict
        Extra settings per attack, e.g. ``{"pgd": {"steps": 40, "restarts": 1}}``.
    seed : int
        Seed of the subset, the reference model and the attacks.
    examples : int
        Number of clean/adversarial pairs shown in the report.
    sections : tuple of str, optional
        Report sections to run (``advml audit --list-sections``); ``None`` runs every
        section that applies to the model.
    section_settings : dict
        Settings per section, e.g. ``{"backdoor": {"fraction": 0.05}}``; each section
        documents its keys and rejects unknown ones.
    profile : {"default", "quick"}
        ``quick`` makes every section use its one-minute settings.
    access : {"white-box", "scores", "labels"}
        What the adversary sees. ``scores`` audits the model as a prediction API that
        returns scores (no gradients), ``labels`` as one that returns labels only; the
        audit then runs only what such an adversary can.
    queries_per_input : int, optional
        Query budget per attacked input of query-based attacks (their ``max_queries``).
    constraints : dict, optional
        What the adversary may change in non-image data, as for
        :class:`~advml.evasion.FeatureConstraints`: ``{"immutable": [0, 3], "switch_on":
        [5], "ranges": {2: [0.0, 0.5]}}`` (flattened feature indices). Every evasion
        attack that honours constraints gets them, the others are skipped with the
        reason, and each result is checked against them.
    model_factory, model_kwargs : str, dict, optional
        For a state-dict model file: ``package.module:callable`` that builds the network
        and its keyword arguments (``--model-factory``, ``--model-kwargs``).
    model_input_shape, model_classes, model_bounds, model_mean, model_std : optional
        What the model file does not carry (``--input-shape``, ``--classes``,
        ``--bounds``, ``--mean``, ``--std``; docs/models.md). Default: the sidecar
        beside the file, the file itself, then the dataset.
    label_column : str or int, optional
        The label column of a CSV/Parquet ``dataset`` (CSV default: the last column).
    limit : int, optional
        At most this many samples per split of the dataset, stratified and seeded
        (``--limit``); the report's dataset entry says how many each split kept.
    data_bounds : optional
        The data's valid ranges: ``[low, high]``, per-feature lists ``[[...], [...]]``,
        ``"data"`` (each feature's min/max, with a warning) or a ``.npy``/``.json``/
        ``.csv`` file (docs/datasets.md). Default: the format's own (tables: per feature
        from the data).
    eps_scale : {"relative", "absolute"}
        How ``eps`` is read: ``"relative"`` (default), a fraction of each feature's range
        (``eps_i = eps * (high_i - low_i)``); ``"absolute"``, in the data's units. Both
        agree on data in [0, 1]; the report states which was used.
    target_url : str, optional
        Audit a model behind an HTTP prediction API (black box) instead of a model file;
        ``dataset`` gives the input shape, classes and bounds.
    target_config : str, optional
        A ``target.yaml`` describing the API's protocol (headers, body, JSON paths); see
        docs/remote.md.
    max_queries : int, optional
        Most queries the audit may send to the model; a plan estimated above it is
        refused before the first query, and it is the model's query budget.
    fail_under, fail_over : dict
        Thresholds for CI: ``{"robust_accuracy": 0.5}`` in ``fail_under`` makes
        ``advml audit`` exit with code 3 when that figure is below 0.5 (``fail_over``:
        above). Keys are a verdict number (``robust_accuracy``) or ``section.number``.
    device : str, optional
        Where a PyTorch model that the audit loads or trains runs: ``"auto"`` (the GPU
        when there is one; also what ``None`` means), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        A model given to :func:`~advml.audit.run_audit` stays where it is unless this is
        set.
    precision : {"float32", "bf16"}, optional
        ``bf16`` runs the PyTorch model under autocast (gradient attacks and training);
        ``None`` keeps the model's own (float32 unless the adapter says otherwise).
    executor : {"local", "process", "ray"}
        Where independent tasks run (shadow / reference models of the membership
        section); the figures do not depend on it (docs/scale.md).
    ray_address : str, optional
        With ``executor="ray"``: ``"auto"``, ``"ray://host:port"``; default a local Ray.
    workers : int, optional
        Processes of the ``process`` executor, CPUs of a local Ray.
        A figure with a 95 % interval is compared by the end that is safe for the owner
        (the lower end for ``fail_under``, the upper for ``fail_over``).
    save_examples : bool
        Write each section's per-input results (Parquet, or .npz without pyarrow) and
        the adversarial inputs beside report.json (docs/audit.md, Per-input records).

    Raises
    ------
    ConfigValidationError
        Listing every bad setting (``path: message`` a line); a ``ValueError``.
    """

    dataset: str = "mnist-5k"
    model: str | None = None
    # It switches unpickling on: a truthy non-bool ("false") must not (strict, no coercion).
    trust_model_file: StrictBool = False
    architecture: Literal["cnn", "mlp"] | None = None
    n_samples: int = 500
    attacks: tuple[str, ...] = ("fgsm", "pgd")
    eps: tuple[float, ...] = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
    reference_eps: float = 0.1
    attack_settings: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {"pgd": {"steps": 40}}
    )
    seed: int = 0
    examples: int = 8
    sections: tuple[str, ...] | None = None
    section_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    profile: Literal["default", "quick"] = "default"
    access: Literal["white-box", "scores", "labels"] = "white-box"
    queries_per_input: int | None = None
    constraints: dict[str, Any] | None = None
    fail_under: dict[str, float] = field(default_factory=dict)
    fail_over: dict[str, float] = field(default_factory=dict)
    model_factory: str | Callable[..., Any] | None = None
    model_kwargs: dict[str, Any] | None = None
    model_input_shape: list[int] | None = None
    model_classes: int | list[str] | None = None
    model_bounds: list[float] | None = None
    model_mean: list[float] | None = None
    model_std: list[float] | None = None
    label_column: str | int | None = None
    limit: int | None = None
    data_bounds: Any = None
    eps_scale: Literal["relative", "absolute"] = "relative"
    device: str | None = None
    precision: Literal["float32", "bf16"] | None = None
    target_url: str | None = None
    target_config: str | None = None
    max_queries: int | None = None
    executor: Literal["local", "process", "ray"] = "local"
    ray_address: str | None = None
    workers: int | None = None
    save_examples: StrictBool = False

    # -- one field at a time (mode="before": the checks see what the user gave) ------------

    @field_validator("trust_model_file", "save_examples", mode="before")
    @classmethod
    @_as_value_error
    def _real_bool(cls, value: Any, info: ValidationInfo) -> Any:
        check_bool(str(info.field_name), value)
        return value

    @field_validator(*_NUMBERS, mode="before")
    @classmethod
    @_as_value_error
    def _number(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name not in ("n_samples", "seed", "examples"):
            return None
        name = str(info.field_name)
        low, integer = _NUMBERS[name]
        check_number(name, value, low=low, integer=integer)
        return int(value) if integer else float(value)

    @field_validator(*_CHOICES, mode="before")
    @classmethod
    def _choice(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name in ("architecture", "precision"):
            return None
        check_choice(str(info.field_name), value, _CHOICES[str(info.field_name)])
        return value

    @field_validator("dataset", "model", "target_config", "target_url", mode="before")
    @classmethod
    def _path_or_text(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{info.field_name} must be a string, got {type(value).__name__}")
        if info.field_name == "target_url" and value is not None:
            if not (value.startswith("http://") or value.startswith("https://")):
                raise ValueError(f"target_url must start with http:// or https://, got {value!r}")
        return value

    @field_validator("attacks", "eps", "sections", mode="before")
    @classmethod
    @_as_value_error
    def _list_or_one(cls, value: Any, info: ValidationInfo) -> Any:
        name = str(info.field_name)
        if value is None and name == "sections":
            return None
        # One value where a list is expected (``eps: 0.1``, ``attacks: pgd``) means a
        # list of one; iterating the string would audit attacks 'p', 'g' and 'd'.
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            value = (value,)
        elif not isinstance(value, list | tuple):
            raise TypeError(
                f"{name} must be a list (or a single value), got {type(value).__name__}"
            )
        if not value:
            raise ValueError(
                {
                    "attacks": "attacks must name at least one attack",
                    "eps": "eps must hold at least one value",
                    "sections": "sections must name at least one section, or be None for all",
                }[name]
            )
        if name == "eps":
            for e in value:
                check_number("eps", e, low=0)
            return tuple(sorted(float(e) for e in value))
        return tuple(value)

    @field_validator("attack_settings", mode="before")
    @classmethod
    def _attack_settings(cls, value: Any, info: ValidationInfo) -> Any:
        # reference_eps comes before this field: pydantic has it when it was valid.
        _check_attack_settings(value, info.data.get("reference_eps", 0.1))
        return value

    @field_validator("section_settings", mode="before")
    @classmethod
    def _section_settings(cls, value: Any) -> Any:
        _check_section_settings(value)
        return value

    @field_validator("constraints", mode="before")
    @classmethod
    def _constraints(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ValueError(
                "constraints must map immutable / switch_on / ranges to feature indices, "
                "e.g. {'immutable': [0, 1]}"
            )
        from advml.evasion.constraints import as_constraints  # torch: only when used

        as_constraints("constraints", value)  # raises naming the problem
        return value

    @field_validator("fail_under", "fail_over", mode="before")
    @classmethod
    @_as_value_error
    def _thresholds(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, dict):
            raise ValueError(
                f"{info.field_name} must map figures to numbers, e.g. {{'robust_accuracy': 0.5}}"
            )
        for key, number in value.items():
            check_number(f"{info.field_name}[{key!r}]", number)
        return {key: float(number) for key, number in value.items()}  # numpy scalars too

    @field_validator(*_MODEL_KEYS, mode="before")
    @classmethod
    def _model_file_setting(cls, value: Any, info: ValidationInfo) -> Any:
        """Parsed as ``load_model`` parses it (errors name the flag), then stored as plain
        lists so that the YAML config round-trips."""
        from advml.models.formats.spec import ModelSpec

        key = _MODEL_KEYS[str(info.field_name)]
        parsed = getattr(ModelSpec.from_values({key: value}, "given"), key)
        return list(parsed) if isinstance(parsed, tuple) else parsed

    @field_validator("label_column", mode="before")
    @classmethod
    def _label_column(cls, value: Any) -> Any:
        if value is not None and (isinstance(value, bool) or not isinstance(value, str | int)):
            raise ValueError(f"label_column must be a column name or index, got {value!r}")
        return value

    @field_validator("data_bounds", mode="before")
    @classmethod
    def _data_bounds(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, str | list | tuple):
            raise ValueError(
                "data_bounds must be [low, high], [[low per feature], [high per feature]], "
                f"'data' or a bounds file (.npy/.json/.csv), got {value!r}"
            )
        return value

    @field_validator("device", mode="before")
    @classmethod
    def _device(cls, value: Any) -> Any:
        """A device of the form auto/cpu/cuda/cuda:N (whether it exists here is checked
        when the audit starts, so that a config written on a GPU machine can be read
        anywhere)."""
        if value is not None and (
            not isinstance(value, str)
            or not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", value.strip().lower())
        ):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {value!r}")
        return value

    @field_validator("ray_address", mode="before")
    @classmethod
    def _ray_address(cls, value: Any) -> Any:
        if value is not None and (
            not isinstance(value, str) or not (value == "auto" or ":" in value)
        ):
            raise ValueError(
                f"ray_address must be 'auto', 'ray://host:port' or 'host:port', got {value!r}"
            )
        return value

    # -- what only the fields together can break ------------------------------------------

    @model_validator(mode="after")
    def _together(self) -> AuditConfig:
        problems = [
            *_check_remote(self),
            *_check_scale(self),
            *_check_model_spec(self),
        ]
        if problems:
            raise _Problems(problems)
        return self

    @classmethod
    def quick(cls, **overrides: Any) -> AuditConfig:
        """A one-minute audit: the digits MLP, 200 inputs, PGD-20."""
        settings: dict[str, Any] = dict(
            dataset="digits",
            n_samples=200,
            eps=(0.0, 0.05, 0.1, 0.2, 0.3),
            attack_settings={"pgd": {"steps": 20}},
            profile="quick",
        )
        settings.update(overrides)
        return cls(**settings)

    def with_(self, **changes: Any) -> AuditConfig:
        """A copy with some settings changed (validated again, as a new config is)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists for tuples) for the report and for re-running."""
        d = asdict(self)
        d["attacks"] = list(self.attacks)
        d["eps"] = list(self.eps)
        d["sections"] = None if self.sections is None else list(self.sections)
        return d


def _validated_init(init: Callable[..., None]) -> Callable[..., None]:
    """pydantic's ``__init__``, raising one :class:`ConfigValidationError` that lists
    every problem (pydantic's ``ValidationError`` speaks of its own types)."""

    @functools.wraps(init)
    def __init__(self: AuditConfig, *args: Any, **kwargs: Any) -> None:
        try:
            init(self, *args, **kwargs)
        except ValidationError as err:
            raise _from_pydantic(err) from None

    return __init__


# After the class is made: the dataclass decorator writes its own __init__.
AuditConfig.__init__ = _validated_init(AuditConfig.__init__)  # type: ignore[method-assign]


def _check_remote(config: AuditConfig) -> list[_FieldProblem]:
    """A model is a file or a remote target (URL / target file), not both."""
    if (config.target_url or config.target_config) and config.model is not None:
        return [
            _FieldProblem(
                "target_url" if config.target_url else "target_config",
                "give either model (a file) or target_url / target_config (an API), not both",
            )
        ]
    return []


def _check_scale(config: AuditConfig) -> list[_FieldProblem]:
    """The executor fields together (docs/scale.md)."""
    if config.ray_address is not None and config.executor != "ray":
        return [
            _FieldProblem(
                "ray_address",
                f"ray_address is for executor 'ray'; got executor {config.executor!r}",
            )
        ]
    return []


def _check_model_spec(config: AuditConfig) -> list[_FieldProblem]:
    """The model-file settings together, as ``load_model`` reads them."""
    from advml.models.formats.spec import ModelSpec

    try:
        ModelSpec.from_values({k: getattr(config, f) for f, k in _MODEL_KEYS.items()}, "given")
    except (TypeError, ValueError) as err:
        return [_FieldProblem("model_factory", str(err))]
    return []


def _check_attack_settings(attack_settings: Any, eps: float) -> None:
    """Each entry names an evasion attack and settings it accepts, with valid values.

    Checked here, when the config is made, so that ``--print-config`` and the config
    file's line numbers report a bad setting, not the audit minutes later.
    """
    if not isinstance(attack_settings, dict) or not all(
        isinstance(v, dict) for v in attack_settings.values()
    ):
        raise ValueError(
            "attack_settings must map attack names to dicts of settings, e.g. "
            "{'pgd': {'steps': 40}}"
        )
    if not attack_settings:
        return
    from advml import registry  # the attacks import torch: only when settings are given

    known = registry.available("evasion")
    for name, settings in attack_settings.items():
        if name not in known:
            raise ValueError(
                f"attack_settings[{name!r}]: no evasion attack is called {name!r}; known: "
                f"{', '.join(known)}"
            )
        valid = registry.schema("evasion", name)
        unknown = [key for key in settings if key not in valid]
        if unknown:
            raise ValueError(
                f"attack_settings[{name!r}][{unknown[0]!r}]: {name} has unknown settings "
                f"{unknown}; known: {', '.join(sorted(valid))}"
            )
        # The audit gives each attack the config's eps; a valid one stands in here.
        trial = {**settings, **({"eps": eps} if "eps" in valid else {})}
        if any(v["required"] and k not in trial for k, v in valid.items()):
            continue  # the audit supplies the rest (a surrogate model, say)
        try:
            registry.create("evasion", name, **trial)
        except (TypeError, ValueError) as err:
            message = str(err)
            named = [k for k in settings if message.startswith(k) or f" {k} " in message]
            where = f"[{named[0]!r}]" if named else ""
            raise ValueError(f"attack_settings[{name!r}]{where}: {message}") from None


def _check_section_settings(section_settings: Any) -> None:
    """Each entry names an audit section and settings that section knows."""
    if not isinstance(section_settings, dict) or not all(
        isinstance(v, dict) for v in section_settings.values()
    ):
        raise ValueError(
            "section_settings must map section names to dicts of settings, e.g. "
            "{'backdoor': {'fraction': 0.05}}"
        )
    if not section_settings:
        return
    # The audit's own table of sections (it imports every section module), so a config
    # names exactly what run_audit would run.
    sections = audit_sections.available_sections()
    for name, settings in section_settings.items():
        if name not in sections:
            raise ValueError(
                f"section_settings[{name!r}]: no audit section is called {name!r}; known: "
                f"{', '.join(sections)}"
            )
        cls = sections[name]
        known = {**cls.default_settings, **cls.quick_settings}
        unknown = [key for key in settings if key not in known]
        if unknown:
            raise ValueError(
                f"section_settings[{name!r}][{unknown[0]!r}]: the {name} section has unknown "
                f"keys {unknown}; known: {', '.join(sorted(known))}"
            )
