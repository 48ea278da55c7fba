"""Membership inference: can an attacker tell the model's training records from others?

The audit knows the truth, which an attacker does not: for a reference model it knows
exactly which records trained it (the training split less the validation records the
shared training loop held out for early stopping); for any other model it takes the
dataset's training split to be the training data and says so. ``n_members`` of those
members and as many test records (non-members) are scored; the rest of the test split
is the attacker's own data ("population" data, Ye et al., CCS 2022), on which each
threshold is calibrated. Four measurements, each one cached step:

1. **Threshold attacks** on the model's scores: loss (Yeom et al. 2018), confidence and
   modified entropy (Salem et al. 2019; Song & Mittal 2021). No training; one query per
   record.
2. **Label-only** attack (Choquette-Choo et al. 2021): how robust each record's label is
   to noise, on a subset (it costs ``label_only_perturbations + 1`` queries per record).
3. **LiRA** (Carlini et al. 2022), only with ``lira_shadows >= 2``: shadow models trained
   like the model (:meth:`AuditContext.train_like`) on random halves of the candidates.
   Each shadow is a training run, so it is off by default: a shadow of the mnist-5k CNN
   takes most of a minute on two cores, four shadows of the digits MLP about 15 s
   (measured on a busy 2-core machine), over the section's time budget either way.
4. **RMIA** (Zarifzadeh et al. 2024), the **quick tier** (default): offline RMIA with
   ``rmia_references`` reference models (2; 0 skips it), trained like LiRA's shadows. It
   stays strong with few reference models, where LiRA needs dozens. The **deep tier**
   (``tier: deep``) trains ``deep_references`` (64) reference models once and runs LiRA
   and RMIA online on them: meant for a process pool or a Ray cluster
   (``executor`` in the config, docs/scale.md). Each reference model is its own cached
   task, so a deep audit killed midway resumes with the models not yet trained.
5. **Output hardening**: the threshold attacks again behind each output defence
   (labels only, top-1, rounding), showing what each one takes from the attacker.

Metrics follow Carlini et al. 2022, §III: the ROC curve on log-log axes and the
true-positive rate at 0.1% and 1% false-positive rate beside AUC and advantage.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import partial
from typing import Any, ClassVar

import numpy as np
import torch

from advml import registry
from advml.audit.sections.base import (
    AuditContext,
    AuditSection,
    Level,
    SectionOutput,
    Verdict,
    budget_ran_out,
    section_executor,
)
from advml.errors import QueryBudgetExceededError
from advml.metrics.intervals import membership_intervals
from advml.models import validation_split
from advml.models.base import Classifier
from advml.models.torch import TorchClassifier, require_torch
from advml.privacy.membership import (
    RMIA,
    LabelOnly,
    LiRA,
    LossThreshold,
    MembershipAttack,
    MembershipMetrics,
    membership_attacks,
)
from advml.report.model import SCHEMA_VERSION
from advml.runtime.cache import fingerprint
from advml.runtime.executors import Executor, TaskCache

__all__ = ["SECTION", "MembershipSection", "reference_members"]

StepResult = tuple[dict[str, Any], dict[str, np.ndarray]]

_SCORE_ATTACKS = ("loss_threshold", "confidence_threshold", "entropy_threshold", "modified_entropy")
_CURVE_POINTS = 150
# Verdict levels: AUC and TPR at 1% FPR (chance is 0.5 and 0.01) of the best attack.
_FAIL_AUC, _FAIL_TPR = 0.6, 0.05
_WARN_AUC, _WARN_TPR = 0.53, 0.02


def reference_members(n_train: int, seed: int, val_fraction: float = 0.1) -> np.ndarray:
    """Which of ``n_train`` training records a reference model was trained on.

    :func:`advml.models.train` holds out :func:`~advml.models.training.validation_split`'s
    validation records for early stopping. Returns a boolean mask of shape ``(n_train,)``.
    """
    _, val_idx = validation_split(n_train, val_fraction, seed)
    mask = np.ones(n_train, dtype=bool)
    mask[val_idx] = False
    return mask


class MembershipSection(AuditSection):
    """Membership inference against the audited model, and what output hardening changes.

    Settings
    --------
    n_members : int
        Members scored, and as many non-members (test records); default 500.
    attacks : list of str
        Score-based threshold attacks (default loss, confidence, modified entropy).
    label_only_records : int
        Members (and as many non-members) the label-only attack scores; 0 skips it.
    label_only_perturbations : int
        Noisy copies per record it queries.
    lira_shadows : int
        Shadow models of LiRA (0 skips it; it needs a reference model and scores).
    tier : {"quick", "deep"}
        ``quick`` (default): offline RMIA with ``rmia_references`` reference models.
        ``deep``: LiRA and RMIA online on ``deep_references`` reference models (64+ for
        the paper's results; meant for ``executor: process`` or ``ray``).
    rmia_references : int
        Reference models of the quick tier's RMIA (0 skips it; default 2).
    deep_references : int
        Reference models of the deep tier (>= 2; default 64).
    hardening : dict
        Output defences to measure, by registered name with their settings.
    dp_noise : list of float
        DP-SGD noise multipliers: for each, a copy of the model is trained with DP-SGD
        (opacus) on the model's own training records and attacked with the loss
        threshold, giving ε against accuracy and attack AUC (the privacy-utility
        trade-off). Empty by default: DP-SGD on the digits MLP takes most of a minute per
        noise level on two cores, far more for the mnist-5k CNN.
    dp_epochs : int
        Epochs of each DP-SGD copy.
    """

    name = "membership"
    title = "Membership inference: is a record in the training data?"
    threat = "confidentiality"
    order = 50
    default_settings: ClassVar[Mapping[str, Any]] = {
        "n_members": 500,
        "attacks": ["loss_threshold", "confidence_threshold", "modified_entropy"],
        "label_only_records": 100,
        "label_only_perturbations": 8,
        "lira_shadows": 0,
        "tier": "quick",
        "rmia_references": 2,
        "deep_references": 64,
        "dp_noise": [],
        "dp_epochs": 10,
        "hardening": {"labels_only": {}, "top_k": {"k": 1}, "rounding": {"decimals": 1}},
    }
    quick_settings: ClassVar[Mapping[str, Any]] = {
        "n_members": 150,
        "label_only_records": 100,
        # Two reference models of the digits MLP take ~10 s on two busy cores, a sixth
        # of the quick audit's minute; set rmia_references to run RMIA in a quick audit.
        "rmia_references": 0,
    }

    def skip_reason(self, ctx: AuditContext, settings: Mapping[str, Any]) -> str | None:
        if len(ctx.dataset.x_test) < 4:
            return "the dataset has too few test records to serve as non-members"
        return None

    def run(self, ctx: AuditContext, settings: Mapping[str, Any]) -> SectionOutput:
        _check(settings)
        split = _split(ctx, int(settings["n_members"]))
        model = ctx.model
        seed = ctx.config.seed
        attacks_run: list[dict[str, Any]] = []
        skipped: list[dict[str, str]] = []
        scores: dict[str, np.ndarray] = {}  # per-record scores, for --save-examples
        names = list(settings["attacks"])
        # The model's answers on the records, asked once when a step first needs them.
        recorded = functools.cache(partial(_recorded, model, split))
        # A query budget that runs out stops one step: it is listed as skipped with the
        # reason, and the section reports what the steps before it paid for.
        ran_out: QueryBudgetExceededError | None = None
        refused = {n: registry.get("membership", n).unsupported_reason(model) for n in names}
        skipped += [{"attack": n, "reason": r} for n, r in refused.items() if r is not None]
        allowed = [n for n in names if refused[n] is None]
        if allowed:
            try:
                meta, arrays = ctx.step(
                    "threshold",
                    {"attacks": allowed, "split": split["key"]},
                    partial(_threshold_step, recorded, allowed, split, seed),
                )
                attacks_run += meta["attacks"]
                scores.update(arrays)
            except QueryBudgetExceededError as err:
                ran_out = err
                skipped += [{"attack": n, "reason": budget_ran_out(model, err)} for n in allowed]
        n_label = min(int(settings["label_only_records"]), split["n"])
        label_only: dict[str, Any] | None = None
        if n_label > 0:
            k = int(settings["label_only_perturbations"])
            try:
                label_only, arrays = ctx.step(
                    "label-only",
                    {"records": n_label, "perturbations": k, "split": split["key"]},
                    partial(_label_only_step, model, split, n_label, k, seed),
                )
                scores.update(_spread(arrays, _label_only_rows(split, n_label), 2 * split["n"]))
                attacks_run.append(label_only)
            except QueryBudgetExceededError as err:
                ran_out = err
                skipped.append({"attack": "label-only", "reason": budget_ran_out(model, err)})
        n_shadows = int(settings["lira_shadows"])
        if n_shadows >= 2:
            reason = _lira_skip(ctx)
            if reason is None:
                try:
                    meta, arrays = ctx.step(
                        "lira",
                        {"shadows": n_shadows, "split": split["key"]},
                        partial(_lira_step, ctx, split, n_shadows, seed),
                    )
                    attacks_run.append(meta)
                    scores.update(arrays)
                except QueryBudgetExceededError as err:
                    ran_out = err
                    skipped.append({"attack": "lira", "reason": budget_ran_out(model, err)})
            else:
                skipped.append({"attack": "lira", "reason": reason})
        tiered, tier_skipped, ran = _tiers(ctx, settings, split, seed)
        attacks_run += tiered
        skipped += tier_skipped
        if not attacks_run and ran_out is not None:
            raise ran_out  # nothing measured: the audit lists the section as not assessed
        hardening = _hardening(ctx, settings, names, split, label_only, recorded)
        trade_off = _trade_off(ctx, settings, split, attacks_run)
        verdict = _verdict(attacks_run, split)
        data = {
            "members_source": split["source"],
            "n_members": split["n"],
            "n_non_members": split["n"],
            "n_population": split["n_population"],
            "attacks": attacks_run,
            "skipped": skipped,
            "hardening": hardening,
            "trade_off": trade_off,
            "tier": settings["tier"],
        }
        if ran is not None:
            data["executor"] = ran
        artifacts = _records(split, scores) if ctx.config.save_examples else {}
        return SectionOutput(data, verdict, artifacts)


SECTION = MembershipSection


def _spread(arrays: dict[str, np.ndarray], rows: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Scores of some records placed in a column of all ``n`` (NaN where not scored)."""
    out = {}
    for key, value in arrays.items():
        column = np.full(n, np.nan)
        column[rows] = value
        out[key] = column
    return out


def _records(split: dict[str, Any], scores: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-record results for ``--save-examples``: each evaluated record (members
    first), whether it was a member, its label and every attack's score (higher: more
    likely a member; NaN where an attack scored only some records). An attack's AUC in
    the report is ``roc_auc_score(member, score_<attack>)`` over the rows it scored."""
    n = len(split["is_member"])
    out: dict[str, np.ndarray] = {
        "record.index": np.arange(n),
        "record.member": np.asarray(split["is_member"], dtype=bool),
        "record.label": np.asarray(split["y"]),
    }
    for key, value in scores.items():
        if key.startswith("score.") and len(value) == n:
            out[f"record.score_{key[len('score.') :]}"] = value
    return out


def _check(settings: Mapping[str, Any]) -> None:
    for key, low in (
        ("n_members", 2),
        ("label_only_records", 0),
        ("label_only_perturbations", 1),
        ("lira_shadows", 0),
        ("rmia_references", 0),
        ("deep_references", 2),
        ("dp_epochs", 1),
    ):
        value = settings[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(
                f"section_settings['membership'][{key!r}] must be an integer >= {low}, "
                f"got {value!r}"
            )
    if settings["tier"] not in ("quick", "deep"):
        raise ValueError(
            "section_settings['membership']['tier'] must be 'quick' (RMIA with a few "
            f"reference models) or 'deep' (LiRA and RMIA online); got {settings['tier']!r}"
        )
    if settings["rmia_references"] == 1:
        raise ValueError(
            "section_settings['membership']['rmia_references'] must be 0 (skip RMIA) or "
            ">= 2 (each record then has a reference model that did not train on it); got 1"
        )
    noise = settings["dp_noise"]
    if not isinstance(noise, list | tuple) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in noise
    ):
        raise ValueError(
            "section_settings['membership']['dp_noise'] must list DP-SGD noise multipliers "
            f"> 0, e.g. [0.5, 1.0, 2.0]; got {noise!r}"
        )
    attacks = settings["attacks"]
    if not isinstance(attacks, list | tuple) or any(a not in _SCORE_ATTACKS for a in attacks):
        raise ValueError(
            f"section_settings['membership']['attacks'] must list threshold attacks from "
            f"{list(_SCORE_ATTACKS)}, got {attacks!r}"
        )
    hardening = settings["hardening"]
    if not isinstance(hardening, dict):
        raise ValueError(
            "section_settings['membership']['hardening'] must map output defences to their "
            f"settings, e.g. {{'rounding': {{'decimals': 1}}}}; got {hardening!r}"
        )
    known = registry.available("output_defence")
    unknown = sorted(set(hardening) - set(known))
    if unknown:
        raise ValueError(
            f"section_settings['membership']['hardening'] has unknown defences {unknown}; "
            f"known: {known}"
        )


def _split(ctx: AuditContext, n_members: int) -> dict[str, Any]:
    """Members, non-members and the attacker's population, seeded by the audit seed."""
    ds = ctx.dataset
    if ctx.retrainable:
        seed = int(ctx.model_info.get("seed", ctx.config.seed))
        inside = np.flatnonzero(reference_members(len(ds.x_train), seed))
        source = (
            f"the {len(inside)} training records the reference model was trained on (its "
            f"{len(ds.x_train) - len(inside)} early-stopping records excluded)"
        )
    else:
        inside = np.arange(len(ds.x_train))
        source = (
            f"the dataset's training split ({len(inside)} records), taken to be the data the "
            "model was trained on"
        )
    rng = np.random.default_rng(np.random.SeedSequence([ctx.config.seed, 5101]))
    n_test = len(ds.x_test)
    n = min(n_members, len(inside), n_test // 2)
    members = rng.choice(inside, n, replace=False)
    order = rng.permutation(n_test)
    non_members, population = order[:n], order[n:]
    return {
        "x": np.concatenate([ds.x_train[members], ds.x_test[non_members]]),
        "y": np.concatenate([ds.y_train[members], ds.y_test[non_members]]),
        "is_member": np.r_[np.ones(n, bool), np.zeros(n, bool)],
        "x_pop": ds.x_test[population],
        "y_pop": ds.y_test[population],
        "n": int(n),
        "n_population": len(population),
        "source": source,
        "key": [int(n), int(members.sum()), int(non_members.sum()), source],
        "train_rows": inside,
    }


def _recorded(model: Classifier, split: dict[str, Any]) -> Classifier:
    """``model``'s answers on the section's records, asked once and replayed.

    Every score-based attack here, and every output defence in front of them, sees the
    same answers for the same records; asking the model once and answering from the
    record keeps the section's cost at one pass over its records. The logits are recorded
    (not probabilities, which round to 1 for confident records and would make them tie),
    so the replay is exact. Inputs not recorded are passed to the model. Queries are
    counted by the replaying API as usual.
    """
    from advml.models.callable import CallableClassifier

    x_all = np.concatenate([split["x"], split["x_pop"]]).astype(np.float32)
    flat = x_all.reshape(len(x_all), -1)
    left = getattr(model, "queries_left", None)
    if left is not None and len(x_all) > left:
        # All the records' answers or none are of use: refuse before spending any.
        raise QueryBudgetExceededError(
            f"recording the model's answers on the section's {len(x_all)} records needs "
            f"{len(x_all)} queries but its query budget has {left} left; nothing was asked"
        )
    logits = np.empty((len(x_all), model.n_classes), dtype=np.float64)
    with torch.no_grad(), model.evaluating():
        for i in range(0, len(x_all), 512):
            batch = model.as_tensor(x_all[i : i + 512])
            logits[i : i + 512] = model.logits(batch).double().cpu().numpy()
    index = {row.tobytes(): i for i, row in enumerate(flat)}

    def answer(x: np.ndarray) -> np.ndarray:
        rows = x.astype(np.float32).reshape(len(x), -1)
        found = [index.get(r.tobytes(), -1) for r in rows]
        out = np.empty((len(x), logits.shape[1]))
        known = np.array(found) >= 0
        if known.any():
            out[known] = logits[np.array(found)[known]]
        if not known.all():
            with torch.no_grad(), model.evaluating():
                rest = model.logits(model.as_tensor(x[~known]))
            out[~known] = rest.double().cpu().numpy()
        return out

    return CallableClassifier(
        answer,
        input_shape=model.input_shape,
        n_classes=model.n_classes,
        bounds=model.bounds,
        returns="logits",
        device=model.device,
    )


def _summary(name: str, metrics: MembershipMetrics, queries: int, **extra: Any) -> dict[str, Any]:
    s = metrics.summary()
    return {
        "name": name,
        "auc": s["auc"],
        "tpr_at_0_1_fpr": s["tpr_at_0.1%_fpr"],
        "tpr_at_1_fpr": s["tpr_at_1%_fpr"],
        "balanced_accuracy": s["balanced_accuracy"],
        "advantage": s["advantage"],
        "threshold_accuracy": s["threshold_accuracy"],
        "exposed_at_1_fpr": metrics.exposed(0.01),
        "n_members": s["n_members"],
        "n_non_members": s["n_non_members"],
        "queries": int(queries),
        "curve": metrics.curve(_CURVE_POINTS),
        **extra,
    }


def _run_attack(
    attack: MembershipAttack,
    model: Classifier,
    split: dict[str, Any],
    rows: slice | np.ndarray | None = None,
    **fit: Any,
) -> dict[str, Any]:
    summary, _ = _run_attack_scored(attack, model, split, rows, **fit)
    return summary


def _run_attack_scored(
    attack: MembershipAttack,
    model: Classifier,
    split: dict[str, Any],
    rows: slice | np.ndarray | None = None,
    **fit: Any,
) -> tuple[dict[str, Any], np.ndarray]:
    """The attack's summary and its score for each record (``rows`` of the split)."""
    x, y, truth = split["x"], split["y"], split["is_member"]
    if rows is not None:
        x, y, truth = x[rows], y[rows], truth[rows]
    fitted = attack.fit(model, split["x_pop"], split["y_pop"], **fit)
    result = fitted.infer(model, x, y)
    summary = _summary(
        attack.name,
        result.metrics(truth),
        result.queries + fitted.fit_queries,
        intervals=membership_intervals(result.scores, truth),
    )
    return summary, np.asarray(result.scores, dtype=np.float64)


def _threshold_step(
    recorded: Callable[[], Classifier], names: list[str], split: dict[str, Any], seed: int
) -> StepResult:
    """The threshold attacks; each record's score is kept (``score.<attack>``) for the
    per-record file of ``--save-examples``."""
    model = recorded()
    attacks = membership_attacks(names, {"calibration": "population"}, seed=seed)
    summaries, scores = [], {}
    for a in attacks.values():
        summary, score = _run_attack_scored(a, model, split)
        summaries.append(summary)
        scores[f"score.{a.name}"] = score
    return {"attacks": summaries}, scores


def _label_only_rows(split: dict[str, Any], n_label: int) -> np.ndarray:
    n = split["n"]
    return np.r_[np.arange(n_label), n + np.arange(n_label)]


def _label_only_step(
    model: Classifier, split: dict[str, Any], n_label: int, k: int, seed: int
) -> StepResult:
    attack = LabelOnly(n_perturbations=k, calibration="population", seed=seed)
    population = {**split, "x_pop": split["x_pop"][:n_label], "y_pop": split["y_pop"][:n_label]}
    summary, score = _run_attack_scored(attack, model, population, _label_only_rows(split, n_label))
    return summary, {"score.label-only": score}


def _lira_skip(ctx: AuditContext) -> str | None:
    if not ctx.model.has_scores:
        return "LiRA needs scores; the model answers labels only"
    if not ctx.retrainable:
        return (
            "LiRA trains shadow models like the audited model; advml knows how to do that "
            "only for its reference models"
        )
    return None


def _lira_step(
    ctx: AuditContext,
    split: dict[str, Any],
    n_shadows: int,
    seed: int,
    executor: Executor | None = None,
) -> StepResult:
    train_fn, cache = _shadow_recipe(ctx, executor)
    # With fewer than 64 shadows LiRA fits one variance for all records (its default).
    attack = LiRA(n_shadow=n_shadows, seed=seed)
    fitted = attack.fit(
        ctx.model, split["x"], split["y"], train_fn=train_fn, executor=executor, cache=cache
    )
    result = fitted.infer(ctx.model, split["x"], split["y"])
    summary = _summary(
        "lira",
        result.metrics(split["is_member"]),
        result.queries,
        shadows=n_shadows,
        intervals=membership_intervals(result.scores, split["is_member"]),
    )
    return summary, {"score.lira": np.asarray(result.scores, dtype=np.float64)}


def _shadow_recipe(
    ctx: AuditContext, executor: Executor | None
) -> tuple[Callable[[np.ndarray, np.ndarray, int], Classifier], TaskCache | None]:
    """How shadow / reference models are trained (like the audited model), and where
    each finished one is stored: the audit's step cache, under a key that fingerprints
    the model, the data and the seed (the attack adds its masks and task seeds)."""
    quiet = executor is not None and executor.name != "local"
    # Workers print no progress bars (theirs would interleave with the driver's).
    trainer = replace(ctx, show_progress=False) if quiet else ctx

    def train_fn(x: np.ndarray, y: np.ndarray, shadow_seed: int) -> Classifier:
        return trainer.train_like(x, y, seed=shadow_seed % 2**31, desc="shadow model")

    cache = None
    if ctx.cache is not None:
        key = fingerprint([ctx.model_fp, ctx.data_fp, ctx.config.seed, SCHEMA_VERSION])
        cache = TaskCache(ctx.cache, f"{ctx.section}-reference-{key}")
    return train_fn, cache


def _tiers(
    ctx: AuditContext, settings: Mapping[str, Any], split: dict[str, Any], seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, str]], dict[str, Any] | None]:
    """The quick tier (offline RMIA, a few reference models) or the deep tier (LiRA and
    RMIA online on many): the attacks measured, those skipped, what ran them."""
    deep = settings["tier"] == "deep"
    n_ref = int(settings["deep_references"] if deep else settings["rmia_references"])
    names = ("lira", "rmia") if deep else ("rmia",)
    if n_ref < 2:
        return [], [], None
    reason = _lira_skip(ctx)
    if reason is not None:
        reason = reason.replace("LiRA", "RMIA" if not deep else "LiRA and RMIA")
        return [], [{"attack": n, "reason": reason} for n in names], None
    # A model on a GPU trains its reference models on GPUs: each Ray task asks for a
    # quarter of one (four small models share a GPU); the CPU path asks for none.
    executor = section_executor(ctx, gpus_per_task=0.25)
    run: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    with executor:
        for name in names:
            try:
                meta, _ = ctx.step(
                    f"{name}-{'deep' if deep else 'quick'}",
                    {"references": n_ref, "split": split["key"], "deep": deep},
                    partial(_tier_step, ctx, split, name, n_ref, deep, seed, executor),
                )
                run.append(meta)
            except QueryBudgetExceededError as err:
                skipped.append({"attack": name, "reason": budget_ran_out(ctx.model, err)})
    return run, skipped, executor.describe()


