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
    L∞ budget; ``None`` for the config's ``reference_eps``. The verdict, the trade-off
    table and detection are at this ε.
``eps_list``
    More L∞ budgets for the defence matrix (``None``, the default: only ``eps``); ``eps``
    is always evaluated too.
``strengths``
    Strength levels (``["low", "medium", "high"]`` or some of them) at which every
    defence is evaluated besides its configured setting, its preset parameters taken
    from the level (``None``, the default: the configured setting only).
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

The matrix: every defence setting (the configured one, and each of ``strengths``) x ε
(``eps`` and ``eps_list``) x measurement (clean, standard attack, adaptive attack) is one
independent, seeded task, a pure function of the model, the inputs, the defence's
settings, the ε and the audit seed. The tasks run on the config's executor (``local``,
``process`` or ``ray``; ``advml audit --executor``): the model, the inputs and the
defences travel once per run (``ray.put`` on Ray), each task returns one boolean per
input, and each finished task is stored in the step cache as it arrives, so a killed
audit resumes with only the unfinished ones. The figures do not depend on the executor.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
    runs_here,
    section_executor,
)
from advml.defences.detection import FeatureSqueezingDetector
from advml.defences.preprocess import STRENGTHS, Autoencoder, Preprocessor
from advml.defences.preprocess.evaluation import (
    MASKING_GAP,
    CellKind,
    combine_cells,
    defended_correct,
)
from advml.errors import QueryBudgetExceededError
from advml.evasion.base import EvasionAttack
from advml.metrics.intervals import from_rate, proportion
from advml.models import load_model
from advml.models.base import Classifier
from advml.report.model import SCHEMA_VERSION
from advml.runtime.cache import ResultCache, fingerprint
from advml.runtime.executors import Executor, LocalExecutor, TaskCache, cached_map
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
        "eps_list": None,
        "strengths": None,
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
        _check_settings(ctx, settings)  # every setting, before an executor starts
        executor = _cell_executor(ctx)
        try:
            return self._run(ctx, settings, executor)
        finally:
            executor.close()

    def _run(
        self, ctx: AuditContext, settings: Mapping[str, Any], executor: Executor
    ) -> SectionOutput:
        eps = _eps(ctx, settings)
        eps_all = _eps_list(settings["eps_list"], eps)
        strengths = _strengths(settings["strengths"])
        specs = settings["defences"]
        other = None
        if settings["robust_model"] is not None:
            other = _robust_model(str(settings["robust_model"]), ctx.model)
        n = min(int(settings["n_samples"]), len(ctx.y))
        x, y = ctx.x[:n], ctx.y[:n]
        steps, seed = int(settings["steps"]), int(ctx.config.seed)
        attack = _pgd(eps, steps, seed)

        skipped: list[dict[str, str]] = []
        bases: dict[float, dict[str, Any]] = {}
        base_arrays: dict[str, np.ndarray] = {}
        for e in eps_all:
            e_attack = _pgd(e, steps, seed)
            try:
                meta, arrays = ctx.step(
                    f"undefended-eps{e:g}",
                    {"attack": e_attack.get_params(), "n": n},
                    partial(_undefended_step, e_attack, ctx.model, x, y),
                )
            except QueryBudgetExceededError as err:
                if e == eps:
                    raise
                skipped.append(
                    {"defence": f"all at ε={e:g}", "reason": budget_ran_out(ctx.model, err)}
                )
                continue
            bases[e] = meta
            if e == eps:
                base_arrays = arrays
        base = bases[eps]
        variants = _plan(specs, strengths, ctx.model, seed, skipped)
        grid = _Grid(variants, sorted(bases), n, steps, int(settings["eot_samples"]), seed)
        matrix_meta, _ = ctx.step(
            "matrix",
            {"cells": grid.names()},
            partial(_matrix_step, ctx, executor, grid, x, y, bases),
        )
        matrix: list[dict[str, Any]] = matrix_meta["cells"]
        skipped += matrix_meta["skipped"]
        rows = [c for c in matrix if c["configured"] and c["eps"] == eps]

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
        summary = _summary(rows, base, eps, n) + _comparison_note(ctx, n, steps)
        summary += _matrix_summary(matrix, rows)
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
            "eps_list": sorted(bases),
            "strengths": list(strengths),
            "undefended_by_eps": [{"eps": e, **bases[e]} for e in sorted(bases)],
            "matrix": matrix,
            "executor": executor.describe(),
        }
        checks = defence_checks(rows)
        data["evaluation_checks"] = checks
        return SectionOutput(data, inconclusive(_verdict(rows, base, eps, summary, n), checks))


