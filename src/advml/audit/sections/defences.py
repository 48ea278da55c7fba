"""Input-cleansing defences, evaluated honestly: standard and adaptive attacks.

For every configured preprocessor the section puts it in front of the audited model
(:class:`~advml.defences.preprocess.DefendedClassifier`) and measures, at one ε (the
evasion verdict's ``reference_eps`` unless set), on a subset of the evaluated inputs:

- clean accuracy behind the defence (what the defence costs);
- robust accuracy under the *standard* attack: L∞ PGD with plain gradients through the
  pipeline, as a library attack run against the defended model computes them;
- robust accuracy under the *adaptive* attack: the same PGD with BPDA (identity gradient
  through non-differentiable steps) and, for randomised defences, EOT (Athalye, Carlini &
  Wagner, ICML 2018, §4.1 and §4.3);
- the per-input worst case of the two, beside the undefended model's figures.

A defence whose standard robust accuracy is high but whose adaptive robust accuracy is
close to the undefended model's only *looks* strong (gradient masking), and the report
says so in plain words. The section also measures feature-squeezing detection (Xu, Evans
& Qi, NDSS 2018): the share of successful adversarial examples flagged at a threshold set
on clean inputs for a 5% false-positive rate.

Settings (``section_settings["defences"]``):

``defences``
    ``{preprocessor name: its parameters}``, e.g. ``{"jpeg": {"quality": 30}}``; every
    name registered in the ``preprocess`` family is allowed (``autoencoder`` is trained
    on the dataset's training split inside its step).
``n_samples``
    Evaluated inputs attacked (the first ones of the audit's subset).
``eps``
    L∞ budget; ``None`` for the config's ``reference_eps``.
``steps``
    PGD iterations of both attacks.
``eot_samples``
    Draws per gradient of the adaptive attack on a randomised defence.
``detection``
    Whether to measure feature-squeezing detection; ``detection_fpr`` is its target
    false-positive rate on clean inputs.
``robust_model``
    Path of a model trained with a robust-training defence (``advml adversarial-train``
    writes one) to show beside the preprocessors: its clean accuracy and its accuracy
    under the same PGD, on the same inputs. ``None`` (default): no such row, since
    training one takes tens of minutes.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any, ClassVar

import numpy as np

from advml import registry
from advml.audit.sections._checks import defence_checks, inconclusive
from advml.audit.sections.base import (
    AuditContext,
    AuditSection,
    Level,
    SectionOutput,
    Verdict,
    budget_ran_out,
)
from advml.defences.detection import FeatureSqueezingDetector
from advml.defences.preprocess import Autoencoder, Preprocessor, evaluate_defence
from advml.defences.preprocess.evaluation import MASKING_GAP
from advml.errors import QueryBudgetExceededError
from advml.evasion.base import EvasionAttack
from advml.metrics.intervals import from_rate
from advml.models import load_model
from advml.models.base import Classifier
from advml.validation import check_number

__all__ = ["SECTION", "DefencesSection"]

MIN_THRESHOLD_INPUTS = 20
"""Fewest held-out clean inputs the detection threshold is fitted on; with fewer, the
clean versions of the attacked inputs are used (and the report says so)."""


class DefencesSection(AuditSection):
    """Input-cleansing defences under the standard and the adaptive attack, and detection."""

    name = "defences"
    title = "Defences: input cleansing under adaptive attack"
    threat = "integrity"
    order = 11
    default_settings: ClassVar[Mapping[str, Any]] = {
        "defences": {
            "median_smoothing": {"strength": "low"},
            "feature_squeezing": {"strength": "medium"},
            "gaussian_noise": {"strength": "medium"},
            "jpeg": {"strength": "medium"},
        },
        "n_samples": 100,
        "eps": None,
        "steps": 10,
        "eot_samples": 5,
        "detection": True,
        "detection_fpr": 0.05,
        "robust_model": None,
    }
    quick_settings: ClassVar[Mapping[str, Any]] = {"n_samples": 100, "steps": 5, "eot_samples": 4}

    def skip_reason(self, ctx: AuditContext, settings: Mapping[str, Any]) -> str | None:
        if not ctx.model.has_gradients:
            if ctx.config.access != "white-box":
                why = f"this audit's adversary has {ctx.config.access} access"
            else:
                # The adversary may see everything, but the model itself has no gradients
                # (a tree ensemble, an HTTP API, an ONNX file run by onnxruntime).
                why = f"the model gives none ({ctx.model.describe()})"
            return "the adaptive attack on a defence (BPDA/EOT) needs the model's gradients; " + why
        return None

    def run(self, ctx: AuditContext, settings: Mapping[str, Any]) -> SectionOutput:
        eps = float(ctx.config.reference_eps if settings["eps"] is None else settings["eps"])
        where = "section_settings['defences']"
        check_number(f"{where}['eps']", eps, low=0)
        for key in ("steps", "eot_samples", "n_samples"):
            check_number(f"{where}[{key!r}]", settings[key], low=1, integer=True)
        check_number(f"{where}['detection_fpr']", settings["detection_fpr"], low=0, high=1)
        specs = settings["defences"]
        if not isinstance(specs, Mapping):
            raise ValueError(
                "section_settings['defences']['defences'] must map preprocessor names to "
                "their parameters, e.g. {'jpeg': {'strength': 'high'}}"
            )
        other = None
        if settings["robust_model"] is not None:
            other = _robust_model(str(settings["robust_model"]), ctx.model)
        n = min(int(settings["n_samples"]), len(ctx.y))
        x, y = ctx.x[:n], ctx.y[:n]
        attack = registry.create(
            "evasion", "pgd", eps=eps, steps=int(settings["steps"]), seed=ctx.config.seed
        )

        base, base_arrays = ctx.step(
            f"undefended-eps{eps:g}",
            {"attack": attack.get_params(), "n": n},
            partial(_undefended_step, attack, ctx.model, x, y),
        )
        rows: list[dict[str, Any]] = []
        skipped: list[dict[str, str]] = []
        planned = _plan(specs, ctx.model, ctx.config.seed, skipped)
        bar = ctx.progress(planned, desc="defences", total=len(planned))
        for name, params, prep in bar:
            if hasattr(bar, "set_postfix_str"):
                bar.set_postfix_str(name)
            try:
                meta, _ = ctx.step(
                    f"{name}-eps{eps:g}",
                    {
                        "params": prep.get_params(),
                        "attack": attack.get_params(),
                        "n": n,
                        "eot_samples": int(settings["eot_samples"]),
                    },
                    partial(
                        _defence_step,
                        ctx,
                        prep,
                        attack,
                        x,
                        y,
                        (base["clean_accuracy"], base["robust_accuracy"]),
                        int(settings["eot_samples"]),
                    ),
                )
            except QueryBudgetExceededError as err:
                # The defences measured before are kept; this one is listed as skipped.
                skipped.append({"defence": name, "reason": budget_ran_out(ctx.model, err)})
                continue
            rows.append({"name": name, "params": params, **meta})

        detection = None
        if settings["detection"]:
            try:
                det, _ = ctx.step(
                    f"detection-eps{eps:g}",
                    {
                        "attack": attack.get_params(),
                        "n": n,
                        "fpr": float(settings["detection_fpr"]),
                    },
                    partial(
                        _detection_step,
                        ctx.model,
                        ctx.x,
                        y,
                        n,
                        base_arrays["x_adv"],
                        float(settings["detection_fpr"]),
                    ),
                )
                detection = det
            except QueryBudgetExceededError as err:
                skipped.append({"defence": "detection", "reason": budget_ran_out(ctx.model, err)})
        robust = None
        if other is not None:
            path = str(settings["robust_model"])
            robust, _ = ctx.step(
                f"robust-model-eps{eps:g}",
                {"attack": attack.get_params(), "n": n, "model": _model_fp(other)},
                partial(_robust_model_step, attack, other, x, y, path),
            )
        summary = _summary(rows, base, eps, n) + _comparison_note(ctx, n, int(settings["steps"]))
        if robust is not None:
            summary += (
                f" The robust-trained model ({robust['file']}) keeps "
                f"{_pct(robust['robust_accuracy'])} under the same attack, with "
                f"{_pct(robust['clean_accuracy'])} clean accuracy; it needs no preprocessing "
                "to mask, so the standard attack is already the adaptive one."
            )
        data = {
            "eps": eps,
            "n": n,
            "attack": {"name": attack.name, "params": dict(attack.get_params())},
            "eot_samples": int(settings["eot_samples"]),
            "masking_gap": MASKING_GAP,
            "undefended": base,
            "defences": rows,
            "skipped": skipped,
            "detection": detection,
            "robust_model": robust,
            "summary": summary,
        }
        checks = defence_checks(rows)
        data["evaluation_checks"] = checks
        return SectionOutput(data, inconclusive(_verdict(rows, base, eps, summary, n), checks))


SECTION = DefencesSection


def _plan(
    specs: Mapping[str, Any], model: Classifier, seed: int, skipped: list[dict[str, str]]
) -> list[tuple[str, dict[str, Any], Preprocessor]]:
    """The preprocessors to evaluate; those that do not fit the inputs go to ``skipped``."""
    available = registry.available("preprocess")
    out: list[tuple[str, dict[str, Any], Preprocessor]] = []
    for name, params in specs.items():
        if name not in available:
            raise ValueError(
                f"section_settings['defences']['defences'] names unknown preprocessor "
                f"{name!r}; available: {', '.join(available)}"
            )
        params = dict(params or {})
        if "seed" in registry.schema("preprocess", name):
            params.setdefault("seed", seed)
        prep = registry.create("preprocess", name, **params)
        try:
            if prep.needs_fit:
                # Not fitted yet (the autoencoder is trained inside its step): only the
                # base class's check, whether it needs images, applies now.
                Preprocessor.check_input_shape(prep, tuple(model.input_shape))
            else:
                prep.check_input_shape(tuple(model.input_shape))
        except ValueError as err:
            skipped.append({"defence": name, "reason": str(err)})
            continue
        out.append((name, params, prep))
    return out


def _robust_model(path: str, audited: Classifier) -> Classifier:
    """The robust-training model file, checked against the audited model's inputs."""
    from pathlib import Path

    if not Path(path).is_file():
        raise ValueError(
            f"section_settings['defences']['robust_model']: no model file at {path!r}; "
            "train one with 'advml adversarial-train --out FILE'"
        )
    model = load_model(path)
    if tuple(model.input_shape) != tuple(audited.input_shape) or (
        model.n_classes != audited.n_classes
    ):
        raise ValueError(
            f"section_settings['defences']['robust_model']: {path!r} takes inputs "
            f"{tuple(model.input_shape)} with {model.n_classes} classes, the audited model "
            f"{tuple(audited.input_shape)} with {audited.n_classes}"
        )
    return model


