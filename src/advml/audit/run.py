"""Plan and run an audit; every finished step is cached so a rerun resumes.

The report is plain data (``report.json``, schema in ``advml/report/schema.json``);
``advml.report`` turns it into HTML and a terminal summary.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from advml import __version__
from advml.audit import sections as audit_sections
from advml.audit.config import AuditConfig
from advml.audit.cost import check_cost
from advml.audit.plan import check_plan
from advml.audit.sections import AuditContext, AuditSection
from advml.audit.sections.base import SectionCannotRun, Threat
from advml.audit.sections.evasion import plan as evasion_plan
from advml.data import Dataset
from advml.errors import QueryBudgetExceededError
from advml.evasion.base import EvasionAttack
from advml.models.access import restrict_access
from advml.models.base import Classifier, adopt_data_bounds
from advml.models.checks import check_finite_outputs
from advml.models.formats.spec import dataset_defaults
from advml.models.io import how_loaded, load_model
from advml.models.reference import reference_model
from advml.report import write_report
from advml.report.model import SCHEMA_VERSION
from advml.report.records import split_records, write_records
from advml.runtime.cache import ResultCache, fingerprint
from advml.runtime.device import describe_device, place, resolve_device
from advml.runtime.plain import plain
from advml.runtime.progress import progress

__all__ = ["SCHEMA_VERSION", "AuditResult", "environment", "load_report", "plan", "run_audit"]

# Which steps ran and which were read back: written to OUT/audit.log, not the terminal.
log = logging.getLogger("advml.audit.steps")
log.propagate = False

THREATS: tuple[Threat, ...] = ("integrity", "confidentiality", "ownership")
_THREAT_WORDS = {
    "integrity": "Integrity: can an attacker make the model give wrong answers?",
    "confidentiality": "Confidentiality: can an attacker learn the training data or the model?",
    "ownership": "Ownership: can the owner prove the model is theirs?",
}


@dataclass
class AuditResult:
    """The report (plain data) and the arrays the HTML report draws, per section."""

    report: dict[str, Any]
    artifacts: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    out: Path | None = None

    @property
    def examples(self) -> dict[str, np.ndarray]:
        """The evasion section's clean/adversarial example pairs."""
        return self.artifacts.get("evasion", {})


def run_audit(
    config: AuditConfig | None = None,
    *,
    out: str | Path | None = None,
    model: Classifier | None = None,
    dataset: Dataset | None = None,
    show_progress: bool = True,
) -> AuditResult:
    """Run every applicable section of ``config`` against a model and collect a report.

    Parameters
    ----------
    config : AuditConfig, optional
        What to run; the default audits a reference CNN on ``mnist-5k``.
    out : path, optional
        Output folder. Finished steps are cached under ``out/steps`` and reused by a
        rerun, so an interrupted audit resumes; ``report.json`` and ``report.html`` are
        written there. ``None`` keeps everything in memory.
    model : Classifier, optional
        The model to audit; overrides ``config.model``.
    dataset : Dataset, optional
        The data to audit on; overrides ``config.dataset``.
    show_progress : bool
        Progress bars for training and steps.

    Returns
    -------
    AuditResult
    """
    check_plan(config or AuditConfig(), model=model is None, dataset=dataset is None)
    handler: logging.Handler | None = None
    if out is not None:
        # Every run appends to OUT/audit.log which steps ran and which were read back,
        # so a resumed audit shows that no finished step was computed again.
        Path(out).mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(Path(out) / "audit.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handler.setLevel(logging.INFO)
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    try:
        log.info("audit started (advml %s)", __version__)
        result = _run_audit(
            config, out=out, model=model, dataset=dataset, show_progress=show_progress
        )
        log.info("audit finished")
        return result
    finally:
        if handler is not None:
            log.removeHandler(handler)
            handler.close()


def _run_audit(
    config: AuditConfig | None,
    *,
    out: str | Path | None,
    model: Classifier | None,
    dataset: Dataset | None,
    show_progress: bool,
) -> AuditResult:
    config = config or AuditConfig()
    started = time.perf_counter()
    sections = _chosen_sections(config)
    resolve_device(config.device)  # a device that is not here: said before any work
    ds = dataset if dataset is not None else load_audit_data(config, model)
    out_dir = Path(out) if out is not None else None
    if model is None and (config.target_url or config.target_config):
        model = remote_target(config, ds, out_dir)
    model, model_info = _audited_model(config, ds, model, show_progress=show_progress)
    if config.target_url or config.target_config:
        model_info.update(source="remote", target=model.spec.public())  # type: ignore[attr-defined]
    step_log: list[dict[str, Any]] = []
    ctx = _context(
        config,
        ds,
        model,
        model_info,
        out_dir=out_dir,
        show_progress=show_progress,
        step_log=step_log,
    )
    section_seconds: dict[str, float] = {}
    report_sections, skipped, artifacts = _run_sections(
        ctx, sections, show_progress=show_progress, timings=section_seconds
    )
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "advml_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 2),
        "environment": environment(model),
        "config": config.to_dict(),
        "dataset": _dataset_entry(ctx),
        "model": _model_entry(ctx),
        "sections": report_sections,
        "skipped_sections": skipped,
        "summary": _summary(report_sections, skipped),
        "reproducibility": {
            **reproducibility(ctx, step_log),
            "section_seconds": section_seconds,
        },
    }
    report["thresholds"] = check_thresholds(report, config)
    artifacts = _save_records(report, artifacts, out_dir if config.save_examples else None)
    if out_dir is not None:
        write_report(report, out_dir, artifacts=artifacts)
    return AuditResult(report=report, artifacts=artifacts, out=out_dir)


