"""Evasion: every configured attack over the ε grid, a robustness curve and a verdict."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from typing import Any, ClassVar, cast

import numpy as np
import torch

from advml import registry
from advml.audit.sections._checks import evasion_checks, inconclusive
from advml.audit.sections._trees import tree_analysis, tree_verdict
from advml.audit.sections.base import (
    AuditContext,
    AuditSection,
    Level,
    SectionOutput,
    Verdict,
    runs_here,
    section_executor,
)
from advml.errors import QueryBudgetExceededError
from advml.evasion.base import AdversarialResult, EvasionAttack
from advml.evasion.constraints import FeatureConstraints
from advml.metrics import attack_success_rate
from advml.metrics.intervals import difference_exceeds, proportion
from advml.models.base import Classifier, feature_bounds, feature_span
from advml.runtime.cache import fingerprint as hash_data
from advml.runtime.executors import Executor

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
            relative = scale == "relative" and scale_matters(model)
            for eps in config.eps:
                within = WithinEps(inner, eps, memo, relative=relative)
                steps.append((name, eps, cast(EvasionAttack, within)))
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

    With ``relative`` (``eps_scale: relative`` on a model whose bounds are not one
    ``(0, 1)`` pair, e.g. a table's per-feature ranges) ε is a fraction of each feature's
    range, as for the attacks that take an ε: the attack then runs in the unit box
    ``z = (x - low) / (high - low)``, so the L∞ distance it minimises and the one compared
    with ε are ``max_i |x_adv_i - x_i| / (high_i - low_i)``. The examples and their norms
    are returned in the data's units.
    """

    def __init__(
        self, attack: EvasionAttack, eps: float, memo: dict[str, Any], *, relative: bool = False
    ) -> None:
        self.attack, self.eps, self.memo = attack, float(eps), memo
        self.relative = bool(relative)
        self.name = attack.name

    def get_params(self) -> dict[str, Any]:
        scale = {"eps_scale": "relative"} if self.relative else {}
        return {**self.attack.get_params(), "eps": self.eps, **scale}

    def generate(self, model: Classifier, x: np.ndarray, y: np.ndarray) -> AdversarialResult:
        key = hash_data([np.asarray(x), np.asarray(y)])
        if key not in self.memo:
            self.memo[key] = self._attack(model, x, y)
        result, distance = self.memo[key]
        keep = result.success & (distance <= self.eps + 1e-6)
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

    def _attack(
        self, model: Classifier, x: np.ndarray, y: np.ndarray
    ) -> tuple[AdversarialResult, np.ndarray]:
        """The attack's result (data units) and each example's L∞ distance as ε reads it."""
        if not self.relative:
            result = self.attack.generate(model, x, y)
            return result, np.asarray(result.linf)
        from advml.evasion.base import UnitBox
        from advml.metrics.norms import perturbation_norms

        box = UnitBox(model)
        xt = torch.as_tensor(np.asarray(x), dtype=torch.float32, device=model.device)
        zt = box.to_unit(xt)
        in_box = self.attack.generate(cast(Classifier, box), zt.cpu().numpy(), y)
        za = torch.as_tensor(np.asarray(in_box.x_adv), dtype=torch.float32, device=model.device)
        # Features the attack left alone keep their exact value (the round trip through
        # the unit box would round them); the labels are the model's on these inputs.
        xa = torch.where(za == zt, xt, box.to_data(za))
        l0, l2, linf = (v.cpu().numpy() for v in perturbation_norms(xt, xa))
        result = replace(in_box, x_adv=xa.cpu().numpy(), l0=l0, l2=l2, linf=linf)
        return result, np.asarray(in_box.linf)


