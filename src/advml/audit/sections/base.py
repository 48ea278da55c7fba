"""What an audit section is, and what the audit hands it.

A section is one family's part of the report (evasion, poisoning, membership, ...). The
audit builds one :class:`AuditContext` (the model, the data, the clean predictions, the
step cache) and, for every section the config asks for, calls ``skip_reason`` and then
``run``. A section does its long work through :meth:`AuditContext.step`, which stores
every finished step under the output folder, so an audit killed at any point resumes
without recomputing finished steps and ends with the same report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

import numpy as np

from advml.errors import AdvmlError
from advml.models.reference import train_reference
from advml.report.model import SCHEMA_VERSION
from advml.runtime.cache import ResultCache, fingerprint
from advml.runtime.executors import Executor, make_executor
from advml.runtime.progress import progress

if TYPE_CHECKING:
    from advml.audit.config import AuditConfig
    from advml.data import Dataset
    from advml.models.base import Classifier
    from advml.models.torch import TorchClassifier

__all__ = [
    "AuditContext",
    "AuditSection",
    "Level",
    "SectionCannotRun",
    "SectionOutput",
    "Threat",
    "Verdict",
    "budget_ran_out",
    "runs_here",
    "section_executor",
]

log = logging.getLogger("advml.audit.steps")  # to OUT/audit.log (see run_audit)

Threat = Literal["integrity", "confidentiality", "ownership"]
Level = Literal["pass", "warn", "fail", "unknown"]
LEVELS: tuple[Level, ...] = ("pass", "warn", "fail", "unknown")
StepResult = tuple[dict[str, Any], dict[str, np.ndarray]]
T = TypeVar("T")


class SectionCannotRun(AdvmlError, ValueError):
    """A section cannot run on the model and data given (too few inputs for its
    settings, say). The audit lists it as not run with this message, which names the
    setting and the fix, and writes the rest of the report."""


@dataclass(frozen=True)
class Verdict:
    """A section's finding in plain words.

    ``level`` is ``pass`` (the model holds up), ``warn`` (partly), ``fail`` (an
    attacker succeeds) or ``unknown``; ``label`` is the short form shown on the
    scorecard (e.g. "not robust", "high risk"); ``text`` says what was measured and what
    it means for someone who is not a specialist.
    """

    level: Level
    label: str
    text: str
    numbers: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {self.level!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "label": self.label, "text": self.text, **self.numbers}


@dataclass(frozen=True)
class SectionOutput:
    """What a section returns: report data, a verdict, arrays for the report's pictures."""

    data: dict[str, Any]
    """Plain JSON data (numbers, strings, lists); it becomes ``report.sections[name]``."""
    verdict: Verdict
    artifacts: dict[str, np.ndarray] = field(default_factory=dict)
    """Arrays the HTML renderer draws (example images, curves); not in report.json."""


@dataclass(frozen=True)
class AuditContext:
    """Everything a section may use; built once per audit by :func:`run_audit`."""

    config: AuditConfig
    model: Classifier
    model_info: Mapping[str, Any]
    """How the model was obtained: ``source`` is "reference", "file" or "given"; for a
    reference model also its ``architecture`` and ``seed``."""
    dataset: Dataset
    """The whole dataset: sections that train (poisoning, shadow models, watermarks) use
    its training split; attacks use the evaluated test inputs ``x``, ``y``."""
    x: np.ndarray
    y: np.ndarray
    clean_pred: np.ndarray
    clean_proba: np.ndarray
    """Softmax scores on ``x`` (one-hot for a label-only model)."""
    model_fp: str
    data_fp: str
    cache: ResultCache | None = None
    show_progress: bool = True
    section: str = ""
    step_log: list[dict[str, Any]] | None = None
    """Where :meth:`step` records each step's time, queries and whether it was read back
    (report.json's ``reproducibility.steps``); shared by every section's context."""

    # -- facts -----------------------------------------------------------------------
    @property
    def quick(self) -> bool:
        """True for ``advml audit --quick``: sections use their quick settings."""
        return self.config.profile == "quick"

    @property
    def clean_accuracy(self) -> float:
        return float((self.clean_pred == self.y).mean())

    @property
    def retrainable(self) -> bool:
        """True when advml knows how the model was trained (a reference model, or a model
        file holding a reference network as built, e.g. by ``advml train``), so a section
        may train copies of it: poisoned, watermarked, shadow models."""
        info = self.model_info
        return info.get("source") == "reference" or info.get("retrain") == "reference recipe"

    @property
    def architecture(self) -> str | None:
        """The reference architecture ("cnn", "mlp") when :attr:`retrainable`."""
        arch = self.model_info.get("architecture")
        return str(arch) if self.retrainable and arch else None

    # -- work ------------------------------------------------------------------------
    def train_like(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        seed: int,
        epochs: int | None = None,
        desc: str = "training",
    ) -> TorchClassifier:
        """A fresh model of the audited model's architecture trained like it on ``x, y``.

        Only for :attr:`retrainable` models; uses the reference training recipe
        (:data:`advml.models.reference.TRAINING`), so a poisoned or watermarked copy is
        trained exactly as the audited model was, apart from its data.
        """
        if self.architecture is None:
            raise ValueError(
                f"section {self.section!r} needs to retrain the model, but advml does not "
                "know how this model was trained (only reference models can be retrained)"
            )
        return train_reference(
            self.dataset,
            x,
            y,
            architecture=self.architecture,
            seed=seed,
            epochs=epochs,
            show_progress=self.show_progress,
            desc=desc,
        )

    def step(self, name: str, settings: Any, compute: Callable[[], StepResult]) -> StepResult:
        """Run ``compute`` once: its result is stored and a rerun reads it back.

        Parameters
        ----------
        name : str
            Short readable name of the step within the section, e.g. ``"pgd-eps0.1"``.
        settings : plain data
            Everything the step's result depends on besides the model, the evaluated
            data and the audit seed (which are always part of the key).
        compute : callable
            Returns ``(numbers, arrays)``: a JSON-able dict and a dict of numpy arrays.
        """
        key = f"{self.section}-{name}-" + fingerprint(
            [self.model_fp, self.data_fp, self.config.seed, settings, _step_version()]
        )
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                log.info("%s: %s already done, read from %s", self.section, name, self.cache.folder)
                self._record(name, key, 0.0, 0, cached=True)
                return hit
        log.info("%s: running %s", self.section, name)
        started, queries = time.perf_counter(), self.model.query_count
        meta, arrays = compute()
        self._record(
            name, key, time.perf_counter() - started, self.model.query_count - queries, cached=False
        )
        # A step the model's query budget cut short is not stored: the budget is not part
        # of the key, and a rerun (with the budget raised) must do it again in full.
        if self.cache is not None and "budget_ran_out" not in meta:
            self.cache.put(key, meta, arrays)
        return meta, arrays

    def _record(self, name: str, key: str, seconds: float, queries: int, *, cached: bool) -> None:
        if self.step_log is not None:
            self.step_log.append(
                {
                    "section": self.section,
                    "step": name,
                    "key": key,
                    "seconds": round(seconds, 3),
                    "queries": int(queries),
                    "cached": cached,
                }
            )

    def progress(self, items: Iterable[T], *, desc: str, total: int | None = None) -> Iterator[T]:
        """A progress bar over ``items`` (silent with ``--quiet``)."""
        return iter(progress(items, desc=desc, total=total, enabled=self.show_progress))

    def for_section(self, name: str) -> AuditContext:
        return replace(self, section=name)