def load_audit_data(config: AuditConfig, model: Classifier | None = None) -> Dataset:
    """``config.dataset``: a built-in name or the user's folder / table / archive.

    An image folder is resized to the input shape of the model audited (given, or read
    from ``config.model``) unless the config names one."""
    from advml.data import load_data

    shape: Sequence[int] | None = config.model_input_shape
    if shape is None and Path(config.dataset).expanduser().is_dir():
        if model is None and config.model is not None:
            model = _load_model_file(config, defaults=None)
        shape = None if model is None else model.input_shape
    return load_data(
        config.dataset,
        label_column=config.label_column,
        input_shape=None if shape is None else tuple(shape),
        classes=_class_names(config.model_classes),
        bounds=config.data_bounds,
        limit=config.limit,
        seed=config.seed,
    )


def _load_model_file(config: AuditConfig, defaults: dict[str, Any] | None) -> Classifier:
    """``config.model`` read with the model settings of the config (docs/models.md)."""
    return load_model(
        config.model,  # type: ignore[arg-type]
        trust=config.trust_model_file,
        factory=config.model_factory,
        factory_kwargs=config.model_kwargs,
        input_shape=config.model_input_shape,
        classes=config.model_classes,
        bounds=config.model_bounds,
        mean=config.model_mean,
        std=config.model_std,
        defaults=defaults,
        device=config.device,
    )


def remote_target(config: AuditConfig, ds: Dataset, out_dir: Path | None) -> Classifier:
    """The HTTP API of ``config.target_url`` / ``target_config``, checked against the
    plan's cost: the answers are cached in ``OUT/steps/queries`` so a rerun pays nothing
    twice, and a plan estimated above ``max_queries`` is refused before any query."""
    from advml.models.http import open_target  # requests only for a remote audit

    check_cost(config, ds)
    return open_target(
        config.target_url,
        config.target_config,
        input_shape=tuple(ds.input_shape),
        n_classes=ds.n_classes,
        bounds=ds.bounds,
        query_budget=config.max_queries,
        cache_dir=None if out_dir is None else out_dir / "steps" / "queries",
        seed=config.seed,
    )


def _class_names(classes: Any) -> list[str] | None:
    """Class names to order an image folder's classes by (a count says nothing there)."""
    return [str(c) for c in classes] if isinstance(classes, list | tuple) else None


