"""Plan and run an audit; every finished step is cached so a rerun resumes.

The report is plain data (``report.json``, schema in ``advml/report/schema.json``);
``advml.report`` turns it into HTML and a terminal summary.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from advml import __version__
from advml.audit.config import AuditConfig
from advml.audit.reference import reference_model
from advml.audit.sections import AuditContext, AuditSection, available_sections
from advml.audit.sections.base import Threat
from advml.audit.sections.evasion import plan as evasion_plan
from advml.data import Dataset, load_dataset
from advml.evasion.base import EvasionAttack
from advml.models.base import Classifier
from advml.models.io import load_model
from advml.models.torch import TorchClassifier
from advml.runtime.cache import ResultCache, fingerprint
from advml.runtime.progress import progress

__all__ = ["SCHEMA_VERSION", "AuditResult", "load_report", "plan", "run_audit"]

# Which steps ran and which were read back: written to OUT/audit.log, not the terminal.
log = logging.getLogger("advml.audit.steps")
log.propagate = False

SCHEMA_VERSION = "2.0"
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
    ds = dataset if dataset is not None else load_dataset(config.dataset)
    model_info: dict[str, Any]
    if model is not None:
        model_info = {"source": "given"}
    elif config.model is not None:
        model = load_model(config.model, trust=config.trust_model_file)
        model_info = {"source": "file", "file": str(config.model)}
    else:
        model, model_info = reference_model(
            ds, architecture=config.architecture, seed=config.seed, show_progress=show_progress
        )
        model_info["source"] = "reference"
    if config.access != "white-box":
        model = restrict_access(model, config.access)
        model_info["access"] = config.access
    if tuple(model.input_shape) != tuple(ds.input_shape) or model.n_classes != ds.n_classes:
        raise ValueError(
            f"the model expects inputs {model.input_shape} and {model.n_classes} classes, but "
            f"dataset {ds.name!r} has inputs {ds.input_shape} and {ds.n_classes} classes; "
            f"choose the dataset the model was trained on (--dataset)"
        )
    sub = ds.subset(n_test=min(config.n_samples, ds.x_test.shape[0]), seed=config.seed)
    x, y = sub.x_test, sub.y_test
    out_dir = Path(out) if out is not None else None
    cache = ResultCache(out_dir / "steps", log=log) if out_dir is not None else None
    model_fp = model_fingerprint(model)
    data_fp = fingerprint([x, y])
    ctx = AuditContext(
        config=config,
        model=model,
        model_info=model_info,
        dataset=ds,
        x=x,
        y=y,
        clean_pred=np.empty(0, dtype=np.int64),
        clean_proba=np.empty((0, model.n_classes), dtype=np.float32),
        model_fp=model_fp,
        data_fp=data_fp,
        cache=cache,
        show_progress=show_progress,
        section="clean",
    )
    _, clean = ctx.step("predictions", None, lambda: _clean_step(model, x, y))
    ctx = replace(ctx, clean_pred=clean["pred"], clean_proba=clean["proba"])

    report_sections: dict[str, Any] = {}
    skipped: list[dict[str, str]] = []
    artifacts: dict[str, dict[str, np.ndarray]] = {}
    bar = progress(
        list(sections.items()), desc="audit", total=len(sections), enabled=show_progress, leave=True
    )
    for name, cls in bar:
        bar.set_postfix_str(name)
        section = cls()
        settings = cls.settings_for(config)
        sctx = ctx.for_section(name)
        reason = section.skip_reason(sctx, settings)
        if reason is not None:
            log.info("section %s skipped: %s", name, reason)
            skipped.append(
                {"section": name, "title": cls.title, "threat": cls.threat, "reason": reason}
            )
            continue
        output = section.run(sctx, settings)
        report_sections[name] = {
            "title": cls.title,
            "threat": cls.threat,
            "settings": _plain(settings),
            **output.data,
            "verdict": output.verdict.to_dict(),
        }
        if output.artifacts:
            artifacts[name] = output.artifacts

    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "advml_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 2),
        "config": config.to_dict(),
        "dataset": {
            "name": ds.name,
            "description": ds.description,
            "input_shape": list(ds.input_shape),
            "n_classes": ds.n_classes,
            "class_names": list(ds.class_names),
            "bounds": list(ds.bounds),
            "n_evaluated": int(x.shape[0]),
            "fingerprint": data_fp,
        },
        "model": {
            **model_info,
            "adapter": type(model).__name__,
            "description": _describe(model),
            "has_gradients": bool(model.has_gradients),
            "has_scores": bool(model.has_scores),
            "fingerprint": model_fp,
            "clean_accuracy": ctx.clean_accuracy,
        },
        "sections": report_sections,
        "skipped_sections": skipped,
        "summary": _summary(report_sections, skipped),
    }
    report["thresholds"] = check_thresholds(report, config)
    if out_dir is not None:
        from advml.report import write_report

        write_report(report, out_dir, artifacts=artifacts)
    return AuditResult(report=report, artifacts=artifacts, out=out_dir)


def restrict_access(model: Classifier, access: str) -> Classifier:
    """``model`` as an adversary with ``access`` sees it: a prediction API that returns
    scores (``"scores"``: no gradients) or labels only (``"labels"``)."""
    from advml.models import CallableClassifier

    if access == "white-box":
        return model
    if access == "scores" and not model.has_scores:
        raise ValueError("access='scores' needs a model that returns scores; this one gives labels")

    def answer(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            if access == "scores":
                return torch.softmax(model.logits(x), dim=1)
            return model.predict_labels(x)

    return CallableClassifier(
        answer,
        input_shape=model.input_shape,
        n_classes=model.n_classes,
        bounds=model.bounds,
        returns="probs" if access == "scores" else "labels",
        accepts="torch",
        device=model.device,
    )


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
            passed = value is not None and (
                value >= threshold if op == "under" else value <= threshold
            )
            check: dict[str, Any] = {
                "figure": figure,
                "fail_if": "below" if op == "under" else "above",
                "threshold": float(threshold),
                "value": value,
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
    available = available_sections()
    if config.sections is None:
        return available
    unknown = [n for n in config.sections if n not in available]
    if unknown:
        raise ValueError(f"sections has unknown names {unknown}; available: {sorted(available)}")
    return {n: available[n] for n in available if n in config.sections}


def _summary(sections: dict[str, Any], skipped: list[dict[str, str]]) -> dict[str, dict[str, Any]]:
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


def _plain(obj: Any) -> Any:
    """Settings as JSON data (tuples to lists)."""
    return json.loads(json.dumps(obj, default=str))


def model_fingerprint(model: Classifier) -> str:
    """A hash of the model: its weights for torch models, else answers on a fixed probe."""
    meta = [type(model).__name__, list(model.input_shape), model.n_classes, list(model.bounds)]
    if isinstance(model, TorchClassifier):
        state = {k: v.detach().cpu().numpy() for k, v in model.module.state_dict().items()}
        return fingerprint([meta, state, repr(model.preprocessing)])
    gen = torch.Generator().manual_seed(12345)
    low, high = model.bounds
    probe = low + (high - low) * torch.rand(16, *model.input_shape, generator=gen)
    probe = probe.to(model.device)
    with torch.no_grad():
        if model.has_scores:
            answer = np.round(torch.softmax(model.logits(probe), 1).cpu().numpy(), 5)
        else:
            answer = model.predict_labels(probe).cpu().numpy()
    return fingerprint([meta, answer])


def _describe(model: Classifier) -> str:
    describe = getattr(model, "describe", None)
    if callable(describe):
        return str(describe())
    if isinstance(model, TorchClassifier):
        arch = getattr(model.module, "advml_architecture", None)
        n_params = sum(p.numel() for p in model.module.parameters())
        name = arch[0] if arch else type(model.module).__name__
        return f"PyTorch {name} ({n_params:,} parameters), white-box"
    return repr(model)


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