SECTION = DefencesSection


def _eps(ctx: AuditContext, settings: Mapping[str, Any]) -> float:
    """The ε of the trade-off table and the verdict: the setting, else ``reference_eps``."""
    return float(ctx.config.reference_eps if settings["eps"] is None else settings["eps"])


def _check_settings(ctx: AuditContext, settings: Mapping[str, Any]) -> None:
    """Every setting, with errors that name it."""
    where = "section_settings['defences']"
    eps = _eps(ctx, settings)
    check_number(f"{where}['eps']", eps, low=0)
    for key in ("steps", "eot_samples", "n_samples"):
        check_number(f"{where}[{key!r}]", settings[key], low=1, integer=True)
    check_number(f"{where}['detection_fpr']", settings["detection_fpr"], low=0, high=1)
    _eps_list(settings["eps_list"], eps)
    _strengths(settings["strengths"])
    if not isinstance(settings["defences"], Mapping):
        raise ValueError(
            "section_settings['defences']['defences'] must map preprocessor names to "
            "their parameters, e.g. {'jpeg': {'strength': 'high'}}"
        )


@dataclass(frozen=True)
class _Variant:
    """One defence setting of the matrix: a registered preprocessor with its parameters."""

    name: str
    params: dict[str, Any]
    """As configured (with the audit seed for a randomised one): what built ``prep``."""
    prep: Preprocessor
    configured: bool
    """The defence's configured setting (the trade-off table and the verdict use it)."""

    @property
    def strength(self) -> str | None:
        return getattr(self.prep, "strength", None)


def _plan(
    specs: Mapping[str, Any],
    strengths: Sequence[str],
    model: Classifier,
    seed: int,
    skipped: list[dict[str, str]],
) -> list[_Variant]:
    """The defence settings to evaluate, in the configured order: each defence at its
    configured setting and, with ``strengths``, at each level (its preset parameters from
    the level, its other parameters as configured; a level equal to the configured
    setting counts once). Defences that do not fit the inputs go to ``skipped``."""
    available = registry.available("preprocess")
    out: list[_Variant] = []
    for name, params in specs.items():
        if name not in available:
            raise ValueError(
                f"section_settings['defences']['defences'] names unknown preprocessor "
                f"{name!r}; available: {', '.join(available)}"
            )
        if params is not None and not isinstance(params, Mapping):
            raise ValueError(
                f"section_settings['defences']['defences'][{name!r}] must map parameter "
                f"names to values, e.g. {{'strength': 'high'}}; got {params!r}"
            )
        params = dict(params or {})
        schema = registry.schema("preprocess", name)
        if "seed" in schema:
            params.setdefault("seed", seed)
        prep = registry.create("preprocess", name, **params)
        try:
            if prep.needs_fit:
                # Not fitted yet (the autoencoder is trained inside the matrix step): only
                # the base class's check, whether it needs images, applies now.
                Preprocessor.check_input_shape(prep, tuple(model.input_shape))
            else:
                prep.check_input_shape(tuple(model.input_shape))
        except ValueError as err:
            skipped.append({"defence": name, "reason": str(err)})
            continue
        configured = _Variant(name, params, prep, configured=True)
        if not strengths or "strength" not in schema:
            out.append(configured)
            continue
        preset = set().union(*(set(v) for v in type(prep).presets.values()))
        levels: list[_Variant] = []
        found = False
        for level in strengths:
            level_params = {k: v for k, v in params.items() if k not in preset}
            level_params["strength"] = level
            level_prep = registry.create("preprocess", name, **level_params)
            same = fingerprint(level_prep.get_params()) == fingerprint(prep.get_params())
            found = found or same
            levels.append(configured if same else _Variant(name, level_params, level_prep, False))
        out += levels if found else [configured, *levels]
    return out