class EvasionSection(AuditSection):
    """Adversarial examples at prediction time (settings: the config's ``attacks``,
    ``eps``, ``attack_settings``, ``reference_eps``, ``examples``)."""

    name = "evasion"
    title = "Evasion: adversarial examples"
    threat = "integrity"
    order = 10
    default_settings: ClassVar[Mapping[str, Any]] = {
        # The standard ensemble's gradient members (Croce & Hein 2020), run at the
        # reference ε on the inputs the configured attacks left correct; Square and the
        # targeted APGD are opt-in (``strongest``), as they cost several times more.
        "ensemble": [["apgd", {"loss": "ce"}], ["apgd", {"loss": "dlr"}]],
    }

    def run(self, ctx: AuditContext, settings: Mapping[str, Any]) -> SectionOutput:
        executor = _shard_executor(ctx)
        try:
            return self._run(ctx, settings, executor)
        finally:
            if executor is not None:
                executor.close()

    def _run(
        self, ctx: AuditContext, settings: Mapping[str, Any], executor: Executor | None
    ) -> SectionOutput:
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
                    partial(
                        _attack_step,
                        attack,
                        ctx.model,
                        ctx.x,
                        ctx.y,
                        ctx.clean_pred,
                        eps == config.reference_eps,
                        executor,
                    ),
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
        added = [{"attack": n, "reason": r} for n, r in black_box_attacks(config, ctx.model)]
        ensemble = _ensemble(ctx, settings, attacks, step_arrays, executor)
        worst = _worst_case(attacks, step_arrays, ctx.y, config.reference_eps, ensemble)
        verdict = _verdict(
            ctx.clean_accuracy, attacks, config.reference_eps, len(ctx.y), worst, scale=scale
        )
        checks = _evaluation_checks(ctx, attacks, step_arrays)
        verdict = inconclusive(verdict, checks)
        data = {
            "clean_accuracy": ctx.clean_accuracy,
            "clean_accuracy_interval": proportion(
                int((ctx.clean_pred == ctx.y).sum()), len(ctx.y)
            ).to_dict(),
            "evaluation_checks": checks,
            "worst_case": None
            if worst is None
            else {k: v for k, v in worst.items() if k != "robust"},
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
            # No configured attack ran, or only the query attacks added for want of
            # gradients (upper bounds): the exact radii judge the model.
            if verdict.level == "unknown" or added:
                verdict = tree_verdict(trees, ctx.clean_accuracy, config.reference_eps)
        artifacts = _examples(ctx, step_arrays, verdict)
        if config.save_examples:
            artifacts.update(_records(ctx, attacks, step_arrays, worst))
        return SectionOutput(data, verdict, artifacts)


SECTION = EvasionSection


def _evaluation_checks(
    ctx: AuditContext,
    attacks: list[dict[str, Any]],
    step_arrays: dict[tuple[str, float], dict[str, np.ndarray]],
) -> list[dict[str, Any]]:
    """The flawed-evaluation checklist; none when the query budget cannot pay for it."""
    try:
        return evasion_checks(ctx, attacks, step_arrays)
    except QueryBudgetExceededError as err:
        return [
            {
                "name": "budget",
                "title": "Checks for a flawed evaluation",
                "status": "not checked",
                "evidence": str(err),
            }
        ]


def _shard_executor(ctx: AuditContext) -> Executor | None:
    """The config's executor for shards of the attack steps' inputs (docs/scale.md), or
    None where the steps run here (:func:`runs_here`). On Ray a shard of a network on a
    GPU asks for a whole one."""
    return None if runs_here(ctx) else section_executor(ctx, gpus_per_task=1.0)


def _generate(
    attack: EvasionAttack,
    model: Classifier,
    x: np.ndarray,
    y: np.ndarray,
    executor: Executor | None,
) -> AdversarialResult:
    """``attack.generate``, over shards on ``executor`` when there is one: the same
    result input by input (randomness is drawn per block of inputs)."""
    if executor is None or not isinstance(attack, EvasionAttack):
        return attack.generate(model, x, y)
    from advml.evasion.shards import generate_sharded

    return generate_sharded(attack, model, x, y, executor=executor)


def _attack_step(
    attack: EvasionAttack,
    model: Classifier,
    x: np.ndarray,
    y: np.ndarray,
    clean_pred: np.ndarray,
    keep_inputs: bool = False,
    executor: Executor | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    budget_note = None
    try:
        result = _generate(attack, model, x, y, executor)
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
    robust = proportion(int((result.y_adv == y).sum()), len(y))
    attacked = clean_pred == y
    fooled = proportion(int((attacked & (result.y_adv != y)).sum()), int(attacked.sum()))
    meta = {
        "eps": float(attack.get_params()["eps"]),
        "robust_accuracy": float((result.y_adv == y).mean()),
        # 95% Wilson intervals with the counts behind them (docs/audit.md, Uncertainty).
        "robust_accuracy_interval": robust.to_dict(),
        "success_rate_interval": fooled.to_dict(),
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
    # Per-input perturbation sizes for the per-input records (--save-examples), and at
    # the reference ε the adversarial inputs themselves.
    delta = (x_adv.astype(np.float64) - x.astype(np.float64)).reshape(len(x), -1)
    arrays["l2"] = np.linalg.norm(delta, axis=1)
    arrays["linf"] = np.abs(delta).max(axis=1) if delta.shape[1] else np.zeros(len(x))
    if keep_inputs:
        arrays["x_adv"] = x_adv.astype(np.float32)
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
    clean_acc: float,
    attacks: list[dict[str, Any]],
    ref_eps: float,
    n: int = 0,
    worst: dict[str, Any] | None = None,
    *,
    scale: str = "absolute",
) -> Verdict:
    """Worst robust accuracy at the largest ε <= ``ref_eps``, stated in plain words.

    The figure is the per-input worst case over every attack run at that ε (an input
    counts as robust only when no attack fooled it) where ``worst`` gives it, else the
    weakest single attack. The level follows the 95 % interval: "robust" needs its lower
    bound at 80 % of clean accuracy or more, "not robust" its upper bound below 50 %.
    """
    best: tuple[float, str, float, dict[str, Any] | None] | None = None
    for a in attacks:
        eligible = [p for p in a["points"] if p["eps"] <= ref_eps + 1e-12 and p["eps"] > 0]
        if not eligible:
            continue
        p = max(eligible, key=lambda q: q["eps"])
        if best is None or p["robust_accuracy"] < best[0]:
            best = (p["robust_accuracy"], a["name"].upper(), p["eps"], p)
    if best is None:
        return Verdict(
            "unknown",
            "unknown",
            "No attack could be run at a non-zero ε, so robustness is unknown.",
            {"robust_accuracy": None},
        )
    acc, name, eps, point = best
    iv = (point or {}).get("robust_accuracy_interval")
    attacks_named = name
    if worst is not None and worst["eps"] == eps and worst["robust_accuracy"] <= acc:
        iv = worst["interval"]
        acc = float(worst["robust_accuracy"])
        attacks_named = "the worst case over " + ", ".join(a.upper() for a in worst["attacks"])
    n_total = int(iv["n"]) if iv else n
    if iv is None:
        iv = proportion(round(acc * n_total), n_total).to_dict() if n_total else None
    clean_iv = proportion(round(clean_acc * n_total), n_total).to_dict() if n_total else None
    low = float(iv["low"]) if iv else acc
    high = float(iv["high"]) if iv else acc
    level: Level
    if clean_acc > 0 and low >= 0.8 * clean_acc:
        level = "pass"
    elif clean_acc <= 0 or high < 0.5 * clean_acc:
        level = "fail"
    else:
        level = "warn"
    counted = f" ({iv['count']} of {iv['n']}; 95% interval {low:.1%} to {high:.1%})" if iv else ""
    text = (
        f"Under {attacks_named} with ε = {eps:g} (each input value may move by {eps:g} "
        f"{'of its range' if scale == 'relative' else 'in the data units'}), "
        f"accuracy falls from {clean_acc:.1%} to {acc:.1%}{counted}. "
    )
    if iv and clean_iv:
        real = difference_exceeds(iv, clean_iv)
        text += (
            "The drop exceeds its uncertainty (the two intervals do not overlap). "
            if real
            else "The drop is within its uncertainty (the two intervals overlap). "
        )
    text += {
        "pass": "Even the interval's lower bound keeps 80% of the clean accuracy: the model "
        "keeps most of its accuracy against this attacker.",
        "warn": "An attacker controls a large share of this model's predictions.",
        "fail": "Even the interval's upper bound is below half the clean accuracy: an "
        "attacker who can make such small changes controls most of this model's predictions.",
    }[level]
    numbers: dict[str, Any] = {
        "robust_accuracy": acc,
        "robust_accuracy_low": low,
        "robust_accuracy_high": high,
        "clean_accuracy": clean_acc,
        "n": n_total,
        "attack": name.lower(),
        "eps": eps,
    }
    if worst is not None and attacks_named != name:
        numbers["attacks"] = list(worst["attacks"])
    return Verdict(level, _LABELS[level], text, numbers)


def _ensemble(
    ctx: AuditContext,
    settings: Mapping[str, Any],
    attacks: list[dict[str, Any]],
    step_arrays: dict[tuple[str, float], dict[str, np.ndarray]],
    executor: Executor | None = None,
) -> dict[str, Any]:
    """The ensemble members at the verdict's ε, each on the inputs no attack before it
    fooled (an input already fooled needs no stronger attack for the per-input worst
    case, which keeps the cost within the default audit's time).

    Returns ``{"eps", "members": [{"name", "attacked", "fooled"}],
    "y_adv": {name: labels}}`` (labels are the true ones on inputs not attacked), or an
    empty dict when nothing ran.
    """
    members = settings.get("ensemble") or []
    ref = ctx.config.reference_eps
    eps_run = sorted(
        {p["eps"] for a in attacks for p in a["points"] if 0 < p["eps"] <= ref + 1e-12}
    )
    if not members or not eps_run or not ctx.model.has_gradients:
        return {}
    eps = eps_run[-1]
    y = ctx.y
    correct = ctx.clean_pred == y
    for a in attacks:
        arrays = step_arrays.get((a["name"], eps))
        if arrays is not None and len(arrays["y_adv"]) == len(y):
            correct &= arrays["y_adv"] == y
    out: dict[str, Any] = {"eps": eps, "members": [], "y_adv": {}}
    for name, params in members:
        label = f"{name}-{params.get('loss', '')}".rstrip("-")
        rows = np.flatnonzero(correct)
        attack = registry.create("evasion", name, **{**dict(params), "eps": eps})
        if "seed" in attack.get_params():
            attack = attack.set_params(seed=ctx.config.seed)
        if rows.size:
            try:
                _, arrays = ctx.step(
                    f"ensemble-{label}-eps{eps:g}",
                    {"attack": attack.get_params(), "rows": fingerprint_rows(rows)},
                    partial(_member_step, attack, ctx.model, ctx.x[rows], y[rows], executor),
                )
            except QueryBudgetExceededError:
                break
            y_member = y.copy()
            y_member[rows] = arrays["y_adv"]
        else:
            y_member = y.copy()
        fooled = int((y_member != y).sum())
        # Its time is in report.json's reproducibility.steps (two runs differ there only).
        out["members"].append({"name": label, "attacked": int(rows.size), "fooled": fooled})
        out["y_adv"][label] = y_member
        correct &= y_member == y
    return out if out["members"] else {}


def fingerprint_rows(rows: np.ndarray) -> str:
    """A short key of which inputs a member attacked (part of its step's cache key)."""
    from advml.runtime.cache import fingerprint

    return fingerprint([rows.astype(np.int64)])


def _member_step(
    attack: EvasionAttack,
    model: Classifier,
    x: np.ndarray,
    y: np.ndarray,
    executor: Executor | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    result = _generate(attack, model, x, y, executor)
    return {"seconds": round(result.seconds, 3)}, {"y_adv": np.asarray(result.y_adv)}


def _worst_case(
    attacks: list[dict[str, Any]],
    step_arrays: dict[tuple[str, float], dict[str, np.ndarray]],
    y: np.ndarray,
    ref_eps: float,
    ensemble: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Per input, the worst case over every attack run at the largest ε <= ``ref_eps``:
    robust only when no attack fooled it (the union of the attacks, as AutoAttack counts;
    Croce & Hein 2020). ``None`` when fewer than two attacks ran there."""
    eps_run = [
        p["eps"]
        for a in attacks
        for p in a["points"]
        if 0 < p["eps"] <= ref_eps + 1e-12 and "n_attacked" not in p
    ]
    if not eps_run:
        return None
    eps = max(eps_run)
    names = [a["name"] for a in attacks if (a["name"], eps) in step_arrays]
    extra = (ensemble or {}).get("y_adv", {}) if (ensemble or {}).get("eps") == eps else {}
    if len(names) + len(extra) < 2:
        return None
    correct = np.ones(len(y), dtype=bool)
    for name in names:
        y_adv = step_arrays[(name, eps)]["y_adv"]
        if len(y_adv) != len(y):
            return None
        correct &= y_adv == y
    for y_adv in extra.values():
        correct &= y_adv == y
    iv = proportion(int(correct.sum()), len(y))
    # Which attacks fooled an input no attack before them fooled ("made it").
    members = (ensemble or {}).get("members", []) if extra else []
    return {
        "eps": eps,
        "attacks": names + list(extra),
        "ensemble": members,
        "robust_accuracy": iv.value,
        "interval": iv.to_dict(),
        "robust": correct,
    }


def _records(
    ctx: AuditContext,
    attacks: list[dict[str, Any]],
    step_arrays: dict[tuple[str, float], dict[str, np.ndarray]],
    worst: dict[str, Any] | None,
) -> dict[str, np.ndarray]:
    """Per-input results for ``--save-examples``: ``record.<column>`` (one row per
    evaluated input) and ``inputs.<name>`` (the clean and adversarial inputs)."""
    n = len(ctx.y)
    out: dict[str, np.ndarray] = {
        "record.index": np.arange(n),
        "record.label": ctx.y,
        "record.pred_clean": ctx.clean_pred,
        "inputs.x": ctx.x.astype(np.float32),
    }
    for a in attacks:
        for p in a["points"]:
            arrays = step_arrays.get((a["name"], p["eps"]))
            if arrays is None or len(arrays["y_adv"]) != n:
                continue  # cut short by the query budget: not one row per input
            tag = f"{a['name']}_eps{p['eps']:g}"
            out[f"record.pred_{tag}"] = arrays["y_adv"]
            out[f"record.fooled_{tag}"] = (ctx.clean_pred == ctx.y) & (arrays["y_adv"] != ctx.y)
            for norm in ("l2", "linf"):
                if norm in arrays:
                    out[f"record.{norm}_{tag}"] = arrays[norm]
            if "x_adv" in arrays:
                out[f"inputs.x_adv_{tag}"] = arrays["x_adv"]
    if worst is not None:
        out[f"record.robust_worst_case_eps{worst['eps']:g}"] = worst["robust"]
    return out


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
