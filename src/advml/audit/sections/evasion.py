"""Evasion: every configured attack over the ε grid, a robustness curve and a verdict."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from typing import Any, cast

import numpy as np
import torch

from advml import registry
from advml.audit.sections._trees import tree_analysis, tree_verdict
from advml.audit.sections.base import (
    AuditContext,
    AuditSection,
    Level,
    SectionOutput,
    Verdict,
)
from advml.errors import QueryBudgetExceededError
from advml.evasion.base import AdversarialResult, EvasionAttack
from advml.evasion.constraints import FeatureConstraints
from advml.metrics import attack_success_rate
from advml.models.base import Classifier, feature_bounds, feature_span
from advml.runtime.cache import fingerprint as hash_data

__all__ = ["SECTION", "EvasionSection", "plan"]

N_EXAMPLE_CANDIDATES = 64


def black_box_attacks(config: Any, model: Classifier) -> list[tuple[str, str]]:
    """The query attacks a model without gradients gets besides the configured ones,
    each with why: Square from scores, HopSkipJump from labels, and transfer from a
    copy trained on the model's answers (run whatever the model reveals).

    Added when the attacks are the defaults or none of those chosen can run; attacks
    chosen by name that the model allows run alone (a paid budget goes where asked).
    """
    if model.has_gradients:
        return []
    runnable = [
        n for n in config.attacks if registry.get("evasion", n).unsupported_reason(model) is None
    ]
    if runnable and tuple(config.attacks) != _default_attacks(config):
        return []  # attacks chosen by name that the model allows: exactly those run
    reveals = getattr(model, "reveals", "scores" if model.has_scores else "labels only")
    added: list[tuple[str, str]] = []
    query = "square" if model.has_scores else "hopskipjump"
    why = f"the model gives no gradients but answers {reveals}: {query} needs only " + (
        "scores" if model.has_scores else "labels"
    )
    for name, reason in (
        (query, why),
        ("transfer", "no gradients: adversarial examples crafted white-box on a copy trained "
         "on the model's own labels, then sent to it"),
    ):  # fmt: skip
        if name not in config.attacks:
            added.append((name, reason))
    return added


def _default_attacks(config: Any) -> tuple[str, ...]:
    """The config class's default attacks (the user did not choose any)."""
    for f in dataclasses.fields(config):
        if f.name == "attacks":
            return tuple(f.default)  # type: ignore[arg-type]
    return ()


def plan(
    config: Any, model: Classifier
) -> tuple[list[tuple[str, float, EvasionAttack]], list[dict[str, str]]]:
    """The (attack, ε) steps this model allows, and what was skipped with the reason.

    A black-box model (no gradients) also gets the query attacks it allows
    (:func:`black_box_attacks`), so its evasion section never stays unassessed because
    the configured attacks all need gradients.
    """
    steps: list[tuple[str, float, EvasionAttack]] = []
    skipped: list[dict[str, str]] = []
    extra = [name for name, _ in black_box_attacks(config, model)]
    for name in [*config.attacks, *extra]:
        reason = registry.get("evasion", name).unsupported_reason(model)
        if reason is not None:
            skipped.append({"attack": name, "reason": reason})
            continue
        schema = registry.schema("evasion", name)
        settings = dict(config.attack_settings.get(name, {}))
        if name == "hopskipjump":
            # L∞ distances, so that "within ε" means what it means for the other attacks.
            settings.setdefault("norm", "inf")
        rules = getattr(config, "constraints", None)
        if rules is not None:
            if "constraints" not in registry.schema("evasion", name):
                skipped.append(
                    {
                        "attack": name,
                        "reason": f"{name} cannot keep the adversary's feature constraints",
                    }
                )
                continue
            settings.setdefault("constraints", rules)
        budget = getattr(config, "queries_per_input", None)
        if budget is not None and "max_queries" in registry.schema("evasion", name):
            settings.setdefault("max_queries", budget)
        scale = getattr(config, "eps_scale", "absolute")
        if "eps_scale" in registry.schema("evasion", name) and scale_matters(model):
            settings.setdefault("eps_scale", scale)
        if "eps" not in schema:
            # A minimum-norm attack (HopSkipJump) runs once; each ε keeps the examples
            # found within it (the others count as not fooled at that ε).
            inner = registry.create("evasion", name, **settings)
            if "seed" in inner.get_params():
                inner = inner.set_params(seed=config.seed)
            memo: dict[str, Any] = {}
            for eps in config.eps:
                steps.append((name, eps, cast(EvasionAttack, WithinEps(inner, eps, memo))))
            continue
        for eps in config.eps:
            attack = registry.create("evasion", name, **{**settings, "eps": eps})
            if "seed" in attack.get_params():
                attack = attack.set_params(seed=config.seed)
            steps.append((name, eps, attack))
    return steps, skipped