def _tier_step(
    ctx: AuditContext,
    split: dict[str, Any],
    name: str,
    n_ref: int,
    deep: bool,
    seed: int,
    executor: Executor,
) -> StepResult:
    """One attack of a tier. LiRA and RMIA share the reference models (same halves, same
    task seeds): in the deep tier RMIA reads LiRA's 64 models back from the cache."""
    train_fn, cache = _shadow_recipe(ctx, executor)
    attack: MembershipAttack
    if name == "lira":
        attack = LiRA(n_shadow=n_ref, mode="online", seed=seed)
    else:
        attack = RMIA(n_reference=n_ref, mode="online" if deep else "offline", seed=seed)
    # The pool: the candidates and the attacker's population, so that each reference
    # model trains on as many records as the data allows (closer to the target's own).
    x_pool = np.concatenate([split["x"], split["x_pop"]])
    y_pool = np.concatenate([split["y"], split["y_pop"]])
    fitted = attack.fit(
        ctx.model, x_pool, y_pool, train_fn=train_fn, executor=executor, cache=cache
    )
    result = fitted.infer(ctx.model, split["x"], split["y"])
    summary = _summary(
        name,
        result.metrics(split["is_member"]),
        result.queries + fitted.fit_queries,
        references=n_ref,
        mode=attack.get_params()["mode"],
        intervals=membership_intervals(result.scores, split["is_member"]),
    )
    return summary, {}


