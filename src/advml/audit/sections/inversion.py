"""Model inversion: can an attacker reconstruct what each class looks like from the model?

MI-Face (Fredrikson, Jha & Ristenpart, CCS 2015) climbs each class's confidence from a
blank input with image priors: with the model's gradients when the adversary has them,
else from its scores by zeroth-order estimates (counted queries). The reconstructions
are judged by an **independent classifier** (a logistic regression trained on the test
split, which the model did not see: the stand-in for Fredrikson et al.'s human
recognition test, §5.3) and compared with each class's mean training image by SSIM and
MSE. Behind each output defence that still reveals scores (rounding, top-k) the attack
is run again from scores only, to show what hardening takes away; labels only leaves
nothing to climb.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any, ClassVar

import numpy as np

from advml import registry
from advml.audit.sections.base import (
    AuditContext,
    AuditSection,
    Level,
    SectionOutput,
    Verdict,
    budget_ran_out,
)
from advml.errors import QueryBudgetExceededError
from advml.metrics.intervals import proportion
from advml.models.base import Classifier
from advml.privacy.inversion import MIFace, invert_and_judge

__all__ = ["SECTION", "InversionSection"]

StepResult = tuple[dict[str, Any], dict[str, np.ndarray]]

_PER_CLASS = 50
"""Reconstructions per class. The verdict warns when the recognition rate is above
chance (1 / classes) beyond its 95 % interval (see ``_verdict``). It never fails on its
own: a reconstructed class is a leak where a class is a person (face recognition), not
where it is a digit; the text says so and the report shows the images for the reader to
judge."""


class InversionSection(AuditSection):
    """Class reconstructions by MI-Face, judged independently; the effect of hardening.

    Settings
    --------
    max_classes : int
        Reconstruct the first this many classes (default 10).
    steps : int
        MI-Face descent steps with gradients (default 200).
    zo_steps, zo_directions : int
        Steps and random directions per step when only scores are available (no
        gradients, or behind an output defence); ``2 * zo_directions`` queries per step
        and class.
    hardening : dict
        Output defences to measure, by registered name with their settings; those that
        reveal labels only are reported as blocking the attack without running it.
        ``"none"`` runs the same zeroth-order attack on the plain scores, the comparison
        at equal budget (in ``--quick`` audits; on mnist-5k it would cost about as much
        as the rounded run, which the default budget does not allow).
    """

    name = "inversion"
    title = "Model inversion: reconstructing the classes"
    threat = "confidentiality"
    order = 55
    default_settings: ClassVar[Mapping[str, Any]] = {
        "max_classes": 10,
        "steps": 200,
        "zo_steps": 15,
        "zo_directions": 6,
        "hardening": {"labels_only": {}, "rounding": {"decimals": 1}},
    }
    quick_settings: ClassVar[Mapping[str, Any]] = {
        "steps": 150,
        "zo_steps": 60,
        "zo_directions": 10,
        "hardening": {"labels_only": {}, "none": {}, "rounding": {"decimals": 1}},
    }

    def skip_reason(self, ctx: AuditContext, settings: Mapping[str, Any]) -> str | None:
        if not ctx.model.has_scores:
            return (
                "model inversion climbs the model's confidence in a class; this model answers "
                "labels only, which leaves nothing to climb (labels-only output is itself a "
                "defence against inversion)"
            )
        missing = sorted(set(range(ctx.dataset.n_classes)) - set(ctx.dataset.y_test.tolist()))
        if missing:
            return f"the test split has no record of class(es) {missing} to train the judge on"
        return None

    def run(self, ctx: AuditContext, settings: Mapping[str, Any]) -> SectionOutput:
        _check(settings)
        ds = ctx.dataset
        classes = np.arange(min(int(settings["max_classes"]), ds.n_classes))
        seed = ctx.config.seed
        gradient = "white-box" if ctx.model.has_gradients else "zeroth-order"
        attack = _attack(settings, gradient, seed)
        meta, arrays = ctx.step(
            "mi-face",
            {"attack": attack.get_params(), "classes": classes.tolist()},
            partial(_invert_step, ctx, ctx.model, attack, classes),
        )
        hardening: list[dict[str, Any]] = []
        for defence_name, defence_settings in settings["hardening"].items():
            entry: dict[str, Any] = {"defence": defence_name, "params": dict(defence_settings)}
            target = ctx.model  # "none": the plain scores, for comparison at the same budget
            note = "no defence: the same zeroth-order budget on the plain scores"
            if defence_name != "none":
                defence = registry.create("output_defence", defence_name, **dict(defence_settings))
                if not getattr(defence, "reveals_scores", True):
                    entry.update(blocked=True, note="labels only: no confidence to climb")
                    hardening.append(entry)
                    continue
                target = defence.wrap(ctx.model)
                note = ""
            zo = _attack(settings, "zeroth-order", seed)
            try:
                h_meta, _ = ctx.step(
                    f"hardened-{defence_name}",
                    {"attack": zo.get_params(), "classes": classes.tolist(), "defence": entry},
                    partial(_invert_step, ctx, target, zo, classes),
                )
            except QueryBudgetExceededError as err:
                # The inversion above is kept; this comparison is not measured.
                entry.update(blocked=False, note="not measured: " + budget_ran_out(ctx.model, err))
                hardening.append(entry)
                continue
            if "budget_ran_out" in h_meta:
                note = "; ".join(filter(None, [note, "query budget ran out: fewer steps"]))
            entry.update(blocked=False, note=note, **_headline(h_meta))
            hardening.append(entry)
        verdict = _verdict(meta, ds.n_classes)
        data = {**meta, "hardening": hardening}
        data["class_names"] = [ds.class_names[int(c)] for c in classes]
        return SectionOutput(data, verdict, arrays)


SECTION = InversionSection


def _check(settings: Mapping[str, Any]) -> None:
    for key in ("max_classes", "steps", "zo_steps", "zo_directions"):
        value = settings[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(
                f"section_settings['inversion'][{key!r}] must be an integer >= 1, got {value!r}"
            )
    hardening = settings["hardening"]
    if not isinstance(hardening, dict):
        raise ValueError(
            "section_settings['inversion']['hardening'] must map output defences to their "
            f"settings, e.g. {{'rounding': {{'decimals': 1}}}}; got {hardening!r}"
        )
    known = [*registry.available("output_defence"), "none"]
    unknown = sorted(set(hardening) - set(known))
    if unknown:
        raise ValueError(
            f"section_settings['inversion']['hardening'] has unknown defences {unknown}; "
            f"known: {known}"
        )


def _attack(settings: Mapping[str, Any], gradient: str, seed: int) -> MIFace:
    if gradient == "white-box":
        return MIFace(steps=int(settings["steps"]), gradient="white-box", seed=seed)
    return MIFace(
        steps=int(settings["zo_steps"]),
        gradient="zeroth-order",
        n_directions=int(settings["zo_directions"]),
        seed=seed,
    )


def _invert_step(
    ctx: AuditContext, model: Classifier, attack: MIFace, classes: np.ndarray
) -> StepResult:
    ds = ctx.dataset
    x_real, y_real = _real_samples(ds, seed=ctx.config.seed)
    budget_note = None
    try:
        judged = invert_and_judge(
            attack,
            model,
            classes,
            x_judge=ds.x_test,
            y_judge=ds.y_test,
            x_real=x_real,
            y_real=y_real,
            seed=ctx.config.seed,
        )
    except QueryBudgetExceededError as err:
        if err.partial_result is None:
            raise
        # The reconstructions the budget paid for are judged and reported as such.
        judged, budget_note = err.partial_result, str(err)
    result, evaluation = judged.result, judged.evaluation
    numbers = judged.summary()
    ssim = numbers["evaluation"]["mean_ssim_to_class_mean"]
    meta = {
        "gradient": result.gradient,
        "recognition_rate": evaluation.recognition_rate,
        "mean_confidence": numbers["inversion"]["mean_confidence"],
        # NaN (no images) is stored as None: the report's JSON allows no NaN.
        "mean_ssim_to_class_mean": None if np.isnan(ssim) else ssim,
        "mean_mse_to_class_mean": numbers["evaluation"]["mean_mse_to_class_mean"],
        "queries": int(result.queries),
        "seconds": round(result.seconds, 3),
        "params": dict(attack.get_params()),
        "per_class": numbers["per_class"],
    }
    if budget_note is not None:
        meta["budget_ran_out"] = budget_note
    arrays = {
        "images": result.images.astype(np.float32),
        "class_means": evaluation.class_means.astype(np.float32),
        "classes": result.classes,
        "judged": np.asarray(evaluation.predicted),
    }
    return meta, arrays


def _real_samples(ds: Any, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``_PER_CLASS`` training records of each class: SSIM to every sample costs a
    convolution per pair, so the comparison uses a seeded sample of each class."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 5201]))
    rows = np.concatenate(
        [rng.permutation(np.flatnonzero(ds.y_train == c))[:_PER_CLASS] for c in range(ds.n_classes)]
    )
    return ds.x_train[rows], ds.y_train[rows]


def _headline(meta: Mapping[str, Any]) -> dict[str, Any]:
    keys = ["gradient", "recognition_rate", "mean_confidence", "mean_ssim_to_class_mean"]
    keys.append("queries")
    return {k: meta[k] for k in keys}


_LABELS = {"pass": "not reconstructable", "warn": "classes reconstructable"}


def _verdict(meta: Mapping[str, Any], n_classes: int) -> Verdict:
    """A leak when the share of reconstructions an independent classifier recognises is
    above chance (``1 / n_classes``) beyond its uncertainty: the Wilson interval's lower
    bound exceeds chance. A fixed bar would call 50 % a leak on two classes, where it is
    a coin toss."""
    rate = float(meta["recognition_rate"])
    k = len(meta["per_class"])
    recognised = round(rate * k)
    iv = proportion(recognised, k)
    chance = 1 / n_classes
    level: Level = "warn" if iv.low > chance else "pass"
    how = "its gradients" if meta["gradient"] == "white-box" else "its scores alone"
    text = (
        f"From {how}, an attacker reconstructed an image of each of {k} classes; an "
        f"independent classifier recognised {recognised} of {k} ({rate:.0%}; 95% interval "
        f"{iv.low:.0%} to {iv.high:.0%}; chance: {chance:.0%}). "
    )
    text += {
        "pass": "That is not above chance beyond its uncertainty: the reconstructions do "
        "not show what the classes look like.",
        "warn": "Even the interval's lower bound is above chance: the model gives away what "
        "its classes look like. That is a leak where a class is one person (face "
        "recognition: it is their face) or another private group; release labels only, or "
        "fewer and coarser scores, there.",
    }[level]
    label = _LABELS[level]
    if meta.get("budget_ran_out"):
        text += (
            " The model's query budget ran out before the attack's steps: these are the "
            "reconstructions it paid for, so an attacker with the full budget does at "
            "least this well."
        )
        if level == "pass":
            # Too few steps say nothing about what the model gives away.
            level, label = "unknown", "not assessed (query budget ran out)"
    return Verdict(
        level,
        label,
        text,
        {
            "recognition_rate": rate,
            "recognition_rate_low": iv.low,
            "recognition_rate_high": iv.high,
            "recognised": recognised,
            "n_classes_reconstructed": k,
            "chance": chance,
            "mean_ssim_to_class_mean": meta["mean_ssim_to_class_mean"],
        },
    )
