"""What a report is, as data: pydantic models of ``report.json`` and its schema version.

The audit writes reports and this package reads and renders them; both name the schema
version from here, so neither has to import the other for it. Version 2.x only adds
optional fields; a change of meaning bumps the major version.

``advml/report/schema.json`` is generated from :class:`Report` (``report_json_schema``);
a test fails when the committed file differs. After changing a model, regenerate it::

    python -m advml.report --write-schema

Each section's own fields are described by ``advml/report/schemas/<section>.json`` and
merged in by :func:`advml.report.report_schema`; here a section entry is only what every
section has (title, threat, settings, verdict). The models allow fields they do not name
(a report of a newer 2.x advml still validates), so the test
``test_every_field_of_an_audit_report_is_declared`` checks that what the audit writes is
declared here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypeAliasType

__all__ = ["SCHEMA_FILE", "SCHEMA_VERSION", "Report", "report_json_schema", "schema_text"]

SCHEMA_VERSION = "2.2"
"""2.1: ``environment`` (threads, library versions, CPU capability) added. 2.2: 95 %
intervals with counts beside the rates (``*_interval``, verdict ``*_low``/``*_high``),
``reproducibility`` (versions, git hash, fingerprints, config YAML, every step's time and
queries), threshold checks against the safe end of the interval."""

# Named types: each is one entry of the schema's ``$defs`` under this name, which the
# per-section schemas (report/schemas/*.json) reference as ``#/$defs/fraction``.
Fraction = TypeAliasType("Fraction", Annotated[float, Field(ge=0, le=1)])
Level = TypeAliasType(
    "Level",
    Annotated[
        Literal["pass", "warn", "fail", "unknown"],
        Field(
            description="pass: the model holds up; warn: partly; fail: an attacker "
            "succeeds; unknown: not measured."
        ),
    ],
)
Threat = TypeAliasType("Threat", Literal["integrity", "confidentiality", "ownership"])


class _Open(BaseModel):
    """A part of the report that may hold fields a newer 2.x advml adds."""

    model_config = ConfigDict(extra="allow")


class Environment(_Open):
    """Where the audit ran. Same seed gives the same numbers only on the same machine type
    with the same thread counts and library versions (docs/audit.md, Reproducibility);
    compare these fields before comparing two reports."""

    python: str = Field(description="Python version, e.g. 3.12.3.")
    platform: str = Field(description="Operating system and release (platform.platform()).")
    machine: str = Field(description="Processor architecture, e.g. x86_64.")
    numpy: str
    torch: str
    torch_threads: int = Field(
        ge=1,
        description="torch.get_num_threads(): intra-op threads; another count can change "
        "float sums and so trained weights.",
    )
    torch_interop_threads: int = Field(ge=1, description="torch.get_num_interop_threads().")
    cpu_capability: str = Field(
        description="The CPU kernels torch dispatched to "
        "(torch.backends.cpu.get_cpu_capability(), e.g. AVX2, AVX512)."
    )
    cuda: str | None = Field(None, description="torch.version.cuda; null for a CPU build.")
    device: str | None = Field(None, description="The audited model's device.")
    device_name: str | None = Field(None, description="The device in words (GPU model, CPU).")
    precision: str | None = Field(
        None, description="The model's compute precision (float32, or bf16 under autocast)."
    )


class Config(_Open):
    """The effective AuditConfig (``AuditConfig.to_dict()``); passing it back repeats the
    audit. Every field is described in ``advml.audit.AuditConfig``."""

    dataset: str
    n_samples: int = Field(ge=1)
    attacks: list[str]
    eps: list[Annotated[float, Field(ge=0)]]
    seed: int = Field(ge=0)


class Dataset(_Open):
    """The data the audit evaluated."""

    name: str
    description: str
    input_shape: list[Annotated[int, Field(ge=1)]]
    n_classes: int = Field(ge=2)
    class_names: list[str]
    bounds: list[float] = Field(min_length=2, max_length=2)
    n_evaluated: int = Field(ge=1, description="Test inputs attacked.")
    fingerprint: str = Field(description="Hash of the evaluated inputs and labels.")
    n_train: int | None = Field(None, ge=0, description="Training samples (after limit).")
    n_test: int | None = Field(None, ge=0, description="Test samples (after limit).")
    limit: int | None = Field(None, description="The config's per-split limit (null: none).")
    feature_bounds: list[list[float]] | None = Field(
        None,
        description="Per-feature [low, high] (flattened), when the bounds differ per "
        "feature; null when one [low, high] holds for all.",
    )
    eps_scale: Literal["relative", "absolute"] | None = Field(
        None, description="How eps was read: a fraction of each feature's range, or data units."
    )


class Model(_Open):
    """The audited model and how the audit obtained it."""

    source: Literal["reference", "file", "given", "remote"] = Field(
        description="reference: trained (or read back) by advml for the dataset; file: "
        "the config's model file; given: passed to run_audit; remote: an HTTP API."
    )
    file: str | None = Field(None, description="The model file (reference: its cache file).")
    adapter: str
    description: str
    has_gradients: bool
    has_scores: bool
    fingerprint: str = Field(
        description="Hash of the weights (torch) or of the answers on a fixed probe."
    )
    clean_accuracy: Fraction
    access: Literal["white-box", "scores", "labels"] | None = Field(
        None, description="What the adversary sees, when not white-box."
    )
    loaded: dict[str, Any] | None = Field(
        None,
        description="How a model file was read (path, format, adapter, access, reason, "
        "settings, class_names): advml.models.how_loaded.",
    )
    architecture: str | None = Field(
        None, description="The reference architecture (reference models, advml's own files)."
    )
    retrain: str | None = Field(
        None,
        description="'reference recipe': the file holds an advml reference network, which "
        "sections that train copies retrain as the reference model is trained.",
    )
    seed: int | None = Field(None, description="Seed of a reference model.")
    trained_now: bool | None = Field(
        None, description="A reference model trained in this run (false: read from the cache)."
    )
    epochs_run: int | None = None
    best_epoch: int | None = None
    val_accuracy: Fraction | None = None
    training_seconds: float | None = Field(None, ge=0)
    target: dict[str, Any] | None = Field(
        None,
        description="A remote model's protocol (url, method, header names, encoding...), "
        "never its secrets.",
    )


class Verdict(_Open):
    """A section's finding in plain words; sections add their headline numbers."""

    level: Level
    label: str = Field(description="Short form for the scorecard, e.g. 'not robust'.")
    text: str