def _reference_build(model: Classifier, ds: Dataset) -> dict[str, Any]:
    """``{"architecture": name, "retrain": "reference recipe"}`` when a model file holds
    one of advml's reference networks for ``ds`` as built (what ``advml train`` writes,
    recorded by :func:`~advml.models.architectures.build`): sections that train copies
    (backdoor, watermark, shadow models) can then train that architecture with the
    reference recipe, as for the audit's own reference model. Else ``{}``."""
    from advml.models.reference import TRAINING

    recorded = getattr(getattr(model, "module", None), "advml_architecture", None)
    if not (isinstance(recorded, tuple) and len(recorded) == 2):
        return {}
    name, kwargs = recorded
    expected = (
        {
            "input_shape": list(ds.input_shape),
            "n_classes": ds.n_classes,
            **TRAINING[name].arch_kwargs,
        }
        if name in TRAINING
        else None
    )
    # Built in this process the shape is a tuple, read back from a file a list.
    given = {k: list(v) if isinstance(v, tuple) else v for k, v in dict(kwargs).items()}
    if expected is None or given != expected:
        return {}
    return {"architecture": name, "retrain": "reference recipe"}


def _save_records(
    report: dict[str, Any],
    artifacts: dict[str, dict[str, np.ndarray]],
    out_dir: Path | None,
) -> dict[str, dict[str, np.ndarray]]:
    """Write the sections' per-input records beside report.json (``save_examples``) and
    name the files in ``report["examples_files"]``; the pictures' arrays are returned."""
    pictures: dict[str, dict[str, np.ndarray]] = {}
    files: dict[str, Any] = {}
    for name, arrays in artifacts.items():
        kept, records, inputs = split_records(arrays)
        if kept:
            pictures[name] = kept
        if out_dir is not None and (records or inputs):
            out_dir.mkdir(parents=True, exist_ok=True)
            files[name] = write_records(out_dir, name, records, inputs)
    if out_dir is not None:
        report["examples_files"] = files
    return pictures


def _audited_model(
    config: AuditConfig, ds: Dataset, model: Classifier | None, *, show_progress: bool
) -> tuple[Classifier, dict[str, Any]]:
    """The model the audit attacks, as the threat model's adversary sees it, and how it
    was obtained (given, read from a file, or a reference model trained or read back)."""
    model_info: dict[str, Any]
    if model is not None:
        model_info = {"source": "given"}
    elif config.model is not None:
        model = _load_model_file(config, defaults=dataset_defaults(ds))
        model_info = {"source": "file", "file": str(config.model)}
        report = how_loaded(model)
        if report is not None:
            # How the file was read and why (white-box or not) belongs in the report.
            model_info["loaded"] = report.to_dict()
            if show_progress:
                print(f"model: {report}", file=sys.stderr)
        adopt_data_bounds(model, ds)
        model_info.update(_reference_build(model, ds))
    else:
        model, model_info = reference_model(
            ds, architecture=config.architecture, seed=config.seed, show_progress=show_progress
        )
        model_info["source"] = "reference"
    if model_info["source"] != "given" or config.device is not None:
        model = place(model, config.device, config.precision)
    elif config.precision is not None:
        model = place(model, model.device, config.precision)
    check_finite_outputs(model, ds.x_test, name=str(model_info.get("file", "the model")))
    if config.access != "white-box":
        model = restrict_access(model, config.access)
        model_info["access"] = config.access
    if tuple(model.input_shape) != tuple(ds.input_shape) or model.n_classes != ds.n_classes:
        raise ValueError(
            f"the model expects inputs {model.input_shape} and {model.n_classes} classes, but "
            f"dataset {ds.name!r} has inputs {ds.input_shape} and {ds.n_classes} classes; "
            f"choose the dataset the model was trained on (--dataset)"
        )
    return model, model_info


