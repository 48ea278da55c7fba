"""Plan and run an audit; every finished step is cached so a rerun resumes.

The report is plain data (``report.json``, schema in ``advml/report/schema.json``);
``advml.report`` turns it into HTML and a terminal summary.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from advml import __version__, registry
from advml.audit.config import AuditConfig
from advml.audit.reference import reference_model
from advml.data import Dataset, load_dataset
from advml.evasion.base import EvasionAttack
from advml.metrics import attack_success_rate
from advml.models.base import Classifier
from advml.models.io import load_model
from advml.models.torch import TorchClassifier
from advml.runtime.cache import ResultCache, fingerprint
from advml.runtime.progress import progress

__all__ = ["SCHEMA_VERSION", "AuditResult", "run_audit"]

SCHEMA_VERSION = "1.0"
N_EXAMPLE_CANDIDATES = 64


@dataclass
class AuditResult:
    """The report (plain data) and the arrays the HTML report draws."""

    report: dict[str, Any]
    examples: dict[str, np.ndarray] = field(default_factory=dict)
    out: Path | None = None


def run_audit(
    config: AuditConfig | None = None,
    *,
    out: str | Path | None = None,
    model: Classifier | None = None,
    dataset: Dataset | None = None,
    show_progress: bool = True,
) -> AuditResult:
    """Run every applicable check of ``config`` against a model and collect a report.

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
    config = config or AuditConfig()
    started = time.perf_counter()
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
    if tuple(model.input_shape) != tuple(ds.input_shape) or model.n_classes != ds.n_classes:
        raise ValueError(
            f"the model expects inputs {model.input_shape} and {model.n_classes} classes, but "
            f"dataset {ds.name!r} has inputs {ds.input_shape} and {ds.n_classes} classes; "
            f"choose the dataset the model was trained on (--dataset)"
        )
    sub = ds.subset(n_test=min(config.n_samples, ds.x_test.shape[0]), seed=config.seed)
    x, y = sub.x_test, sub.y_test
    out_dir = Path(out) if out is not None else None
    cache = ResultCache(out_dir / "steps") if out_dir is not None else None
    model_fp = model_fingerprint(model)
    data_fp = fingerprint([x, y])

    steps, skipped = plan(config, model)
    clean = _cached(
        cache, f"clean-{fingerprint([model_fp, data_fp])}", lambda: _clean_step(model, x, y)
    )
    bar = progress(steps, desc="audit", total=len(steps), enabled=show_progress, leave=True)
    points: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in steps_by_attack(steps)}
    step_arrays: dict[tuple[str, float], dict[str, np.ndarray]] = {}
    for attack_name, eps, attack in bar:
        bar.set_postfix_str(f"{attack_name} eps={eps:g}")
        key = f"{attack_name}-eps{eps:g}-" + fingerprint(
            [model_fp, data_fp, attack.get_params(), SCHEMA_VERSION]
        )
        meta, arrays = _cached(
            cache, key, lambda a=attack: _attack_step(a, model, x, y, clean[1]["pred"])
        )
        points[attack_name].append(meta)
        step_arrays[(attack_name, eps)] = arrays

    evasion = _evasion_section(config, clean[0], points, skipped)
    examples = _examples(config, ds, x, y, clean, step_arrays, evasion)
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
            "clean_accuracy": clean[0]["accuracy"],
        },
        "sections": {"evasion": evasion},
        "summary": {"integrity": evasion["verdict"]},
    }
    if out_dir is not None:
        from advml.report import write_report

        write_report(report, out_dir, examples=examples)
    return AuditResult(report=report, examples=examples, out=out_dir)


def plan(
    config: AuditConfig, model: Classifier
) -> tuple[list[tuple[str, float, EvasionAttack]], list[dict[str, str]]]:
    """The (attack, ε) steps this model allows, and what was skipped with the reason."""
    steps: list[tuple[str, float, EvasionAttack]] = []
    skipped: list[dict[str, str]] = []
    for name in config.attacks:
        cls = registry.get("evasion", name)
        assert issubclass(cls, EvasionAttack)
        if cls.needs_gradients and not model.has_gradients:
            skipped.append(
                {"attack": name, "reason": f"{name} needs gradients; the model gives none"}
            )
            continue
        if cls.needs_scores and not model.has_scores:
            skipped.append(
                {"attack": name, "reason": f"{name} needs scores; the model returns labels only"}
            )
            continue
        settings = dict(config.attack_settings.get(name, {}))
        for eps in config.eps:
            attack = registry.create("evasion", name, **{**settings, "eps": eps})
            if "seed" in attack.get_params():
                attack = attack.set_params(seed=config.seed)
            steps.append((name, eps, attack))  # type: ignore[arg-type]
    return steps, skipped


def steps_by_attack(steps: list[tuple[str, float, EvasionAttack]]) -> list[tuple[str, list[float]]]:
    order: dict[str, list[float]] = {}
    for name, eps, _ in steps:
        order.setdefault(name, []).append(eps)
    return list(order.items())


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


def _cached(cache: ResultCache | None, key: str, compute: Any) -> Any:
    if cache is not None:
        hit = cache.get(key)
        if hit is not None:
            return hit
    meta, arrays = compute()
    if cache is not None:
        cache.put(key, meta, arrays)
    return meta, arrays


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