def budget_ran_out(model: Classifier, err: Exception) -> str:
    """Why a step was not measured: the model's query budget ran out (with what it spent).

    Sections catch :class:`~advml.errors.QueryBudgetExceededError` around a step that
    queries the model, record this reason in place of its figures and go on with what the
    steps before it paid for.
    """
    return f"the model's query budget ran out ({model.query_count} queries spent): {err}"


def runs_here(ctx: AuditContext) -> bool:
    """Whether tasks on the audited model run in this process whatever the config says:
    the ``local`` executor, a model with a query budget (one budget, counted here), or a
    model that is not a local torch network (a remote API or a tree ensemble, whose cost
    is its queries or its solver, not this machine's cores)."""
    from advml.models.torch import TorchClassifier

    return (
        ctx.config.executor == "local"
        or getattr(ctx.model, "query_budget", None) is not None
        or not isinstance(ctx.model, TorchClassifier)
    )


def section_executor(ctx: AuditContext, *, gpus_per_task: float, device: Any = None) -> Executor:
    """The config's executor (docs/scale.md) for a section's independent tasks, which
    train or attack networks on ``device`` (default the audited model's). On Ray a task
    for a network on a GPU asks for ``gpus_per_task`` GPUs (a task given none sees no
    CUDA device); process workers share this machine's."""
    config = ctx.config
    where = device if device is not None else getattr(ctx.model, "device", None)
    on_gpu = config.executor == "ray" and getattr(where, "type", "cpu") == "cuda"
    return make_executor(
        config.executor,
        workers=config.workers,
        ray_address=config.ray_address,
        num_gpus=gpus_per_task if on_gpu else 0.0,
    )


def _step_version() -> str:
    """Part of every step's key: a new report schema recomputes the steps."""
    return SCHEMA_VERSION


class AuditSection:
    """Base of audit sections.

    Subclasses set the class attributes and implement :meth:`run`; they may override
    :meth:`skip_reason`. Settings come from ``default_settings``, then
    ``quick_settings`` for ``--quick`` audits, then the config's
    ``section_settings[name]``; unknown keys are rejected by name.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    threat: ClassVar[Threat]
    order: ClassVar[int] = 100
    """Position in the report (evasion is 10)."""
    default_settings: ClassVar[Mapping[str, Any]] = {}
    quick_settings: ClassVar[Mapping[str, Any]] = {}

    @classmethod
    def settings_for(cls, config: AuditConfig) -> dict[str, Any]:
        """The effective settings of this section under ``config``."""
        settings = dict(cls.default_settings)
        if config.profile == "quick":
            settings.update(cls.quick_settings)
        given = dict(config.section_settings.get(cls.name, {}))
        unknown = sorted(set(given) - set(settings))
        if unknown:
            raise ValueError(
                f"section_settings[{cls.name!r}] has unknown keys {unknown}; "
                f"known: {sorted(settings)}"
            )
        settings.update(given)
        return settings

    def skip_reason(self, ctx: AuditContext, settings: Mapping[str, Any]) -> str | None:
        """``None`` when the section applies to this model, else why it is skipped."""
        return None

    def run(self, ctx: AuditContext, settings: Mapping[str, Any]) -> SectionOutput:
        raise NotImplementedError
