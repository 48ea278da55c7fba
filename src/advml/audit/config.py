"""What an audit runs: a plain, validated description that can be written and re-read."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from advml.audit import sections as audit_sections
from advml.validation import check_bool, check_choice, check_number

__all__ = ["AuditConfig"]


@dataclass(frozen=True)
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
    """

    dataset: str = "mnist-5k"
    model: str | None = None
    trust_model_file: bool = False
    architecture: str | None = None
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
    profile: str = "default"
    access: str = "white-box"
    queries_per_input: int | None = None
    constraints: dict[str, Any] | None = None
    fail_under: dict[str, float] = field(default_factory=dict)
    fail_over: dict[str, float] = field(default_factory=dict)
    model_factory: str | None = None
    model_kwargs: dict[str, Any] | None = None
    model_input_shape: list[int] | None = None
    model_classes: int | list[str] | None = None
    model_bounds: list[float] | None = None
    model_mean: list[float] | None = None
    model_std: list[float] | None = None
    label_column: str | int | None = None
    limit: int | None = None
    data_bounds: Any = None
    eps_scale: str = "relative"
    device: str | None = None
    precision: str | None = None
    target_url: str | None = None
    target_config: str | None = None
    max_queries: int | None = None
    executor: str = "local"
    ray_address: str | None = None
    workers: int | None = None
    save_examples: bool = False

    def __post_init__(self) -> None:
        # It switches unpickling on: a truthy non-bool ("false") must not.
        check_bool("trust_model_file", self.trust_model_file)
        # One value where a list is expected (``eps: 0.1``, ``attacks: pgd``) means a
        # list of one; iterating the string would audit attacks 'p', 'g' and 'd'.
        for name in ("attacks", "eps", "sections"):
            value = getattr(self, name)
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                object.__setattr__(self, name, (value,))
            elif value is not None and not isinstance(value, list | tuple):
                raise TypeError(
                    f"{name} must be a list (or a single value), got {type(value).__name__}"
                )
        check_number("n_samples", self.n_samples, low=1, integer=True)
        check_number("seed", self.seed, low=0, integer=True)
        check_number("examples", self.examples, low=0, integer=True)
        check_number("reference_eps", self.reference_eps, low=0)
        if self.architecture is not None:
            check_choice("architecture", self.architecture, ("cnn", "mlp"))
        if not self.attacks:
            raise ValueError("attacks must name at least one attack")
        if not self.eps:
            raise ValueError("eps must hold at least one value")
        for e in self.eps:
            check_number("eps", e, low=0)
        check_choice("profile", self.profile, ("default", "quick"))
        if self.sections is not None:
            if not self.sections:
                raise ValueError("sections must name at least one section, or be None for all")
            object.__setattr__(self, "sections", tuple(self.sections))
        _check_attack_settings(self.attack_settings, self.reference_eps)
        _check_section_settings(self)
        check_choice("access", self.access, ("white-box", "scores", "labels"))
        if self.queries_per_input is not None:
            check_number("queries_per_input", self.queries_per_input, low=1, integer=True)
        if self.constraints is not None:
            if not isinstance(self.constraints, dict):
                raise ValueError(
                    "constraints must map immutable / switch_on / ranges to feature indices, "
                    "e.g. {'immutable': [0, 1]}"
                )
            from advml.evasion.constraints import as_constraints  # torch: only when used

            as_constraints("constraints", self.constraints)  # raises naming the problem
        for name in ("fail_under", "fail_over"):
            thresholds = getattr(self, name)
            if not isinstance(thresholds, dict):
                raise ValueError(
                    f"{name} must map figures to numbers, e.g. {{'robust_accuracy': 0.5}}"
                )
            for key, value in thresholds.items():
                check_number(f"{name}[{key!r}]", value)
        object.__setattr__(self, "attacks", tuple(self.attacks))
        object.__setattr__(self, "eps", tuple(sorted(float(e) for e in self.eps)))
        _check_model_file_settings(self)
        _check_data_fields(self)
        _check_device(self)
        _check_remote(self)
        _check_scale(self)
        _check_evidence(self)

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
        """A copy with some settings changed."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists for tuples) for the report and for re-running."""
        d = asdict(self)
        d["attacks"] = list(self.attacks)
        d["eps"] = list(self.eps)
        d["sections"] = None if self.sections is None else list(self.sections)
        return d


