"""Model extraction: steal the audited model through its answers, and what hardening changes.

Four measurements, each one cached step:

1. **Learning-based stealing** (:class:`~advml.extraction.Copycat`, Knockoff-style pool
   strategy): under a query budget the attacker asks the model about unlabelled inputs
   (by default the dataset's training split, without its labels) and trains a copy on
   the answers: the model's scores when the adversary sees them, else its labels. The
   copy's fidelity (agreement with the model) on the evaluated test inputs after each
   round gives the fidelity-vs-queries curve; fidelity on uniform random inputs shows
   how much of the model's behaviour off the data was copied (Jagielski et al. 2020).
2. **Transfer**: PGD adversarial examples crafted on the copy (white-box) and sent to
   the model, which the attacker never differentiates (Papernot et al. 2017).
3. **Equation solving** (Tramèr et al. 2016, §4.1) with ``d + 1`` queries when the model
   answers scores: exact for linear and logistic models, refused for labels only.
4. **Output hardening**: the same stealing (and equation solving, where it was exact)
   behind each output defence of :mod:`advml.defences.output`, with the fidelity it
   leaves and the query cost it adds: how many queries against the unprotected model
   give a copy as faithful as the full budget does against the protected one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import partial
from typing import Any, ClassVar

import numpy as np
import torch

from advml import registry
from advml.audit.sections.base import (
    AuditContext,
    AuditSection,
    Level,
    SectionCannotRun,
    SectionOutput,
    Verdict,
    budget_ran_out,
)
from advml.defences.output.base import OutputDefence
from advml.errors import QueryBudgetExceededError, UnsupportedModelError
from advml.extraction import Copycat, EquationSolving, transfer_evasion
from advml.extraction.base import EVAL_SEED
from advml.metrics.intervals import from_rate
from advml.models.base import Classifier
from advml.runtime.seeding import make_generator

__all__ = ["SECTION", "ExtractionSection", "query_cost"]

StepResult = tuple[dict[str, Any], dict[str, np.ndarray]]

EXACT = 0.999
"""Fidelity on test and random inputs at and above which equation solving counts as exact."""


class ExtractionSection(AuditSection):
    """Model stealing through the prediction API, transfer, equation solving, hardening.

    Settings
    --------
    queries : int
        The attacker's query budget for learning-based stealing (default 1,000).
    rounds : int
        Rounds of doubling size in which the budget is spent; one curve point each.
    strategy : {"pool", "active", "random", "jacobian"}
        Copycat's query strategy (default ``pool``: random draws from the attacker's data).
    pool : str
        The attacker's unlabelled data: ``"train"`` (the dataset's training split, the
        strongest natural-data attacker) or another dataset's name (Knockoff-style,
        resized to the model's input).
    architecture, epochs, min_steps :
        The copy's network and training per round (see :class:`~advml.extraction.Copycat`).
        The default copy is the reference MLP, trained 10 epochs (at least 100 steps) per
        round, so the section adds well under a minute to a default audit; a
        convolutional copy (``"small-cnn"``) costs about 3x the time and steals more
        (measured on mnist-5k at 1,000 queries with scores: 96% against 92% agreement).
    n_random : int
        Uniform random inputs on which the final copies' fidelity is also measured.
    transfer_eps : float or None
        L∞ ε of PGD on the copy (``None``: the audit's ``reference_eps``).
    transfer_inputs, transfer_steps : int
        Evaluated inputs attacked for transfer (0 skips it) and PGD steps.
    equation_solving : bool
        Run equation solving when the model answers scores.
    equation_max_features : int
        Above this many input features equation solving is not attempted.
    hardening : dict
        Output defences to measure, by registered name with their settings.
    """

    name = "extraction"
    title = "Model extraction: stealing the model through its answers"
    threat = "confidentiality"
    order = 60
    default_settings: ClassVar[Mapping[str, Any]] = {
        "queries": 1000,
        "rounds": 4,
        "strategy": "pool",
        "pool": "train",
        "architecture": "mlp",
        "epochs": 10,
        "min_steps": 100,
        "n_random": 1000,
        "transfer_eps": None,
        "transfer_inputs": 200,
        "transfer_steps": 20,
        "equation_solving": True,
        "equation_max_features": 4096,
        "hardening": {"labels_only": {}, "top_k": {"k": 1}, "rounding": {"decimals": 1}},
    }
    quick_settings: ClassVar[Mapping[str, Any]] = {
        "queries": 400,
        "rounds": 3,
        "epochs": 10,
        "min_steps": 60,
        "n_random": 1000,
        "transfer_inputs": 100,
        "transfer_steps": 10,
    }

    def skip_reason(self, ctx: AuditContext, settings: Mapping[str, Any]) -> str | None:
        if settings["pool"] == "train" and len(ctx.dataset.x_train) == 0:
            return (
                "the attacker has no data to ask about: the dataset has no training split "
                "(set section_settings.extraction.pool to another dataset's name)"
            )
        return None

    def run(self, ctx: AuditContext, settings: Mapping[str, Any]) -> SectionOutput:
        _check(settings)
        pool, pool_name = _pool(ctx, settings)
        attack = _copycat(settings, ctx.config.seed)
        if attack.strategy in ("pool", "active") and attack.queries > len(pool):
            # A value the user wrote is a config mistake; the default on small data means
            # the section cannot run here: skipped with the reason, the report written.
            given = "queries" in ctx.config.section_settings.get("extraction", {})
            raise (ValueError if given else SectionCannotRun)(
                f"section_settings['extraction']['queries']={attack.queries} exceeds the "
                f"{len(pool)} inputs of the attacker's pool ({pool_name}); lower queries or "
                f"use strategy 'jacobian' or 'random'"
            )
        model = ctx.model
        outputs = "scores" if model.has_scores else "labels"
        eps = settings["transfer_eps"]
        eps = float(ctx.config.reference_eps if eps is None else eps)
        transfer = {
            "eps": eps,
            "inputs": min(int(settings["transfer_inputs"]), len(ctx.x)),
            "steps": int(settings["transfer_steps"]),
        }
        step_settings = {
            "attack": attack.get_params(),
            "pool": pool_name,
            "n_random": int(settings["n_random"]),
        }
        stealing, _ = ctx.step(
            "copycat",
            {**step_settings, "transfer": transfer},
            partial(_steal_step, ctx, model, pool, attack, settings, transfer),
        )
        equation = _equation_solving(ctx, settings)
        hardening = []
        for name, params in ctx.progress(
            list(settings["hardening"].items()), desc="extraction: hardening"
        ):
            hardening.append(
                _hardening(ctx, name, dict(params), pool, attack, settings, step_settings, equation)
            )
        for entry in hardening:
            if "fidelity" in entry:
                entry["query_cost"] = query_cost(stealing["curve"], entry["fidelity"])
        data = {
            "outputs": outputs,
            "pool": pool_name,
            "budget": {
                "queries": attack.queries,
                "rounds": attack.rounds,
                "copy_architecture": stealing["copy_architecture"],
                "epochs": attack.epochs,
                "min_steps": attack.min_steps,
                "n_random": int(settings["n_random"]),
            },
            "stealing": stealing,
            "equation_solving": equation,
            "hardening": hardening,
        }
        return SectionOutput(
            data, _verdict(stealing, equation, hardening, outputs, n_eval=len(ctx.y))
        )


SECTION = ExtractionSection


# -- settings ---------------------------------------------------------------------------
def _check(settings: Mapping[str, Any]) -> None:
    where = "section_settings['extraction']"
    for key in ("n_random", "transfer_inputs", "transfer_steps", "equation_max_features"):
        value = settings[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{where}['{key}'] must be an integer >= 0, got {value!r}")
    eps = settings["transfer_eps"]
    if eps is not None and (isinstance(eps, bool) or not isinstance(eps, int | float) or eps < 0):
        raise ValueError(f"{where}['transfer_eps'] must be a number >= 0 or null, got {eps!r}")
    if not isinstance(settings["equation_solving"], bool):
        raise ValueError(f"{where}['equation_solving'] must be true or false")
    if not isinstance(settings["pool"], str):
        raise ValueError(f"{where}['pool'] must be 'train' or a dataset name")
    hardening = settings["hardening"]
    if not isinstance(hardening, Mapping) or not all(
        isinstance(v, Mapping) for v in hardening.values()
    ):
        raise ValueError(
            f"{where}['hardening'] must map output defences to their settings, e.g. "
            "{'labels_only': {}, 'rounding': {'decimals': 1}}"
        )
    known = registry.available("output_defence")
    unknown = sorted(set(hardening) - set(known))
    if unknown:
        raise ValueError(f"{where}['hardening'] has unknown defences {unknown}; known: {known}")


def _copycat(settings: Mapping[str, Any], seed: int) -> Copycat:
    return Copycat(
        strategy=settings["strategy"],
        queries=settings["queries"],
        rounds=settings["rounds"],
        architecture=settings["architecture"],
        epochs=settings["epochs"],
        min_steps=settings["min_steps"],
        seed=seed,
    )


def _pool(ctx: AuditContext, settings: Mapping[str, Any]) -> tuple[np.ndarray, str]:
    name = settings["pool"]
    if name == "train":
        x = ctx.dataset.x_train
        return x, f"{ctx.dataset.name} training split, unlabelled ({len(x)} inputs)"
    from advml.data import load_dataset

    other = load_dataset(name)
    return other.x_train, f"{other.name} training split, resized ({len(other.x_train)} inputs)"


# -- steps ------------------------------------------------------------------------------
def _random_inputs(model: Classifier, n: int) -> torch.Tensor:
    gen = make_generator(EVAL_SEED, "cpu")
    low, high = model.bounds
    return (low + (high - low) * torch.rand((n, *model.input_shape), generator=gen)).to(
        model.device
    )


def _agreement(a: Classifier, b: Classifier, x: torch.Tensor) -> float:
    if len(x) == 0:
        return math.nan
    with torch.no_grad(), a.evaluating(), b.evaluating():
        pa = torch.cat([a.predict_labels(x[i : i + 500]) for i in range(0, len(x), 500)])
        pb = torch.cat([b.predict_labels(x[i : i + 500]) for i in range(0, len(x), 500)])
    return float((pa.cpu() == pb.cpu()).float().mean())


def _steal(
    ctx: AuditContext,
    victim: Classifier,
    pool: np.ndarray,
    attack: Copycat,
    settings: Mapping[str, Any],
) -> tuple[dict[str, Any], Classifier]:
    budget_note = None
    try:
        result = attack.extract(victim, pool, x_eval=ctx.x, y_eval=ctx.y, n_random=0)
    except QueryBudgetExceededError as err:
        if err.partial_result is None:
            raise
        # The queries are the product: the copy trained on the answers paid for is kept.
        result, budget_note = err.partial_result, str(err)
    # Random-input fidelity of the final copy only: per round it would cost more than
    # the training on this section's budget.
    x_random = _random_inputs(victim, int(settings["n_random"]))
    before = victim.query_count
    fidelity_random = math.nan
    if _affordable(victim, len(x_random)):
        fidelity_random = _agreement(result.stolen, victim, x_random)
    summary = result.summary()
    meta = {
        "outputs": result.outputs,
        "queries": result.queries,
        "fidelity": result.fidelity,
        "fidelity_random": None if math.isnan(fidelity_random) else fidelity_random,
        "accuracy": result.accuracy,
        "victim_accuracy": result.victim_accuracy,
        "eval_queries": result.eval_queries + victim.query_count - before,
        "seconds": round(result.seconds, 3),
        "curve": [
            {"queries": p["queries"], "fidelity": p["fidelity"], "accuracy": p["accuracy"]}
            for p in summary["curve"]
        ],
        "copy_architecture": _copy_architecture(result.stolen, str(result.details["architecture"])),
    }
    if budget_note is not None:
        meta["budget_ran_out"] = budget_note
    return meta, result.stolen


def _affordable(victim: Classifier, n: int) -> bool:
    """Whether the victim's query budget (if any) still pays for ``n`` queries."""
    left = getattr(victim, "queries_left", None)
    return left is None or n <= left


def _steal_step(
    ctx: AuditContext,
    victim: Classifier,
    pool: np.ndarray,
    attack: Copycat,
    settings: Mapping[str, Any],
    transfer: Mapping[str, Any],
) -> StepResult:
    meta, stolen = _steal(ctx, victim, pool, attack, settings)
    meta["transfer"] = None
    if transfer["inputs"] > 0 and transfer["eps"] > 0:
        n = int(transfer["inputs"])
        try:
            t = transfer_evasion(
                stolen,
                victim,
                ctx.x[:n],
                ctx.y[:n],
                settings={"eps": transfer["eps"], "steps": transfer["steps"]},
            )
        except QueryBudgetExceededError as err:
            meta["transfer_skipped"] = budget_ran_out(victim, err)
            return meta, {}
        meta["transfer"] = {
            "attack": t.attack,
            "eps": float(transfer["eps"]),
            "steps": int(transfer["steps"]),
            "n": t.n,
            "n_eligible": t.n_eligible,
            "success_on_copy": _finite(t.success_on_stolen),
            "transfer_success": _finite(t.transfer_success),
            "victim_queries": t.victim_queries,
        }
    return meta, {}


def _copy_architecture(stolen: Classifier, name: str) -> str:
    module = getattr(stolen, "module", None)
    n_params = sum(p.numel() for p in module.parameters()) if module is not None else 0
    return f"{name} ({n_params:,} parameters)"


def _finite(v: float) -> float | None:
    return None if math.isnan(v) else float(v)


def _equation_step(ctx: AuditContext, victim: Classifier, n_random: int) -> StepResult:
    d = math.prod(victim.input_shape)
    try:
        result = EquationSolving(seed=ctx.config.seed).extract(
            victim, x_eval=ctx.x, y_eval=ctx.y, n_random=n_random
        )
    except UnsupportedModelError as err:
        return {"status": "impossible", "reason": str(err), "minimum_queries": d + 1}, {}
    except ValueError as err:
        return {"status": "failed", "reason": str(err), "minimum_queries": d + 1}, {}
    exact = result.fidelity >= EXACT and (n_random == 0 or result.fidelity_random >= EXACT)
    return {
        "status": "exact" if exact else "approximate",
        "queries": result.queries,
        "minimum_queries": d + 1,
        "fidelity": result.fidelity,
        "fidelity_random": _finite(result.fidelity_random),
        "accuracy": _finite(result.accuracy),
        "max_residual": float(result.details["max_residual"]),
        "hidden_answers": int(result.details["hidden_answers"]),
    }, {}


def _equation_solving(ctx: AuditContext, settings: Mapping[str, Any]) -> dict[str, Any]:
    d = math.prod(ctx.model.input_shape)
    if not settings["equation_solving"]:
        return {"status": "skipped", "reason": "turned off (equation_solving: false)"}
    if d > int(settings["equation_max_features"]):
        return {
            "status": "skipped",
            "reason": f"the model takes {d} input features, more than equation_max_features="
            f"{settings['equation_max_features']}",
        }
    n_random = int(settings["n_random"])
    try:
        meta, _ = ctx.step(
            "equation-solving",
            {"n_random": n_random, "seed": ctx.config.seed},
            partial(_equation_step, ctx, ctx.model, n_random),
        )
    except QueryBudgetExceededError as err:
        return {"status": "skipped", "reason": budget_ran_out(ctx.model, err)}
    return meta


def _hardening(
    ctx: AuditContext,
    name: str,
    params: dict[str, Any],
    pool: np.ndarray,
    attack: Copycat,
    settings: Mapping[str, Any],
    step_settings: Mapping[str, Any],
    equation: Mapping[str, Any],
) -> dict[str, Any]:
    defence = registry.create("output_defence", name, **params)
    entry: dict[str, Any] = {"defence": name, "params": params, "reveals": defence.describe()}
    model = ctx.model
    if not model.has_scores:
        entry["skipped"] = (
            "the model already answers labels only"
            if not defence.reveals_scores
            else f"{defence.describe()} transforms scores; the model answers labels only"
        )
        return entry
    try:
        meta, _ = ctx.step(
            f"hardened-{name}",
            {
                **step_settings,
                "defence": name,
                "params": params,
                "equation": equation.get("status"),
            },
            partial(_hardened_step, ctx, defence, pool, attack, settings, equation.get("status")),
        )
    except QueryBudgetExceededError as err:
        entry["skipped"] = budget_ran_out(model, err)
        return entry
    entry.update(meta)
    return entry


def _hardened_step(
    ctx: AuditContext,
    defence: OutputDefence,
    pool: np.ndarray,
    attack: Copycat,
    settings: Mapping[str, Any],
    equation_status: str | None,
) -> StepResult:
    api = defence.wrap(ctx.model)
    # What the defence costs the model's users: its accuracy (labels are kept) and how far
    # the scores it shows are from the model's (total variation distance). Measured
    # before the stealing, which spends a query budget to the last query.
    with torch.no_grad(), api.evaluating():
        pred = np.asarray(api.predict(ctx.x))
        if api.has_scores:
            shown = np.asarray(api.predict_proba(ctx.x), dtype=np.float64)
        else:
            shown = np.eye(ctx.model.n_classes)[pred]
    utility = {
        "accuracy": float((pred == ctx.y).mean()),
        "score_change": float(0.5 * np.abs(shown - ctx.clean_proba).sum(1).mean()),
    }
    meta, _stolen = _steal(ctx, api, pool, attack, settings)
    meta.pop("copy_architecture", None)
    meta["utility"] = utility
    if equation_status == "exact":
        try:
            eq, _ = _equation_step(ctx, api, int(settings["n_random"]))
        except QueryBudgetExceededError as err:
            eq = {"status": "skipped", "reason": budget_ran_out(api, err)}
        meta["equation_solving"] = eq
    return meta, {}


# -- numbers ----------------------------------------------------------------------------
def query_cost(curve: list[Mapping[str, Any]], fidelity: float) -> dict[str, Any]:
    """How many queries against the unprotected model give a copy of ``fidelity``.

    ``curve`` is the unprotected attack's fidelity after each round; the queries are
    interpolated linearly in log(queries) between rounds. The cost factor is the budget
    divided by those queries: behind a defence the attacker needs ``factor`` times as many
    queries for the same copy.

    Returns
    -------
    dict
        ``equivalent_queries`` (None when ``fidelity`` is below the first round's),
        ``factor`` and ``bound``: ``"about"``, ``"at least"`` (below the first round:
        the factor is a lower bound) or ``"none"`` (the protected copy is as faithful as
        the unprotected one: no cost).
    """
    points = [(int(p["queries"]), float(p["fidelity"])) for p in curve]
    budget = points[-1][0]
    best = [max(f for _, f in points[: i + 1]) for i in range(len(points))]
    if fidelity >= best[-1]:
        return {"equivalent_queries": budget, "factor": 1.0, "bound": "none"}
    if fidelity < best[0]:
        return {
            "equivalent_queries": None,
            "factor": budget / points[0][0],
            "bound": "at least",
        }
    for i in range(1, len(points)):
        if best[i] >= fidelity:
            (q0, _), (q1, _) = points[i - 1], points[i]
            f0, f1 = best[i - 1], best[i]
            t = 0.0 if f1 == f0 else (fidelity - f0) / (f1 - f0)
            q = math.exp(math.log(q0) + t * (math.log(q1) - math.log(q0)))
            return {"equivalent_queries": round(q), "factor": budget / q, "bound": "about"}
    raise AssertionError("unreachable: the last point reaches best[-1]")


_LABELS = {"fail": "easily stolen", "warn": "partly stolen", "pass": "hard to steal"}


def _verdict(
    stealing: Mapping[str, Any],
    equation: Mapping[str, Any],
    hardening: list[dict[str, Any]],
    outputs: str,
    n_eval: int = 0,
) -> Verdict:
    """Level from the copy's fidelity (agreement with the model on the ``n_eval``
    audited test inputs) and its 95% interval: "fail" needs the interval's lower end at
    90%, "pass" its upper end below 70%."""
    fid = float(stealing["fidelity"])
    iv = from_rate(fid, n_eval) if n_eval else None
    f_low, f_high = (iv.low, iv.high) if iv else (fid, fid)
    queries = int(stealing["queries"])
    transfer = stealing.get("transfer") or {}
    exact = equation.get("status") == "exact"
    level: Level = "fail" if exact or f_low >= 0.9 else "pass" if f_high < 0.7 else "warn"
    seen = "its scores" if outputs == "scores" else "its labels"
    text = (
        f"With {queries:,} questions to the model, reading {seen}, an attacker trained a copy "
        f"that gives the same answer as the model on {fid:.1%} of the test inputs"
    )
    if iv:
        text += f" ({iv.count} of {n_eval}; 95% interval {iv.low:.1%} to {iv.high:.1%})"
    if stealing.get("fidelity_random") is not None:
        text += f" ({stealing['fidelity_random']:.1%} of random inputs)"
    text += "."
    if exact:
        text += (
            f" Worse, the model is linear: {equation['queries']} questions were enough to "
            f"recover its parameters exactly ({equation['fidelity']:.1%} agreement)."
        )
    if transfer.get("transfer_success") is not None:
        text += (
            f" Adversarial examples made on the copy fooled the model itself on "
            f"{transfer['transfer_success']:.1%} of the inputs it got right (ε = "
            f"{transfer['eps']:g}), without the attacker ever seeing its gradients."
        )
    measured = [h for h in hardening if "fidelity" in h]
    if measured:
        strongest = min(measured, key=lambda h: h["fidelity"])
        cost = strongest["query_cost"]
        text += (
            f" Answering with {strongest['reveals']} leaves the copy at "
            f"{strongest['fidelity']:.1%} agreement"
        )
        text += {
            "none": ", so it does not slow the attacker down.",
            "about": f", costing the attacker about {cost['factor']:.1f}x the questions.",
            "at least": f", costing the attacker at least {cost['factor']:.0f}x the questions.",
        }[cost["bound"]]
    text += {
        "fail": " Anyone who can query the model can take a close working copy of it.",
        "warn": " An attacker gets a useful but imperfect copy of the model.",
        "pass": " At this budget the attacker's copy is a poor imitation of the model.",
    }[level]
    label = _LABELS[level]
    if stealing.get("budget_ran_out"):
        text += (
            " The model's query budget ran out before the attack's: the copy learnt from the "
            "answers paid for, so an attacker with the full budget does at least this well."
        )
        if level == "pass":
            # A poor copy from too few queries says nothing about how hard stealing is.
            level, label = "unknown", "not assessed (query budget ran out)"
    numbers: dict[str, Any] = {
        "fidelity": fid,
        "fidelity_low": f_low,
        "fidelity_high": f_high,
        "n_evaluated": n_eval,
        "fidelity_random": stealing.get("fidelity_random"),
        "queries": queries,
        "transfer_success": transfer.get("transfer_success"),
        "equation_exact": exact,
    }
    return Verdict(level, label, text, numbers)