class Section(_Open):
    """One section's entry; its own fields are in report/schemas/<name>.json."""

    title: str
    threat: Threat
    settings: dict[str, Any] = Field(description="The section's effective settings.")
    verdict: Verdict


class SkippedSection(_Open):
    """A section that did not apply to this model, with the reason."""

    section: str
    title: str
    threat: Threat
    reason: str
    queries_spent: int | None = Field(
        None,
        ge=0,
        description="Set when the model's query budget ran out in this section: the "
        "queries it spent.",
    )


class ThreatVerdict(Verdict):
    """A section's verdict as the summary lists it."""

    section: str
    title: str


class NotAssessed(_Open):
    section: str
    reason: str


class ThreatSummary(_Open):
    """One threat: the worst level among its sections, and each section's verdict."""

    question: str
    level: Level
    verdicts: list[ThreatVerdict]
    not_assessed: list[NotAssessed]


class Summary(BaseModel):
    """Per threat: the worst level among its sections, and each section's verdict."""

    model_config = ConfigDict(extra="forbid")

    integrity: ThreatSummary
    confidentiality: ThreatSummary
    ownership: ThreatSummary


class ThresholdCheck(_Open):
    figure: str
    fail_if: Literal["below", "above"]
    threshold: float
    value: float | None
    passed: bool
    compared: float | None = Field(
        None, description="The number compared: the figure, or the safe end of its interval."
    )
    compared_what: str | None = Field(None, description="Which number was compared, in words.")
    problem: str | None = Field(None, description="Why the figure could not be checked.")


class Thresholds(_Open):
    """The config's fail_under / fail_over thresholds and whether the model met them
    (advml audit exits with code 3 when not)."""

    passed: bool
    checks: list[ThresholdCheck]