def _eps_list(value: Any, eps: float) -> list[float]:
    """``eps`` and the ``eps_list`` setting's budgets, ascending, each once."""
    where = "section_settings['defences']['eps_list']"
    if value is None:
        return [eps]
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or not value:
        raise ValueError(
            f"{where} must be a non-empty list of L∞ budgets, e.g. [0.05, 0.1, 0.2], or "
            f"null for the one eps; got {value!r}"
        )
    for i, e in enumerate(value):
        check_number(f"{where}[{i}]", e, low=0)
    return sorted({float(e) for e in value} | {eps})


def _strengths(value: Any) -> tuple[str, ...]:
    """The ``strengths`` setting: levels of :data:`STRENGTHS`, each once, in its order."""
    where = "section_settings['defences']['strengths']"
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise ValueError(
            f"{where} must be a non-empty list of strength levels from {list(STRENGTHS)}, "
            f"or null for the configured setting only; got {value!r}"
        )
    unknown = [v for v in value if v not in STRENGTHS]
    if unknown:
        raise ValueError(f"{where} has unknown levels {unknown}; known: {list(STRENGTHS)}")
    return tuple(dict.fromkeys(value))


def _pgd(eps: float, steps: int, seed: int) -> EvasionAttack:
    attack = registry.create("evasion", "pgd", eps=eps, steps=steps, seed=seed)
    assert isinstance(attack, EvasionAttack)
    return attack


# -- the matrix: one task per defence setting x ε x measurement ---------------------------------
@dataclass(frozen=True)
class _Cell:
    """One task (small: the model, the inputs and the defences travel with the function)."""

    variant: int
    eps: float | None
    """None for the clean measurement (no attack, so no ε)."""
    kind: CellKind


@dataclass(frozen=True)
class _Grid:
    """The matrix's cells and the names that key them in the step cache."""

    variants: list[_Variant]
    eps: list[float]
    n: int
    steps: int
    eot_samples: int
    seed: int

    def eot(self, v: _Variant) -> int | None:
        return self.eot_samples if v.prep.randomised else None

    def cells(self) -> list[_Cell]:
        """Per defence setting: its clean cell, then standard and adaptive at each ε (the
        order of the queries a one-process evaluation makes)."""
        out: list[_Cell] = []
        for i in range(len(self.variants)):
            out.append(_Cell(i, None, "clean"))
            for e in self.eps:
                out += [_Cell(i, e, "standard"), _Cell(i, e, "adaptive")]
        return out

    def names(self) -> list[str]:
        """A readable, content-addressed name per cell: everything its result depends on
        besides the model, the inputs and the audit seed (in the cache's prefix). A
        changed defence recomputes its own cells only."""
        out = []
        for c in self.cells():
            v = self.variants[c.variant]
            what = {
                "params": v.prep.get_params(),
                "kind": c.kind,
                "eps": c.eps,
                "steps": self.steps,
                "eot": self.eot(v),
                "n": self.n,
            }
            eps = "" if c.eps is None else f"-eps{c.eps:g}"
            out.append(f"{v.name}-{v.strength or 'set'}-{c.kind}{eps}-{fingerprint(what)}")
        return out


@dataclass(frozen=True)
class _CellCache(TaskCache):
    """Cells keyed by their names, not their position: adding a defence or an ε does not
    shift the keys of the others."""

    names: tuple[str, ...] = ()

    def key(self, index: int) -> str:
        return f"{self.prefix}-{self.names[index]}"