def _context(
    config: AuditConfig,
    ds: Dataset,
    model: Classifier,
    model_info: dict[str, Any],
    *,
    out_dir: Path | None,
    show_progress: bool,
    step_log: list[dict[str, Any]] | None = None,
) -> AuditContext:
    """The context every section gets: the evaluated subset, the fingerprints that key
    the step cache, and the clean predictions (itself a cached step)."""
    sub = ds.subset(n_test=min(config.n_samples, ds.x_test.shape[0]), seed=config.seed)
    x, y = sub.x_test, sub.y_test
    ctx = AuditContext(
        config=config,
        model=model,
        model_info=model_info,
        dataset=ds,
        x=x,
        y=y,
        clean_pred=np.empty(0, dtype=np.int64),
        clean_proba=np.empty((0, model.n_classes), dtype=np.float32),
        model_fp=model.fingerprint(),
        data_fp=fingerprint([x, y]),
        cache=ResultCache(out_dir / "steps", log=log) if out_dir is not None else None,
        show_progress=show_progress,
        section="clean",
        step_log=step_log,
    )
    _, clean = ctx.step("predictions", None, lambda: _clean_step(model, x, y))
    return replace(ctx, clean_pred=clean["pred"], clean_proba=clean["proba"])


def _run_sections(
    ctx: AuditContext,
    sections: dict[str, type[AuditSection]],
    *,
    show_progress: bool,
    timings: dict[str, float] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, dict[str, np.ndarray]]]:
    """Each section in report order: its report entry (or why it was skipped) and the
    arrays its pictures draw."""
    report_sections: dict[str, Any] = {}
    skipped: list[dict[str, Any]] = []
    artifacts: dict[str, dict[str, np.ndarray]] = {}
    bar = progress(
        list(sections.items()), desc="audit", total=len(sections), enabled=show_progress, leave=True
    )
    for name, cls in bar:
        bar.set_postfix_str(name)
        section = cls()
        settings = cls.settings_for(ctx.config)
        sctx = ctx.for_section(name)
        reason = section.skip_reason(sctx, settings)
        if reason is not None:
            log.info("section %s skipped: %s", name, reason)
            skipped.append(
                {"section": name, "title": cls.title, "threat": cls.threat, "reason": reason}
            )
            continue
        before = ctx.model.query_count
        section_started = time.perf_counter()
        try:
            output = section.run(sctx, settings)
        except QueryBudgetExceededError as err:
            # The section could not finish a figure within the model's query budget: it is
            # reported as not assessed, with what it spent, and the audit goes on (the
            # steps it finished are stored, so a rerun with a larger budget reuses them).
            spent = ctx.model.query_count - before
            reason = f"the model's query budget ran out ({spent} queries spent here): {err}"
            log.info("section %s stopped: %s", name, reason)
            skipped.append(
                {
                    "section": name,
                    "title": cls.title,
                    "threat": cls.threat,
                    "reason": reason,
                    "queries_spent": spent,
                }
            )
            continue
        except SectionCannotRun as err:
            # The section cannot run on this model and data (too few inputs for its
            # settings, say): it is reported as not run, with the reason and the fix, and
            # the rest of the report is still written; the traceback goes to audit.log.
            log.exception("section %s could not run", name)
            skipped.append(
                {
                    "section": name,
                    "title": cls.title,
                    "threat": cls.threat,
                    "reason": f"could not run on this model and data: {err}",
                }
            )
            continue
        if timings is not None:  # wall time, in the run's record (reproducibility)
            timings[name] = round(time.perf_counter() - section_started, 2)
        report_sections[name] = {
            "title": cls.title,
            "threat": cls.threat,
            "settings": plain(settings),
            **output.data,
            "verdict": output.verdict.to_dict(),
        }
        if output.artifacts:
            artifacts[name] = output.artifacts
    return report_sections, skipped, artifacts