def _hardening(
    ctx: AuditContext,
    settings: Mapping[str, Any],
    names: list[str],
    split: dict[str, Any],
    label_only: dict[str, Any] | None,
    recorded: Callable[[], Classifier],
) -> list[dict[str, Any]]:
    """The threshold attacks behind each output defence; labels-only leaves label-only."""
    model = ctx.model
    if not model.has_scores:
        return []
    seed = ctx.config.seed
    rows: list[dict[str, Any]] = []
    for defence_name, defence_settings in settings["hardening"].items():
        defence = registry.create("output_defence", defence_name, **dict(defence_settings))
        label = _defence_label(defence_name, dict(defence_settings))
        if not getattr(defence, "reveals_scores", True):
            # The label is unchanged, so the label-only attack's result carries over.
            rows.append(
                {
                    "defence": defence_name,
                    "label": label,
                    "params": dict(defence_settings),
                    "attacks": [],
                    "note": "score attacks impossible; the label-only attack remains"
                    + (f" (AUC {label_only['auc']:.3f})" if label_only else ""),
                }
            )
            continue
        try:
            meta, _ = ctx.step(
                f"hardened-{defence_name}",
                {"defence": defence.get_params(), "attacks": names, "split": split["key"]},
                partial(_hardened_step, defence, recorded, names, split, seed),
            )
        except QueryBudgetExceededError as err:
            rows.append(
                {
                    "defence": defence_name,
                    "label": label,
                    "params": dict(defence_settings),
                    "attacks": [],
                    "note": "not measured: " + budget_ran_out(model, err),
                }
            )
            continue
        rows.append(
            {
                "defence": defence_name,
                "label": label,
                "params": dict(defence_settings),
                "attacks": meta["attacks"],
                "note": "",
            }
        )
    return rows