class _PaidOnly(ResultCache):
    """The step cache, minus cells the model's query budget cut short: the budget is not
    part of their key, so a rerun with a larger budget must compute them."""

    def __init__(self, inner: ResultCache) -> None:
        super().__init__(inner.folder, log=inner.log)

    def put(
        self, key: str, meta: dict[str, Any], arrays: dict[str, np.ndarray] | None = None
    ) -> None:
        if "budget_ran_out" not in meta:
            super().put(key, meta, arrays)


@dataclass(frozen=True)
class _Cells:
    """The function of every task: the model, the inputs and the defence settings, sent
    once per run (``ray.put`` on Ray), not once per cell."""

    model: Classifier
    x: np.ndarray
    y: np.ndarray
    preps: tuple[Preprocessor, ...]
    steps: int
    eot_samples: int
    seed: int

    def __call__(self, cell: _Cell) -> dict[str, Any]:
        start = time.perf_counter()
        prep = self.preps[cell.variant]
        attack = None if cell.eps is None else _pgd(cell.eps, self.steps, self.seed)
        try:
            ok = defended_correct(
                self.model,
                prep,
                self.x,
                self.y,
                kind=cell.kind,
                attack=attack,
                eot_samples=self.eot_samples if prep.randomised else None,
                seed=self.seed,
            )
        except QueryBudgetExceededError as err:
            # Only a local run has a budget (the executor is local then): the model here
            # is the audit's, and its count is the one spent.
            return {"budget_ran_out": budget_ran_out(self.model, err)}
        return {"correct": np.asarray(ok, dtype=bool), "seconds": time.perf_counter() - start}