def _model_fp(model: Classifier) -> str:
    return model.fingerprint()


def _robust_model_step(
    attack: EvasionAttack, model: Classifier, x: np.ndarray, y: np.ndarray, path: str
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    meta, _ = _undefended_step(attack, model, x, y)
    return {"file": path, **meta}, {}


def _undefended_step(
    attack: EvasionAttack, model: Classifier, x: np.ndarray, y: np.ndarray
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    result = attack.generate(model, x, y)
    x_adv = np.asarray(result.x_adv, dtype=np.float32)
    with model.evaluating():
        clean = float((np.asarray(model.predict(x)) == y).mean())
    meta = {
        "clean_accuracy": clean,
        "robust_accuracy": float((np.asarray(result.y_adv) == y).mean()),
        "seconds": round(result.seconds, 3),
    }
    return meta, {"x_adv": x_adv}


def _defence_step(
    ctx: AuditContext,
    prep: Preprocessor,
    attack: EvasionAttack,
    x: np.ndarray,
    y: np.ndarray,
    undefended: tuple[float, float],
    eot_samples: int,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    if isinstance(prep, Autoencoder) and not hasattr(prep, "module_"):
        prep.fit(ctx.dataset.x_train, bounds=ctx.model.bounds, show_progress=ctx.show_progress)
    ev = evaluate_defence(
        ctx.model,
        prep,
        x,
        y,
        attack=attack,
        eot_samples=eot_samples if prep.randomised else None,
        seed=ctx.config.seed,
        undefended_accuracy=undefended,
    )
    s = ev.summary()
    meta = {
        "defence": s["defence"],
        "differentiable": bool(prep.differentiable),
        "randomised": bool(prep.randomised),
        "adaptive_method": s["adaptive_method"],
        "eot_samples": int(s["eot_samples"]),
        "clean_accuracy": s["clean_accuracy"],
        "standard_robust_accuracy": s["standard_robust_accuracy"],
        "adaptive_robust_accuracy": s["adaptive_robust_accuracy"],
        "worst_case_robust_accuracy": s["worst_case_robust_accuracy"],
        "clean_cost": max(0.0, s["undefended_clean_accuracy"] - s["clean_accuracy"]),
        "robust_gain": s["robust_gain"],
        "gradient_masking": bool(s["gradient_masking"]),
        "assessment": _assessment(ev.gradient_masking, ev.robust_gain),
        "text": s["verdict"],
        "seconds": round(float(s["seconds"]), 3),
    }
    return meta, {}


ASSESSMENTS = ("only looks strong", "overstated", "no real gain", "some robustness")
"""How a defence fares: gradient masking with (``overstated``) or without (``only looks
strong``) a real gain left under the adaptive attack; otherwise whether the adaptive
attack leaves at least :data:`MASKING_GAP` more accuracy than on the undefended model."""


def _assessment(masking: bool, gain: float) -> str:
    real = gain >= MASKING_GAP
    if masking:
        return "overstated" if real else "only looks strong"
    return "some robustness" if real else "no real gain"


def _detection_step(
    model: Classifier,
    x_all: np.ndarray,
    y: np.ndarray,
    n: int,
    x_adv: np.ndarray,
    fpr: float,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Feature-squeezing detection of the undefended attack's successful examples."""
    detector = FeatureSqueezingDetector(fpr=fpr)
    held_out = x_all[n:]
    x = x_all[:n]
    in_sample = len(held_out) < MIN_THRESHOLD_INPUTS
    detector.fit(model, x if in_sample else held_out)
    with model.evaluating():
        ok_clean = np.asarray(model.predict(x)) == y
        fooled = np.asarray(model.predict(x_adv)) != y
    success = ok_clean & fooled
    rate = float(detector.detect(model, x_adv[success]).detection_rate) if success.any() else None
    meta = {
        "detector": "feature_squeezing",
        "params": {"bit_depth": detector.bit_depth, "median_size": detector.median_size},
        "fpr_target": fpr,
        "threshold": float(detector.threshold_),
        "threshold_inputs": "attacked inputs (clean)" if in_sample else "held-out clean inputs",
        "n_threshold": int(len(x) if in_sample else len(held_out)),
        "n_adversarial": int(success.sum()),
        "detection_rate": rate,
        "fpr_measured": float(detector.detect(model, x).detection_rate),
    }
    return meta, {}


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def _counted(value: float, n: int) -> str:
    """'37.0% (37 of 100; 95% interval 28.2% to 46.8%)'."""
    iv = from_rate(value, n)
    return f"{_pct(value)} ({iv.count} of {n}; 95% interval {_pct(iv.low)} to {_pct(iv.high)})"


def _comparison_note(ctx: AuditContext, n: int, steps: int) -> str:
    """Why the undefended figure here may differ from the evasion section's for the same
    model and ε: this section attacks fewer inputs with a shorter attack (every defence is
    attacked adaptively, which costs EOT samples per step)."""
    total = len(ctx.y)
    if n < total:
        return (
            f" These figures use PGD-{steps} on the first {n} of the {total} audited inputs; "
            "the evasion section's figure for the same model and ε comes from its own "
            f"attacks on all {total}, so the two differ by the inputs and the attack "
            "strength, not by the model."
        )
    return (
        f" These figures use PGD-{steps} on the same {n} inputs as the evasion section, "
        "whose figure for the same ε is the worst case over its own attacks: any difference "
        "between the two comes from the attacks, not the inputs or the model."
    )


def _summary(rows: list[dict[str, Any]], base: Mapping[str, Any], eps: float, n: int = 0) -> str:
    """The trade-off in plain words: which defences only look strong, which help."""
    if not rows:
        return "No input-cleansing defence was evaluated."
    und = _pct(base["robust_accuracy"])
    gap = f"{100 * MASKING_GAP:.0f} points"
    groups = {a: [r["name"] for r in rows if r["assessment"] == a] for a in ASSESSMENTS}
    und_counted = _counted(base["robust_accuracy"], n) if n else und
    clean_counted = _counted(base["clean_accuracy"], n) if n else _pct(base["clean_accuracy"])
    parts = [
        f"At ε = {eps:g} the undefended model keeps {und_counted} accuracy under PGD "
        f"({clean_counted} on the same inputs without attack)."
    ]
    if groups["only looks strong"]:
        names = groups["only looks strong"]
        parts.append(
            f"{_names(names)} only look{_s(names)} strong: the standard attack, which "
            "differentiates through the defence as it is, leaves much higher accuracy than "
            f"the adaptive attack (BPDA/EOT), which brings it within {gap} of the undefended "
            f"{und}. That apparent robustness is gradient masking; an attacker who knows the "
            "defence gets around it."
        )
    if groups["overstated"]:
        names = groups["overstated"]
        parts.append(
            f"For {_names(names, capital=False)} the standard attack overstates the "
            f"robustness by at least {gap} (gradient masking), but some remains under the "
            "adaptive attack."
        )
    helping = groups["overstated"] + groups["some robustness"]
    if helping:
        parts.append(
            f"{_names(helping)} keep{_s(helping)} at least {gap} more than the undefended "
            "model under the adaptive attack. An accuracy measured under an attack is an upper "
            "bound on the true robust accuracy: a stronger adaptive attack can only lower it."
        )
    if groups["no real gain"]:
        names = groups["no real gain"]
        parts.append(
            f"{_names(names)} give{_s(names)} no real protection against an adaptive "
            f"attacker (within {gap} of undefended)."
        )
    return " ".join(parts)


def _s(names: list[str]) -> str:
    return "s" if len(names) == 1 else ""


def _names(names: list[str], *, capital: bool = True) -> str:
    shown = [n.replace("_", " ") for n in names]
    text = ", ".join(shown[:-1]) + (" and " if len(shown) > 1 else "") + shown[-1]
    return text[0].upper() + text[1:] if capital else text


def _verdict(
    rows: list[dict[str, Any]],
    base: Mapping[str, Any],
    eps: float,
    summary: str,
    n: int = 0,
) -> Verdict:
    """Level from the best defence's worst-case robust accuracy and its 95 % interval, as
    evasion's verdict: "defences hold" needs the interval's lower bound at 80 % of clean
    accuracy, "defences fail" its upper bound below 50 %."""
    if not rows:
        return Verdict(
            "unknown",
            "unknown",
            "No input-cleansing defence could be evaluated on this model's inputs.",
            {"defended_robust_accuracy": None},
        )
    best = max(rows, key=lambda r: r["worst_case_robust_accuracy"])
    acc = float(best["worst_case_robust_accuracy"])
    clean = float(base["clean_accuracy"])
    iv = from_rate(acc, n) if n else None
    low, high = (iv.low, iv.high) if iv else (acc, acc)
    level: Level
    if clean > 0 and low >= 0.8 * clean:
        level = "pass"
    elif clean <= 0 or high < 0.5 * clean:
        level = "fail"
    else:
        level = "warn"
    label = {"pass": "defences hold", "warn": "defences help partly", "fail": "defences fail"}
    shown = _counted(acc, n) if n else _pct(acc)
    text = (
        f"The best input-cleansing defence evaluated, {best['name'].replace('_', ' ')}, "
        f"keeps {shown} accuracy against the stronger of the standard and the adaptive "
        f"attack at ε = {eps:g}. " + summary
    )
    numbers = {
        "defended_robust_accuracy": acc,
        "defended_robust_accuracy_low": low,
        "defended_robust_accuracy_high": high,
        "n": n,
        "undefended_robust_accuracy": float(base["robust_accuracy"]),
        "undefended_clean_accuracy": clean,
        "best_defence": best["name"],
        "masking_defences": sum(1 for r in rows if r["gradient_masking"]),
        "eps": eps,
    }
    return Verdict(level, label[level], text, numbers)