def _dataset_entry(ctx: AuditContext) -> dict[str, Any]:
    ds = ctx.dataset
    return {
        "name": ds.name,
        "description": ds.description,
        "input_shape": list(ds.input_shape),
        "n_classes": ds.n_classes,
        "class_names": list(ds.class_names),
        "bounds": list(ds.bounds),
        "n_evaluated": int(ctx.x.shape[0]),
        **_data_use(ctx),
        "fingerprint": ctx.data_fp,
    }


def _data_use(ctx: AuditContext) -> dict[str, Any]:
    """How many inputs each split held (after ``limit``) and how the bounds were given."""
    ds = ctx.dataset
    fb = ds.feature_bounds
    return {
        "n_train": ds.n_train,
        "n_test": ds.n_test,
        "limit": ctx.config.limit,
        "feature_bounds": None if fb is None else [fb[0].ravel().tolist(), fb[1].ravel().tolist()],
        "eps_scale": ctx.config.eps_scale,
    }


def _model_entry(ctx: AuditContext) -> dict[str, Any]:
    model = ctx.model
    return {
        **ctx.model_info,
        "adapter": type(model).__name__,
        "description": model.describe(),
        "has_gradients": bool(model.has_gradients),
        "has_scores": bool(model.has_scores),
        "fingerprint": ctx.model_fp,
        "clean_accuracy": ctx.clean_accuracy,
    }


def environment(model: Classifier | None = None) -> dict[str, Any]:
    """What the numbers of an audit depend on besides its config and seed.

    The same seed gives the same weights and the same report only with the same thread
    counts (the order of float additions in a parallel reduction depends on them), the
    same torch and numpy versions and the same CPU kernels (``cpu_capability``: AVX2 and
    AVX512 kernels round differently). A report records them so that two reports can be
    compared knowingly.
    """
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cuda": torch.version.cuda,
    }
    if model is not None:
        env["device"] = str(model.device)
        env["device_name"] = describe_device(model.device)
        env["precision"] = getattr(model, "precision", "float32")
    return env


def _git_hash() -> str | None:
    """The commit of the advml source tree when it is a git checkout (else ``None``)."""
    import subprocess

    here = Path(__file__).resolve().parent
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    text = done.stdout.strip()
    return text if done.returncode == 0 and len(text) == 40 else None