def _attack_step(
    attack: EvasionAttack, model: Classifier, x: np.ndarray, y: np.ndarray, clean_pred: np.ndarray
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    result = attack.generate(model, x, y)
    x_adv = np.asarray(result.x_adv)
    with model.evaluating():
        proba = (
            np.asarray(model.predict_proba(x_adv[:N_EXAMPLE_CANDIDATES]))
            if model.has_scores
            else None
        )
    summary = result.summary()
    meta = {
        "eps": float(attack.get_params()["eps"]),
        "robust_accuracy": float((result.y_adv == y).mean()),
        # Among inputs the model got right before the attack, so ε = 0 gives 0.
        "success_rate": _finite(attack_success_rate(y, clean_pred, result.y_adv)) or 0.0,
        "median_l2": _finite(summary["median_l2"]),
        "median_linf": _finite(summary["median_linf"]),
        "mean_queries": summary["mean_queries"],
        "seconds": round(result.seconds, 3),
        "params": {k: v for k, v in attack.get_params().items()},
    }
    arrays = {"y_adv": result.y_adv, "x_adv_head": x_adv[:N_EXAMPLE_CANDIDATES].astype(np.float32)}
    if proba is not None:
        arrays["proba_head"] = proba.astype(np.float32)
    return meta, arrays


def _finite(v: float) -> float | None:
    return None if v is None or math.isnan(v) else float(v)


def _evasion_section(
    config: AuditConfig,
    clean: dict[str, Any],
    points: dict[str, list[dict[str, Any]]],
    skipped: list[dict[str, str]],
) -> dict[str, Any]:
    attacks = [
        {"name": name, "norm": "inf", "params": pts[0]["params"] if pts else {}, "points": pts}
        for name, pts in points.items()
    ]
    return {
        "clean_accuracy": clean["accuracy"],
        "attacks": attacks,
        "skipped": skipped,
        "reference_eps": config.reference_eps,
        "verdict": _verdict(clean["accuracy"], attacks, config.reference_eps),
    }


def _verdict(clean_acc: float, attacks: list[dict[str, Any]], ref_eps: float) -> dict[str, Any]:
    """Worst robust accuracy at the largest ε <= ``ref_eps``, stated in plain words."""
    worst: tuple[float, str, float] | None = None
    for a in attacks:
        eligible = [p for p in a["points"] if p["eps"] <= ref_eps + 1e-12 and p["eps"] > 0]
        if not eligible:
            continue
        p = max(eligible, key=lambda q: q["eps"])
        if worst is None or p["robust_accuracy"] < worst[0]:
            worst = (p["robust_accuracy"], a["name"].upper(), p["eps"])
    if worst is None:
        return {
            "level": "unknown",
            "robust_accuracy": None,
            "text": "No attack could be run at a non-zero ε, so robustness is unknown.",
        }
    acc, name, eps = worst
    ratio = acc / clean_acc if clean_acc > 0 else 0.0
    level = "robust" if ratio >= 0.8 else "partly robust" if ratio >= 0.5 else "not robust"
    text = (
        f"Under {name} with ε = {eps:g} (each input value may move by {eps:g} of its range), "
        f"accuracy falls from {clean_acc:.1%} to {acc:.1%}. "
    )
    text += {
        "robust": "The model keeps most of its accuracy against this attacker.",
        "partly robust": "An attacker controls a large share of this model's predictions.",
        "not robust": "An attacker who can make such small changes controls most of this "
        "model's predictions.",
    }[level]
    return {
        "level": level,
        "robust_accuracy": acc,
        "attack": name.lower(),
        "eps": eps,
        "text": text,
    }


def _examples(
    config: AuditConfig,
    ds: Dataset,
    x: np.ndarray,
    y: np.ndarray,
    clean: tuple[dict[str, Any], dict[str, np.ndarray]],
    step_arrays: dict[tuple[str, float], dict[str, np.ndarray]],
    evasion: dict[str, Any],
) -> dict[str, np.ndarray]:
    """Clean/adversarial pairs for the report: successes of the verdict's attack."""
    verdict = evasion["verdict"]
    key = (verdict.get("attack"), verdict.get("eps"))
    if config.examples == 0 or key not in step_arrays:
        return {}
    arrays = step_arrays[key]
    head = arrays["x_adv_head"].shape[0]
    pred_clean = clean[1]["pred"][:head]
    y_adv = arrays["y_adv"][:head]
    chosen = np.flatnonzero((pred_clean == y[:head]) & (y_adv != y[:head]))[: config.examples]
    if chosen.size == 0:
        chosen = np.arange(min(config.examples, head))
    out = {
        "index": chosen,
        "x": x[chosen],
        "x_adv": arrays["x_adv_head"][chosen],
        "y": y[chosen],
        "pred": pred_clean[chosen],
        "pred_adv": y_adv[chosen],
        "conf": clean[1]["proba"][chosen].max(1),
    }
    if "proba_head" in arrays:
        out["conf_adv"] = arrays["proba_head"][chosen].max(1)
    return out


def load_report(path: str | Path) -> dict[str, Any]:
    """Read a ``report.json`` written by an audit."""
    data: dict[str, Any] = json.loads(Path(path).read_text())
    return data