class WithinEps:
    """A minimum-norm attack's examples kept where their L∞ distance is within ``eps``.

    The attack runs once per input set (``memo`` is shared by the ε of one plan); an
    example farther than ``eps`` counts, at that ε, as the clean input, which the model
    classified as ``y`` (else the attack would have returned it at distance 0).
    """

    def __init__(self, attack: EvasionAttack, eps: float, memo: dict[str, Any]) -> None:
        self.attack, self.eps, self.memo = attack, float(eps), memo
        self.name = attack.name

    def get_params(self) -> dict[str, Any]:
        return {**self.attack.get_params(), "eps": self.eps}

    def generate(self, model: Classifier, x: np.ndarray, y: np.ndarray) -> AdversarialResult:
        key = hash_data([np.asarray(x), np.asarray(y)])
        if key not in self.memo:
            self.memo[key] = self.attack.generate(model, x, y)
        result: AdversarialResult = self.memo[key]
        keep = result.success & (result.linf <= self.eps + 1e-6)
        x_adv = np.where(keep.reshape(-1, *[1] * (np.ndim(x) - 1)), np.asarray(result.x_adv), x)
        zero = np.zeros_like(result.l2)
        return replace(
            result,
            x_adv=x_adv.astype(np.float32, copy=False),
            y_adv=np.where(keep, result.y_adv, result.y),
            success=keep,
            l0=np.where(keep, result.l0, 0),
            l2=np.where(keep, result.l2, zero),
            linf=np.where(keep, result.linf, zero),
            params=self.get_params(),
        )


class EvasionSection(AuditSection):
    """Adversarial examples at prediction time (settings: the config's ``attacks``,
    ``eps``, ``attack_settings``, ``reference_eps``, ``examples``)."""

    name = "evasion"
    title = "Evasion: adversarial examples"
    threat = "integrity"
    order = 10

    def run(self, ctx: AuditContext, settings: Mapping[str, Any]) -> SectionOutput:
        config = ctx.config
        steps, skipped = plan(config, ctx.model)
        points: dict[str, list[dict[str, Any]]] = {}
        step_arrays: dict[tuple[str, float], dict[str, np.ndarray]] = {}
        bar = ctx.progress(steps, desc="evasion", total=len(steps))
        for attack_name, eps, attack in bar:
            if hasattr(bar, "set_postfix_str"):
                bar.set_postfix_str(f"{attack_name} eps={eps:g}")
            try:
                meta, arrays = ctx.step(
                    f"{attack_name}-eps{eps:g}",
                    attack.get_params(),
                    partial(_attack_step, attack, ctx.model, ctx.x, ctx.y, ctx.clean_pred),
                )
            except QueryBudgetExceededError as err:
                # Nothing attacked at this ε: the model's query budget is spent.
                skipped.append({"attack": attack_name, "reason": f"eps={eps:g}: {err}"})
                continue
            points.setdefault(attack_name, []).append(meta)
            step_arrays[(attack_name, eps)] = arrays
        attacks = [
            {"name": name, "norm": "inf", "params": pts[0]["params"] if pts else {}, "points": pts}
            for name, pts in points.items()
        ]
        scale = getattr(config, "eps_scale", "absolute")
        verdict = _verdict(ctx.clean_accuracy, attacks, config.reference_eps, scale)
        added = [{"attack": n, "reason": r} for n, r in black_box_attacks(config, ctx.model)]
        data = {
            "clean_accuracy": ctx.clean_accuracy,
            "attacks": attacks,
            "skipped": skipped,
            "reference_eps": config.reference_eps,
            "constraints": getattr(config, "constraints", None),
            **_eps_units(ctx.model, scale),
            "added_for_black_box": added,
        }
        trees = tree_analysis(ctx)  # exact radii and certificates for tree models
        if trees is not None:
            data["trees"] = trees
            if verdict.level == "unknown":  # no configured attack ran: judge by the radii
                verdict = tree_verdict(trees, ctx.clean_accuracy, config.reference_eps)
        return SectionOutput(data, verdict, _examples(ctx, step_arrays, verdict))


SECTION = EvasionSection