def _version(module: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return None


def reproducibility(ctx: AuditContext, steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything needed to re-run the figures and to know whether a rerun can match.

    ``advml audit --rerun report.json`` reads ``config`` back; the fingerprints say
    whether the model and the evaluated inputs are the same; ``steps`` gives the time and
    queries of every step (a step read back from the cache costs nothing).
    """
    from advml.audit.config_file import config_to_yaml

    return {
        "advml_version": __version__,
        "git_hash": _git_hash(),
        "versions": {
            name: _version(name)
            for name in ("torch", "numpy", "scipy", "scikit-learn", "pandas", "pyarrow")
        },
        "device": str(ctx.model.device),
        "threads": torch.get_num_threads(),
        "seeds": {"audit": ctx.config.seed},
        "config": ctx.config.to_dict(),
        "config_yaml": config_to_yaml(ctx.config),
        "model_fingerprint": ctx.model_fp,
        "data_fingerprint": ctx.data_fp,
        "steps": steps,
        "queries": int(ctx.model.query_count),
    }


def check_thresholds(report: dict[str, Any], config: AuditConfig) -> dict[str, Any]:
    """Compare the report's figures with ``config.fail_under`` / ``fail_over``.

    A figure is ``section.number`` (a number of that section's verdict, or a top-level
    number of the section) or a bare verdict number found in exactly one section, or
    ``clean_accuracy``. A figure the report does not have fails, with the reason.
    """
    checks: list[dict[str, Any]] = []
    for op, table in (("under", config.fail_under), ("over", config.fail_over)):
        for figure, threshold in table.items():
            value, problem = _figure(report, figure)
            # The bound that is safe for the owner: a figure that must stay high passes
            # only when its interval's lower end does, one that must stay low only when
            # its upper end does; a figure without an interval is compared as it is.
            bound_name = f"{figure}_low" if op == "under" else f"{figure}_high"
            bound, _ = _figure(report, bound_name) if value is not None else (None, None)
            compared = value if bound is None else bound
            passed = compared is not None and (
                compared >= threshold if op == "under" else compared <= threshold
            )
            check: dict[str, Any] = {
                "figure": figure,
                "fail_if": "below" if op == "under" else "above",
                "threshold": float(threshold),
                "value": value,
                "compared": compared,
                "compared_what": "the figure (it has no interval)"
                if bound is None
                else (
                    "the lower end of its 95% interval"
                    if op == "under"
                    else "the upper end of its 95% interval"
                ),
                "passed": bool(passed),
            }
            if problem:
                check["problem"] = problem
            checks.append(check)
    return {"passed": all(c["passed"] for c in checks), "checks": checks}


def _figure(report: dict[str, Any], figure: str) -> tuple[float | None, str | None]:
    sections = report["sections"]
    if figure == "clean_accuracy":
        return float(report["model"]["clean_accuracy"]), None
    section, dot, number = figure.partition(".")
    candidates: list[tuple[str, Any]] = []
    if dot:
        s = sections.get(section)
        if s is not None:
            for source in (s["verdict"], s):
                if number in source:
                    candidates.append((section, source[number]))
                    break
    else:
        candidates = [
            (n, s["verdict"][figure]) for n, s in sections.items() if figure in s["verdict"]
        ]
    available = sorted(
        f"{n}.{k}"
        for n, s in sections.items()
        for k, v in s["verdict"].items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    )
    if not candidates:
        return None, f"the report has no figure {figure!r}; available: {available}"
    if len(candidates) > 1:
        names = [f"{n}.{figure}" for n, _ in candidates]
        return None, f"{figure!r} is in several sections; write one of {names}"
    value = candidates[0][1]
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None, f"{figure} was not measured in this audit"
    return float(value), None


def _chosen_sections(config: AuditConfig) -> dict[str, type[AuditSection]]:
    available = audit_sections.available_sections()
    if config.sections is None:
        return available
    unknown = [n for n in config.sections if n not in available]
    if unknown:
        raise ValueError(f"sections has unknown names {unknown}; available: {sorted(available)}")
    return {n: available[n] for n in available if n in config.sections}


def _summary(sections: dict[str, Any], skipped: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per threat: the worst level of its sections and each section's verdict."""
    rank = {"fail": 3, "warn": 2, "pass": 1, "unknown": 0}
    summary: dict[str, dict[str, Any]] = {}
    for threat in THREATS:
        verdicts = [
            {"section": name, "title": s["title"], **s["verdict"]}
            for name, s in sections.items()
            if s["threat"] == threat
        ]
        not_run = [s for s in skipped if s["threat"] == threat]
        level = max((v["level"] for v in verdicts), key=rank.__getitem__, default="unknown")
        summary[threat] = {
            "question": _THREAT_WORDS[threat],
            "level": level,
            "verdicts": verdicts,
            "not_assessed": [{"section": s["section"], "reason": s["reason"]} for s in not_run],
        }
    return summary


def plan(
    config: AuditConfig, model: Classifier
) -> tuple[list[tuple[str, float, EvasionAttack]], list[dict[str, str]]]:
    """The evasion steps (attack, ε) this model allows, and what was skipped and why."""
    return evasion_plan(config, model)


def _clean_step(
    model: Classifier, x: np.ndarray, y: np.ndarray
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    with model.evaluating():
        if model.has_scores:
            proba = np.asarray(model.predict_proba(x))
            pred = proba.argmax(1)
        else:
            pred = np.asarray(model.predict(x))
            proba = np.eye(model.n_classes, dtype=np.float32)[pred]
    return {"accuracy": float((pred == y).mean())}, {
        "pred": pred,
        "proba": proba.astype(np.float32),
    }


def load_report(path: str | Path) -> dict[str, Any]:
    """Read a ``report.json`` written by an audit."""
    data: dict[str, Any] = json.loads(Path(path).read_text())
    return data