def _check_device(config: AuditConfig) -> None:
    """``device`` names a device of the form auto/cpu/cuda/cuda:N (whether it exists here
    is checked when the audit starts, so that a config written on a GPU machine can be
    read anywhere); ``precision`` is float32 or bf16."""
    if config.device is not None:
        if not isinstance(config.device, str) or not re.fullmatch(
            r"auto|cpu|cuda(:\d+)?|mps", config.device.strip().lower()
        ):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {config.device!r}")
    if config.precision is not None:
        check_choice("precision", config.precision, ("float32", "bf16"))


def _check_remote(config: AuditConfig) -> None:
    """The remote target's fields: a URL (or a target file), not also a model file."""
    for name in ("target_url", "target_config"):
        value = getattr(config, name)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{name} must be a string, got {type(value).__name__}")
    url = config.target_url
    if url is not None and not (url.startswith("http://") or url.startswith("https://")):
        raise ValueError(f"target_url must start with http:// or https://, got {url!r}")
    if (url or config.target_config) and config.model is not None:
        raise ValueError(
            "give either model (a file) or target_url / target_config (an API), not both"
        )
    if config.max_queries is not None:
        check_number("max_queries", config.max_queries, low=1, integer=True)


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


def _check_section_settings(config: AuditConfig) -> None:
    """Each entry names an audit section and settings that section knows."""
    section_settings = config.section_settings
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


def _check_model_file_settings(config: AuditConfig) -> None:
    """The model-file settings parsed as ``load_model`` parses them (errors name the
    flag), then stored as plain lists so that the YAML config round-trips."""
    from advml.models.formats.spec import ModelSpec

    keys = {
        "model_factory": "factory",
        "model_kwargs": "factory_kwargs",
        "model_input_shape": "input_shape",
        "model_classes": "classes",
        "model_bounds": "bounds",
        "model_mean": "mean",
        "model_std": "std",
    }
    spec = ModelSpec.from_values({k: getattr(config, f) for f, k in keys.items()}, "given")
    for field_name, key in keys.items():
        value = getattr(spec, key)
        if isinstance(value, tuple):
            value = list(value)
        object.__setattr__(config, field_name, value)


def _check_data_fields(config: AuditConfig) -> None:
    """The user-data fields (dataset files, bounds, limit, eps_scale)."""
    label = config.label_column
    if label is not None and (isinstance(label, bool) or not isinstance(label, str | int)):
        raise ValueError(f"label_column must be a column name or index, got {label!r}")
    if config.limit is not None:
        check_number("limit", config.limit, low=1, integer=True)
    check_choice("eps_scale", config.eps_scale, ("relative", "absolute"))
    bounds = config.data_bounds
    if bounds is not None and not isinstance(bounds, str | list | tuple):
        raise ValueError(
            "data_bounds must be [low, high], [[low per feature], [high per feature]], "
            f"'data' or a bounds file (.npy/.json/.csv), got {bounds!r}"
        )


def _check_scale(config: AuditConfig) -> None:
    """The executor fields (docs/scale.md)."""
    check_choice("executor", config.executor, ("local", "process", "ray"))
    if config.workers is not None:
        check_number("workers", config.workers, low=1, integer=True)
    if config.ray_address is not None:
        if not isinstance(config.ray_address, str) or not (
            config.ray_address == "auto" or ":" in config.ray_address
        ):
            raise ValueError(
                "ray_address must be 'auto', 'ray://host:port' or 'host:port', got "
                f"{config.ray_address!r}"
            )
        if config.executor != "ray":
            raise ValueError(f"ray_address is for executor 'ray'; got executor {config.executor!r}")


def _check_evidence(config: AuditConfig) -> None:
    """The report options of issue 17 (``save_examples``)."""
    check_bool("save_examples", config.save_examples)