def _hardened_step(
    defence: Any,
    recorded: Callable[[], Classifier],
    names: list[str],
    split: dict[str, Any],
    seed: int,
) -> StepResult:
    hardened = defence.wrap(recorded())
    out = []
    for attack in membership_attacks(names, {"calibration": "population"}, seed=seed).values():
        summary = _run_attack(attack, hardened, split)
        summary.pop("curve")
        out.append(summary)
    return {"attacks": out}, {}


def _trade_off(
    ctx: AuditContext,
    settings: Mapping[str, Any],
    split: dict[str, Any],
    attacks_run: list[dict[str, Any]],
) -> dict[str, Any]:
    """DP-SGD copies of the model trained on its own training records: ε, accuracy and
    what the loss attack still gets (Abadi et al. 2016; the privacy-utility curve)."""
    noise = [float(v) for v in settings["dp_noise"]]
    if not noise:
        return {"rows": [], "reason": "not run (section setting dp_noise is empty)"}
    if not (ctx.retrainable and isinstance(ctx.model, TorchClassifier)):
        return {
            "rows": [],
            "reason": "DP-SGD retrains the model; advml can do that for its reference "
            "models, given white-box access",
        }
    rows: list[dict[str, Any]] = []
    loss = next((a for a in attacks_run if a["name"] == "loss_threshold"), None)
    rows.append(
        {
            "method": "as audited (no DP)",
            "noise_multiplier": 0.0,
            "epsilon": None,
            "accuracy": ctx.clean_accuracy,
            "auc": None if loss is None else loss["auc"],
            "tpr_at_1_fpr": None if loss is None else loss["tpr_at_1_fpr"],
        }
    )
    epochs = int(settings["dp_epochs"])
    for sigma in noise:
        meta, _ = ctx.step(
            f"dp-sgd-{sigma:g}",
            {"sigma": sigma, "epochs": epochs, "split": split["key"]},
            partial(_dp_step, ctx, split, sigma, epochs),
        )
        rows.append(meta)
    return {"rows": rows, "reason": ""}