class Step(_Open):
    section: str
    step: str
    key: str | None = None
    seconds: float = Field(ge=0)
    queries: int
    cached: bool


class Reproducibility(_Open):
    """What re-running the figures needs (schema 2.2): ``advml audit --rerun report.json``
    reads ``config`` back and compares the figures against their intervals. Same machine,
    same versions and thread counts: the same figures exactly."""

    advml_version: str
    git_hash: str | None = Field(
        None, description="Commit of the advml source when it is a git checkout."
    )
    versions: dict[str, str | None] = Field(description="Library versions (null: not installed).")
    device: str
    threads: int = Field(ge=1)
    seeds: dict[str, int]
    config: dict[str, Any] = Field(description="The effective AuditConfig.")
    config_yaml: str | None = Field(
        None, description="The same config as the YAML file `advml audit --config` reads."
    )
    model_fingerprint: str
    data_fingerprint: str = Field(description="Hash of the evaluated inputs and labels.")
    queries: int | None = Field(
        None, ge=0, description="Queries the audit asked of the model (cached steps ask none)."
    )
    steps: list[Step] = Field(
        description="Every step in order: its section, name, cache key, seconds, queries, "
        "and whether it was read back from the cache."
    )
    section_seconds: dict[str, Annotated[float, Field(ge=0)]] | None = Field(
        None, description="Wall time of each section that ran, by name."
    )


class Report(_Open):
    """What ``advml audit`` found. Fractions are in [0, 1]; eps is in units of the input
    bounds. Version 2.x only adds optional fields; a change of meaning bumps the major
    version."""

    model_config = ConfigDict(
        extra="allow",
        title="advml audit report",
        json_schema_extra={
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://advml.dev/schemas/report-{SCHEMA_VERSION}.json",
        },
    )

    schema_version: str = Field(pattern=r"^2\.[0-9]+$", description="Version of this schema.")
    advml_version: str
    created: str = Field(description="ISO 8601 time (UTC) the report was made.")
    seconds: float = Field(ge=0, description="Wall time of the audit (cached steps cost nothing).")
    environment: Environment | None = None
    config: Config
    dataset: Dataset
    model: Model
    sections: dict[str, Section] = Field(
        description="One entry per section that ran, by name. Each section's own fields "
        "are described in advml/report/schemas/<name>.json, merged here by report_schema()."
    )
    skipped_sections: list[SkippedSection]
    summary: Summary
    thresholds: Thresholds
    reproducibility: Reproducibility | None = None
    examples_files: dict[str, dict[str, Any]] | None = Field(
        None,
        description="With --save-examples: per section, the per-input records file "
        "(`records`: Parquet, or .npz without pyarrow; its `columns` and `rows`) and the "
        "inputs file (`inputs`: .npz with the clean inputs `x` and the adversarial inputs "
        "at the reference eps), beside report.json.",
    )


# Class name -> its name in ``$defs``: the names the per-section schemas reference.
_DEF_NAMES = {
    "Fraction": "fraction",
    "Level": "level",
    "Threat": "threat",
    "Verdict": "verdict",
    "Section": "section",
}


def report_json_schema() -> dict[str, Any]:
    """The JSON Schema of ``report.json`` (without the sections' own fields), as
    committed in ``advml/report/schema.json``."""
    schema = Report.model_json_schema()
    text = json.dumps(schema)
    for name, def_name in _DEF_NAMES.items():
        text = text.replace(f'"#/$defs/{name}"', f'"#/$defs/{def_name}"')
    renamed: dict[str, Any] = json.loads(text)
    renamed["$defs"] = {_DEF_NAMES.get(k, k): v for k, v in renamed["$defs"].items()}
    # ``$schema`` and ``$id`` first, as a reader expects them.
    head = {k: renamed.pop(k) for k in ("$schema", "$id")}
    return {**head, **renamed}


def schema_text() -> str:
    """``schema.json`` as written: indented, one trailing newline."""
    return json.dumps(report_json_schema(), indent=1, ensure_ascii=False) + "\n"


SCHEMA_FILE = Path(__file__).with_name("schema.json")