def _attack_step(
    attack: EvasionAttack, model: Classifier, x: np.ndarray, y: np.ndarray, clean_pred: np.ndarray
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    budget_note = None
    try:
        result = attack.generate(model, x, y)
    except QueryBudgetExceededError as err:
        if err.partial_result is None or err.partial_result.n == 0:
            raise
        # The paid queries are kept: the figures cover the inputs attacked before the
        # model's query budget ran out, and the step says so.
        result, budget_note = err.partial_result, str(err)
        x, y, clean_pred = x[: result.n], y[: result.n], clean_pred[: result.n]
    x_adv = np.asarray(result.x_adv)
    params = dict(attack.get_params())
    rules = params.get("constraints")
    if isinstance(rules, FeatureConstraints):
        params["constraints"] = rules.to_dict()
    with model.evaluating():
        proba = (
            np.asarray(model.predict_proba(x_adv[:N_EXAMPLE_CANDIDATES]))
            if model.has_scores and budget_note is None
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
        "params": params,
    }
    if budget_note is not None:
        meta["n_attacked"] = int(result.n)
        meta["budget_ran_out"] = budget_note
    if isinstance(rules, FeatureConstraints):
        # Checked, not assumed: the share of outputs that keep every constraint.
        meta["constraints_satisfied"] = float(rules.satisfied(x, x_adv, model.bounds).mean())
    arrays = {"y_adv": result.y_adv, "x_adv_head": x_adv[:N_EXAMPLE_CANDIDATES].astype(np.float32)}
    if proba is not None:
        arrays["proba_head"] = proba.astype(np.float32)
    return meta, arrays


def _finite(v: float | None) -> float | None:
    return None if v is None or math.isnan(v) else float(v)


_LABELS = {"pass": "robust", "warn": "partly robust", "fail": "not robust"}


def scale_matters(model: Classifier) -> bool:
    """Whether relative and absolute ε differ on ``model``: bounds other than one
    ``(0, 1)`` pair (on those the two readings are the same attack, which then keeps its
    default settings)."""
    return feature_bounds(model) is not None or tuple(model.bounds) != (0.0, 1.0)


def _eps_units(model: Classifier, scale: str) -> dict[str, Any]:
    """How ε was read: ``eps_scale`` and the features' smallest and largest range, so a
    relative ε can be stated in the data's units (ε x range) and an absolute one as a
    fraction of each range (ε / range)."""
    span = feature_span(model)
    values = span.flatten() if isinstance(span, torch.Tensor) else torch.tensor([span])
    return {
        "eps_scale": scale,
        "feature_range": [float(values.min()), float(values.max())],
    }


def _verdict(
    clean_acc: float, attacks: list[dict[str, Any]], ref_eps: float, scale: str = "absolute"
) -> Verdict:
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
        return Verdict(
            "unknown",
            "unknown",
            "No attack could be run at a non-zero ε, so robustness is unknown.",
            {"robust_accuracy": None},
        )
    acc, name, eps = worst
    ratio = acc / clean_acc if clean_acc > 0 else 0.0
    level: Level = "pass" if ratio >= 0.8 else "warn" if ratio >= 0.5 else "fail"
    text = (
        f"Under {name} with ε = {eps:g} (each input value may move by {eps:g} "
        f"{'of its range' if scale == 'relative' else 'in the data units'}), "
        f"accuracy falls from {clean_acc:.1%} to {acc:.1%}. "
    )
    text += {
        "pass": "The model keeps most of its accuracy against this attacker.",
        "warn": "An attacker controls a large share of this model's predictions.",
        "fail": "An attacker who can make such small changes controls most of this "
        "model's predictions.",
    }[level]
    return Verdict(
        level,
        _LABELS[level],
        text,
        {"robust_accuracy": acc, "attack": name.lower(), "eps": eps},
    )


def _examples(
    ctx: AuditContext,
    step_arrays: dict[tuple[str, float], dict[str, np.ndarray]],
    verdict: Verdict,
) -> dict[str, np.ndarray]:
    """Clean/adversarial pairs for the report: successes of the verdict's attack."""
    key = (verdict.numbers.get("attack"), verdict.numbers.get("eps"))
    if ctx.config.examples == 0 or key not in step_arrays:
        return {}
    arrays = step_arrays[key]
    x, y = ctx.x, ctx.y
    head = arrays["x_adv_head"].shape[0]
    pred_clean = ctx.clean_pred[:head]
    y_adv = arrays["y_adv"][:head]
    chosen = np.flatnonzero((pred_clean == y[:head]) & (y_adv != y[:head]))[: ctx.config.examples]
    if chosen.size == 0:
        chosen = np.arange(min(ctx.config.examples, head))
    out = {
        "index": chosen,
        "x": x[chosen],
        "x_adv": arrays["x_adv_head"][chosen],
        "y": y[chosen],
        "pred": pred_clean[chosen],
        "pred_adv": y_adv[chosen],
        "conf": ctx.clean_proba[chosen].max(1),
    }
    if "proba_head" in arrays:
        out["conf_adv"] = arrays["proba_head"][chosen].max(1)
    return out