def _dp_step(ctx: AuditContext, split: dict[str, Any], sigma: float, epochs: int) -> StepResult:
    from advml.defences.training import DPSGD

    ds = ctx.dataset
    rows = split["train_rows"]
    delta = min(1e-5, 0.1 / len(rows))
    defence = DPSGD(noise_multiplier=sigma, epochs=epochs, delta=delta, seed=ctx.config.seed)
    trained = defence.fit(
        require_torch(ctx.model, "DP-SGD", "retraining"),  # _trade_off checked it
        ds.x_train[rows],
        ds.y_train[rows],
        show_progress=ctx.show_progress,
    )
    model = trained.model
    accuracy = float((np.asarray(model.predict(ctx.x)) == ctx.y).mean())
    attack = LossThreshold(calibration="population", seed=ctx.config.seed)
    summary = _run_attack(attack, model, split)
    return {
        "method": f"DP-SGD σ = {sigma:g}, {epochs} epochs",
        "noise_multiplier": sigma,
        "epsilon": float(trained.epsilon),
        "delta": delta,
        "accuracy": accuracy,
        "auc": summary["auc"],
        "tpr_at_1_fpr": summary["tpr_at_1_fpr"],
    }, {}


def _defence_label(name: str, settings: dict[str, Any]) -> str:
    if name == "labels_only":
        return "labels only"
    if name == "top_k":
        return f"top-{settings.get('k', 1)} scores"
    if name == "rounding":
        return f"scores rounded to {settings.get('decimals', 2)} decimal(s)"
    if name == "noisy_scores":
        return "noisy scores"
    return name