def _encode(result: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    if "budget_ran_out" in result:
        return {"budget_ran_out": result["budget_ran_out"]}, {}
    return {"seconds": round(float(result["seconds"]), 3)}, {"correct": result["correct"]}


def _decode(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    return {**meta, "correct": np.asarray(arrays["correct"], dtype=bool)}


def _cell_executor(ctx: AuditContext) -> Executor:
    """The config's executor for the matrix's cells, or this process where the model
    must be asked here (:func:`runs_here`). A model on a GPU asks Ray for a quarter of
    one per cell."""
    return LocalExecutor() if runs_here(ctx) else section_executor(ctx, gpus_per_task=0.25)


def _matrix_step(
    ctx: AuditContext,
    executor: Executor,
    grid: _Grid,
    x: np.ndarray,
    y: np.ndarray,
    bases: Mapping[float, Mapping[str, Any]],
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Every cell through ``executor`` (each stored as it finishes), then the figures of
    each defence setting at each ε."""
    cells, names = grid.cells(), grid.names()
    cache = None
    if ctx.cache is not None:
        prefix = fingerprint([ctx.model_fp, ctx.data_fp, ctx.config.seed, SCHEMA_VERSION])
        cache = _CellCache(_PaidOnly(ctx.cache), f"{ctx.section}-cell-{prefix}", tuple(names))
    # An autoencoder is trained here, once, before its settings travel to the workers;
    # not at all when every one of its cells is stored.
    for i, v in enumerate(grid.variants):
        if isinstance(v.prep, Autoencoder) and not hasattr(v.prep, "module_"):
            mine = [j for j, c in enumerate(cells) if c.variant == i]
            if cache is None or not all(cache.cache.has(cache.key(j)) for j in mine):
                v.prep.fit(
                    ctx.dataset.x_train, bounds=ctx.model.bounds, show_progress=ctx.show_progress
                )
    fn = _Cells(
        ctx.model,
        x,
        y,
        tuple(v.prep for v in grid.variants),
        grid.steps,
        grid.eot_samples,
        grid.seed,
    )
    results = cached_map(
        executor,
        fn,
        cells,
        cache=cache,
        encode=_encode if cache is not None else None,
        decode=_decode if cache is not None else None,
        desc="defences",
        show_progress=ctx.show_progress,
    )
    done = {(c.variant, c.eps, c.kind): r for c, r in zip(cells, results, strict=True)}
    out: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    short = False
    for i, v in enumerate(grid.variants):
        for e in grid.eps:
            parts = [done[(i, None, "clean")], done[(i, e, "standard")], done[(i, e, "adaptive")]]
            cut = next((r["budget_ran_out"] for r in parts if "budget_ran_out" in r), None)
            if cut is not None:
                # The settings measured before are kept; this one is listed as skipped.
                short = True
                skipped.append({"defence": _cell_label(grid, v, e), "reason": cut})
                continue
            out.append(_cell_record(ctx.model, grid, v, e, parts, bases[e]))
    meta: dict[str, Any] = {"cells": out, "skipped": skipped}
    if short:
        meta["budget_ran_out"] = True  # not stored: a rerun with more budget completes it
    return meta, {}


def _cell_label(grid: _Grid, v: _Variant, eps: float) -> str:
    """The defence's name, with its strength and ε when the matrix has several."""
    several = len({x.name for x in grid.variants}) < len(grid.variants)
    extra = [str(v.strength)] if several and v.strength else []
    extra += [f"ε={eps:g}"] if len(grid.eps) > 1 else []
    return v.name + (f" ({', '.join(extra)})" if extra else "")


def _cell_record(
    model: Classifier,
    grid: _Grid,
    v: _Variant,
    eps: float,
    parts: list[dict[str, Any]],
    base: Mapping[str, Any],
) -> dict[str, Any]:
    clean, standard, adaptive = (p["correct"] for p in parts)
    ev = combine_cells(
        model,
        v.prep,
        attack=_pgd(eps, grid.steps, grid.seed),
        clean=clean,
        standard=standard,
        adaptive=adaptive,
        undefended_accuracy=(base["clean_accuracy"], base["robust_accuracy"]),
        eot_samples=grid.eot(v),
        seed=grid.seed,
        seconds=sum(float(p["seconds"]) for p in parts),
    )
    s = ev.summary()
    n = len(clean)
    worst = standard & adaptive
    return {
        "name": v.name,
        "params": v.params,
        "defence": s["defence"],
        "differentiable": bool(v.prep.differentiable),
        "randomised": bool(v.prep.randomised),
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
        "strength": v.strength,
        "resolved": v.prep.resolved(),
        "eps": eps,
        "configured": v.configured,
        "undefended_robust_accuracy": float(base["robust_accuracy"]),
        # 95% Wilson intervals with the counts behind them (docs/audit.md, Uncertainty).
        "intervals": {
            "clean": proportion(int(clean.sum()), n).to_dict(),
            "standard": proportion(int(standard.sum()), n).to_dict(),
            "adaptive": proportion(int(adaptive.sum()), n).to_dict(),
            "worst_case": proportion(int(worst.sum()), n).to_dict(),
        },
    }


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


def _matrix_summary(matrix: list[dict[str, Any]], rows: list[dict[str, Any]]) -> str:
    """One sentence on the matrix beyond the trade-off table (none when it is the table):
    at each ε, the setting that keeps the most against the stronger attack."""
    if len(matrix) <= len(rows):
        return ""
    settings = {(c["name"], c["strength"], str(c["params"])) for c in matrix}
    eps_all = sorted({c["eps"] for c in matrix})
    best = []
    for e in eps_all:
        top = max(
            (c for c in matrix if c["eps"] == e), key=lambda c: c["worst_case_robust_accuracy"]
        )
        what = top["name"].replace("_", " ") + (f" ({top['strength']})" if top["strength"] else "")
        best.append(f"at ε = {e:g}, {what} with {_pct(top['worst_case_robust_accuracy'])}")
    return (
        f" The matrix evaluates {len(settings)} defence settings at {len(eps_all)} "
        f"ε ({len(matrix)} combinations, each under the standard and the adaptive attack); "
        "the highest worst-case accuracy " + "; ".join(best) + "."
    )


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