_LABELS = {"pass": "low risk", "warn": "some risk", "fail": "high risk"}


def _verdict(attacks: list[dict[str, Any]], split: dict[str, Any]) -> Verdict:
    """The risk from the attacks' 95 % intervals, not their point estimates.

    "high risk" needs the interval's *lower* bound past the bar (AUC 0.6, or 5 % of the
    records at 1 % false alarms), so the data show the leak; "some risk" needs the lower
    bound above guessing (AUC 0.5, TPR 1 %); "low risk" needs the *upper* bounds below
    the high-risk bars, so the data exclude a large leak. Anything else (few records, a
    wide interval) is "inconclusive" and says so (docs/audit.md, Membership).
    """
    if not attacks:
        return Verdict(
            "unknown",
            "unknown",
            "No membership attack could be run, so the risk is unknown.",
            {"membership_auc": None, "tpr_at_1_fpr": None},
        )
    best_auc = max(attacks, key=lambda a: a["auc"])
    best_tpr = max(attacks, key=lambda a: a["tpr_at_1_fpr"])
    auc, tpr = float(best_auc["auc"]), float(best_tpr["tpr_at_1_fpr"])
    auc_iv = best_auc.get("intervals", {}).get("auc") or {"low": auc, "high": auc}
    tpr_iv = best_tpr.get("intervals", {}).get("tpr_at_1_fpr") or {"low": tpr, "high": tpr}
    # A TPR "at 1% false alarms" needs 100 unseen records to have a 1% step at all; with
    # fewer, the attack's threshold allows no false alarm among a handful and the true
    # false-alarm rate is unknown, so the verdict rests on the AUC alone (and says so).
    n_non = int(best_tpr.get("n_non_members", split["n"]))
    tpr_usable = n_non >= 100
    if not tpr_usable:
        tpr_iv = {"low": 0.0, "high": 0.0}
    level: Level
    inconclusive = False
    if auc_iv["low"] >= _FAIL_AUC or tpr_iv["low"] >= _FAIL_TPR:
        level = "fail"
    elif auc_iv["low"] > 0.5 or tpr_iv["low"] > 0.01:
        level = "warn"
    elif auc_iv["high"] < _FAIL_AUC and tpr_iv["high"] < _FAIL_TPR:
        level = "pass"
    else:
        # Neither a leak nor its absence is shown: "inconclusive", ranked as a warning
        # because a high risk is not excluded.
        level = "warn"
        inconclusive = True
    exposed = int(best_tpr["exposed_at_1_fpr"])
    n_members = int(best_tpr.get("n_members", split["n"]))
    text = (
        f"Of {best_auc.get('n_members', split['n'])} training records and "
        f"{best_auc.get('n_non_members', split['n'])} records the model never saw, the best "
        f"attack ({best_auc['name'].replace('_', ' ')}) ranks a random training record above "
        f"a random unseen one {auc:.1%} of the time (95% interval {auc_iv['low']:.1%} to "
        f"{auc_iv['high']:.1%}; 50% is guessing). Accepting 1% false alarms, an attacker "
        f"({best_tpr['name'].replace('_', ' ')}) identifies {tpr:.1%} of the training "
        f"records ({exposed} of {n_members}; "
        + (
            f"95% interval {tpr_iv['low']:.1%} to {tpr_iv['high']:.1%}; 1% is chance). "
            if tpr_usable
            else f"with only {n_non} unseen records a 1% false-alarm rate cannot be "
            f"measured, the smallest step being {1 / n_non:.1%}, so this figure is not "
            "used for the verdict). "
        )
    )
    text += (
        "The intervals include both guessing and a high risk: too few records to tell; "
        "audit with more records (section_settings.membership.n_members)."
        if inconclusive
        else {
            "pass": "Both intervals stay below the high-risk bars (AUC 60%, 5% identified): "
            "the model's answers reveal little about who was in its training data.",
            "warn": "The interval lies above guessing, so the leak is real but below the "
            "high-risk bars: the model's answers reveal some of who was in its training data.",
            "fail": "Even the interval's lower bound is past a high-risk bar (AUC 60% or 5% "
            "identified): the model's answers reveal who was in its training data for a share "
            "of records; train with regularisation or DP-SGD, or release less than full "
            "scores.",
        }[level]
    )
    return Verdict(
        level,
        "inconclusive" if inconclusive else _LABELS[level],
        text,
        {
            "membership_auc": auc,
            "membership_auc_low": float(auc_iv["low"]),
            "membership_auc_high": float(auc_iv["high"]),
            "tpr_at_1_fpr": tpr,
            "tpr_at_1_fpr_low": float(tpr_iv["low"]) if tpr_usable else None,
            "tpr_at_1_fpr_high": float(tpr_iv["high"]) if tpr_usable else None,
            "n_non_members": n_non,
            "exposed_at_1_fpr": exposed,
            "n_members": n_members,
            "advantage": max(float(a["advantage"]) for a in attacks),
            "attack": best_auc["name"],
            "tpr_attack": best_tpr["name"],
        },
    )
