"""Ownership: can the owner prove the model is theirs, and what does removing the proof cost?

The section embeds each configured watermark scheme into a copy of the audited model (by
fine-tuning, as the scheme does), then reports

- the clean accuracy the watermark costs, on the evaluated test inputs;
- the verification of the marked copy: items matched, the probability that a model not
  derived from the owner's matches as well by chance, and the decision;
- the same check on models trained independently of the key (``independent_models`` of
  them, each from its own seed; a false claim there would make the proof worthless), with
  the false-claim rate and its 95 % interval, and on the audited model before embedding;
- a small robustness table: the cheapest removal attacks (magnitude pruning, fine-tuning
  the last layer, fine-tuning all layers) run by an attacker who holds the marked model
  and a little in-distribution data, with the watermark's verdict and the accuracy the
  attacker keeps. No watermark survives every attack at no cost; the table says what
  removal costs.

Verification goes through the access the audit's threat model gives the owner to a
suspect model (``config.access``): trigger sets need only labels, the white-box
signature needs the weights.

With the ``key`` setting (the owner's key file, written by ``advml watermark embed
--out-key``) the section instead answers the owner's question about a deployed model,
e.g. one behind an HTTP API: *is this my watermarked model?* It queries the audited model
on the key's trigger inputs and reports the matches, the chance probability and the
verdict; nothing is embedded or trained.

The independent models are seeded tasks on the config's executor (``local``, ``process``
or ``ray``; docs/scale.md): model ``i`` is trained from seed ``seed + 1000 + i`` on its own
seeded subset of the training split, each finished one is stored in the step cache as it
arrives, and the figures do not depend on the executor.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, ClassVar

import numpy as np
import torch

from advml import registry
from advml.audit.sections.base import (
    AuditContext,
    AuditSection,
    SectionOutput,
    Verdict,
    section_executor,
)
from advml.metrics.intervals import proportion
from advml.models.access import restrict_access
from advml.models.base import Classifier
from advml.models.torch import TorchClassifier
from advml.models.training import train
from advml.report.model import SCHEMA_VERSION
from advml.runtime.cache import fingerprint as hash_data
from advml.runtime.executors import Executor, TaskCache, cached_map
from advml.validation import check_number
from advml.watermark import (
    DEFAULT_ALPHA,
    RemovalAttack,
    Verification,
    WatermarkKey,
    WatermarkScheme,
    load_key,
    verify,
)
from advml.watermark.removal import describe
from advml.watermark.verify import binomial_tail

__all__ = ["SECTION", "WatermarkSection"]

_KINDS = {"uchida": "white-box"}
_UNSUPPORTED = {
    "frontier": "frontier stitching needs an empirical null from several independently "
    "trained models (its binomial null is not exact), more than an audit trains; measure it "
    "with 'advml watermark embed --scheme frontier --calibrate N'"
}


class WatermarkSection(AuditSection):
    """Embed watermarks into a copy of the model, verify them, and try to remove them.

    Settings
    --------
    schemes : list of str
        Registered watermark schemes (``advml watermark embed --list``); default Uchida's
        white-box signature and Adi's abstract-image trigger set.
    scheme_settings : dict
        Per scheme, settings passed to it (e.g. ``{"adi": {"n_triggers": 50}}``).
    embed_samples : int or None
        Training inputs the owner fine-tunes on while embedding (None: all).
    attacks : list of str
        Removal attacks (family ``watermark_removal``); default prune, ftll, ftal.
    attack_settings : dict
        Per attack, its settings (default: prune 50% of every layer, 2 epochs of tuning).
    attacker_samples : int
        Training inputs the attacker holds, disjoint from the owner's embedding inputs.
    independent_samples, independent_epochs : int or None
        Data and epochs of each independently trained model (None: all, the recipe's).
    independent_models : int
        Models trained independently of the keys (default 1), each key checked on each:
        the false-claim rate is the share of them claimed as the owner's. Each is one
        task on the config's executor (``advml audit --executor ray``).
    cheap_cost : float
        A removal that costs the attacker at most this much accuracy (fraction) is cheap.
    alpha : float
        Significance level of an ownership claim.
    examples : int
        Trigger inputs shown in the report.
    key : str or None
        The owner's key file (``advml watermark embed --out-key``): verify the audited
        model against it (a trigger-set key needs only labels, so any black-box model or
        remote API can be checked) instead of embedding watermarks. None: embed.
    """

    name = "watermark"
    title = "Ownership: watermarks and their removal"
    threat = "ownership"
    order = 80
    default_settings: ClassVar[Mapping[str, Any]] = {
        "schemes": ["uchida", "adi"],
        "scheme_settings": {
            "uchida": {"epochs": 2},
            "adi": {"n_triggers": 50, "epochs": 3, "trigger_batch": 32},
        },
        "embed_samples": 1000,
        "attacks": ["prune", "ftll", "ftal"],
        "attack_settings": {
            "prune": {"rate": 0.5},
            "ftll": {"epochs": 2},
            "ftal": {"epochs": 2},
        },
        "attacker_samples": 500,
        "independent_samples": 1500,
        "independent_epochs": 3,
        "independent_models": 1,
        "cheap_cost": 0.02,
        "alpha": DEFAULT_ALPHA,
        "examples": 8,
        "key": None,
    }
    quick_settings: ClassVar[Mapping[str, Any]] = {
        "scheme_settings": {
            "uchida": {"epochs": 3},
            "adi": {"n_triggers": 50, "epochs": 8, "trigger_batch": 32},
        },
        "embed_samples": None,
        "attack_settings": {
            "prune": {"rate": 0.5},
            "ftll": {"epochs": 5},
            "ftal": {"epochs": 5},
        },
        "independent_samples": None,
        "independent_epochs": 20,
    }

    def skip_reason(self, ctx: AuditContext, settings: Mapping[str, Any]) -> str | None:
        if settings.get("key") is not None:
            return None  # verification of the audited model against the owner's key
        owner = _owner_model(ctx)
        if owner is None:
            return (
                "embedding a watermark fine-tunes the model's weights, and this model is not "
                f"a PyTorch model advml can train ({type(ctx.model).__name__}); to check "
                "whether it is your watermarked model, give your key file (advml watermark "
                "embed --out-key writes it): section_settings: {watermark: {key: "
                "owner.key.npz}} in the audit config"
            )
        from advml.models.formats.torch_files import without_layer_hooks

        opaque = without_layer_hooks(owner.module)
        if opaque:
            return (
                "the white-box watermark is embedded in a convolution or dense layer's "
                f"weights, and {opaque}; load it as ONNX or as a state dict with "
                "--model-factory instead"
            )
        return None

    def run(self, ctx: AuditContext, settings: Mapping[str, Any]) -> SectionOutput:
        _check(settings)
        if settings.get("key") is not None:
            return _check_suspect(ctx, settings)
        owner = _owner_model(ctx)
        assert owner is not None  # skip_reason said so
        executor = _executor(ctx, owner)
        try:
            return self._embed_all(ctx, settings, owner, executor)
        finally:
            executor.close()

    def _embed_all(
        self,
        ctx: AuditContext,
        settings: Mapping[str, Any],
        owner: TorchClassifier,
        executor: Executor,
    ) -> SectionOutput:
        access = str(ctx.config.access)
        alpha = float(settings["alpha"])
        seed = int(ctx.config.seed)
        x_owner, y_owner, x_att, y_att = _splits(ctx, settings, seed)
        x_eval, y_eval = ctx.x, ctx.y
        base_accuracy = _accuracy(owner, x_eval, y_eval)
        trainer = _IndependentTrainer.of(ctx, owner, settings, executor)
        trained: list[list[TorchClassifier]] = []

        def independent() -> list[TorchClassifier]:
            """The independent models, trained (or read back) the first time a false-claim
            step needs them: not at all when every one is stored."""
            if not trained:
                trained.append(_independent_models(ctx, owner, trainer, executor))
            return trained[0]

        schemes: list[dict[str, Any]] = []
        skipped: list[dict[str, str]] = []
        artifacts: dict[str, np.ndarray] = {}
        for name in ctx.progress(list(settings["schemes"]), desc="watermark"):
            if name in _UNSUPPORTED:
                skipped.append({"scheme": name, "reason": _UNSUPPORTED[name]})
                continue
            kind = _KINDS.get(name, "trigger-set")
            if kind == "white-box" and access != "white-box":
                skipped.append(
                    {
                        "scheme": name,
                        "reason": f"white-box verification reads the suspect's weights; with "
                        f"access={access!r} the owner can only query it",
                    }
                )
                continue
            params = dict(settings["scheme_settings"].get(name, {}))
            scheme = registry.create("watermark", name, **params)
            step_settings = {
                "scheme": name,
                "params": scheme.get_params(),
                "embed_samples": settings["embed_samples"],
                "access": access,
                "alpha": alpha,
                "examples": settings["examples"],
            }
            meta, arrays = ctx.step(
                f"embed-{name}",
                step_settings,
                partial(
                    _embed_step,
                    scheme,
                    owner,
                    x_owner,
                    y_owner,
                    x_eval,
                    y_eval,
                    access=access,
                    alpha=alpha,
                    secret=f"advml-audit-{seed}-{scheme.name}",
                    examples=int(settings["examples"]),
                ),
            )
            claims, claim_arrays = ctx.step(
                f"false-claims-{name}",
                {**step_settings, "independent": trainer.settings(), "models": trainer.n},
                partial(
                    _false_claim_step,
                    _key_from(meta, arrays),
                    independent,
                    trainer,
                    x_eval,
                    y_eval,
                    access=access,
                    alpha=alpha,
                    examples=int(settings["examples"]),
                ),
            )
            removal = []
            for attack_name in settings["attacks"]:
                attack_params = dict(settings["attack_settings"].get(attack_name, {}))
                if "seed" in registry.schema("watermark_removal", attack_name):
                    attack_params.setdefault("seed", seed)
                attack = registry.create("watermark_removal", attack_name, **attack_params)
                row, _ = ctx.step(
                    f"removal-{name}-{attack_name}",
                    {**step_settings, "attack": attack_name, "attack_params": attack.get_params()},
                    partial(
                        _removal_step,
                        attack,
                        partial(_restore, owner, arrays),
                        _key_from(meta, arrays),
                        x_att,
                        y_att,
                        x_eval,
                        y_eval,
                        access=access,
                        alpha=alpha,
                        reference_accuracy=meta["clean_accuracy"],
                    ),
                )
                removal.append(row)
            entry = {**meta["summary"], **claims, "kind": kind, "removal": removal}
            entry["accuracy_cost"] = base_accuracy - entry["clean_accuracy"]
            schemes.append(entry)
            if kind == "trigger-set" and "examples_x" not in artifacts:
                artifacts.update(
                    {
                        "examples_x": arrays["examples_x"],
                        "examples_label": arrays["examples_label"],
                        "examples_marked": arrays["examples_marked"],
                        "examples_independent": claim_arrays["examples_independent"],
                        "examples_scheme": np.asarray([name]),
                    }
                )
        data = {
            "clean_accuracy": base_accuracy,
            "alpha": alpha,
            "access": access,
            "owner_samples": int(x_owner.shape[0]),
            "attacker_samples": int(x_att.shape[0]),
            "schemes": schemes,
            "skipped": skipped,
        }
        ind = next((s["independent"] for s in schemes if s.get("independent")), None)
        if ind is not None:
            data["independent_model"] = {k: ind[k] for k in ("accuracy", "description")}
            many = schemes[0]["independent_models"]
            data["independent_models"] = {
                "n": many["n"],
                "description": trainer.description(),
                "accuracies": [c["accuracy"] for c in many["checks"]],
            }
            data["executor"] = executor.describe()
        verdict = _verdict(schemes, skipped, float(settings["cheap_cost"]))
        return SectionOutput(data, verdict, artifacts)


SECTION = WatermarkSection


# -- set-up ---------------------------------------------------------------------------
def _owner_model(ctx: AuditContext) -> TorchClassifier | None:
    """The owner's white-box model: the audited one, or the reference file behind an API."""
    if isinstance(ctx.model, TorchClassifier):
        return ctx.model
    file = ctx.model_info.get("file")
    if ctx.model_info.get("source") in ("reference", "file") and file:
        from advml.models.io import load_model

        try:
            model = load_model(str(file))  # advml's safe loader: no pickle
        except (ValueError, OSError):
            return None
        return model if isinstance(model, TorchClassifier) else None
    return None


def _check(settings: Mapping[str, Any]) -> None:
    for name in ("schemes", "attacks"):
        value = settings[name]
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise ValueError(f"watermark setting {name!r} must be a list of names, got {value!r}")
    if not settings["schemes"]:
        raise ValueError("watermark setting 'schemes' must name at least one scheme")
    known = registry.available("watermark")
    unknown = [s for s in settings["schemes"] if s not in known]
    if unknown:
        raise ValueError(f"watermark setting 'schemes' has unknown names {unknown}; known: {known}")
    for name in ("scheme_settings", "attack_settings"):
        if not isinstance(settings[name], Mapping):
            raise ValueError(f"watermark setting {name!r} must map names to settings")
    for name in ("embed_samples", "independent_samples", "independent_epochs"):
        if settings[name] is not None:
            check_number(name, settings[name], low=1, integer=True)
    check_number("attacker_samples", settings["attacker_samples"], low=1, integer=True)
    check_number("independent_models", settings["independent_models"], low=1, integer=True)
    check_number("cheap_cost", settings["cheap_cost"], low=0, high=1)
    check_number(
        "alpha", settings["alpha"], low=0, high=1, low_inclusive=False, high_inclusive=False
    )
    check_number("examples", settings["examples"], low=0, integer=True)
    key = settings.get("key")
    if key is not None and not isinstance(key, str | os.PathLike):
        raise ValueError(
            f"watermark setting 'key' must be the path of the owner's key file "
            f"(advml watermark embed --out-key), got {key!r}"
        )


# -- the owner's check of a deployed model ---------------------------------------------
def _read_key(path: str | os.PathLike[str]) -> WatermarkKey:
    """The key file of the ``key`` setting, with errors that name the setting."""
    try:
        return load_key(path)
    except (FileNotFoundError, ValueError) as err:
        raise ValueError(
            f"watermark setting 'key': {err}; give the key file 'advml watermark embed "
            f"--out-key' wrote"
        ) from None


def _check_suspect(ctx: AuditContext, settings: Mapping[str, Any]) -> SectionOutput:
    """Query the audited model on the owner's key and say whether it is the owner's.

    The chance probability is the binomial tail of the matches under the key's null
    rate (the share of trigger labels a model not derived from the owner's gives by
    chance; :func:`advml.watermark.verify`, after Adi et al., USENIX Security 2018).
    """
    key = _read_key(settings["key"])
    alpha = float(settings["alpha"])
    step_settings = {
        "key": hash_data([key.scheme, key.secret, dict(key.arrays)]),  # never the secret
        "alpha": alpha,
        "access": str(ctx.config.access),
    }

    def compute() -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        v = verify(ctx.model, key, alpha=alpha)  # the model as the threat model shows it
        row = _check_result(v)
        row.update(null_rate=float(v.null_rate), threshold=_threshold(v.n, v.null_rate, alpha))
        return row, {}

    row, _ = ctx.step("verify-key", step_settings, compute)
    suspect = {
        "key_file": os.path.basename(os.fspath(settings["key"])),
        "scheme": key.scheme,
        "kind": _KINDS.get(key.scheme, "trigger-set"),
        **row,
    }
    data = {
        "clean_accuracy": ctx.clean_accuracy,
        "alpha": alpha,
        "access": str(ctx.config.access),
        "owner_samples": 0,
        "attacker_samples": 0,
        "schemes": [],
        "skipped": [],
        "suspect": suspect,
    }
    return SectionOutput(data, _suspect_verdict(suspect, alpha), {})


def _suspect_verdict(s: Mapping[str, Any], alpha: float) -> Verdict:
    numbers = {
        "verified": bool(s["verified"]),
        "matches": int(s["matches"]),
        "n": int(s["n"]),
        "chance_probability": float(s["chance_probability"]),
    }
    what = f"the owner's {_label({'name': s['scheme']})} key ({s['key_file']})"
    if s.get("reason"):
        return Verdict(
            "unknown",
            "not checked",
            f"This model could not be checked against {what}: {s['reason']}.",
            numbers,
        )
    matched = (
        f"It matched {s['matches']} of {s['n']} key items; a model not derived from the "
        f"owner's matches this well with probability {s['chance_probability']:.1e} "
        f"(null rate {s['null_rate']:.3g} per item, {s['queries']} queries)"
    )
    if s["verified"]:
        return Verdict(
            "pass",
            "owner's watermark found",
            f"This model carries {what}: it is the owner's watermarked model or derived "
            f"from it. {matched}, below alpha = {alpha:g}.",
            numbers,
        )
    return Verdict(
        "fail",
        "owner's watermark not found",
        f"This model does not carry {what}. {matched}: not enough to claim it (at least "
        f"{s['threshold']} matches are needed). It is another model, or one from which "
        "the watermark was removed.",
        numbers,
    )


def _splits(
    ctx: AuditContext, settings: Mapping[str, Any], seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The owner's fine-tuning inputs and the attacker's, disjoint parts of the training split.

    The attacker takes the last ``attacker_samples`` of a seeded permutation, the owner
    up to ``embed_samples`` of the rest.
    """
    x, y = ctx.dataset.x_train, ctx.dataset.y_train
    order = np.random.default_rng(seed).permutation(x.shape[0])
    n_att = min(int(settings["attacker_samples"]), x.shape[0] // 2)
    att, rest = order[-n_att:], order[:-n_att]
    if settings["embed_samples"] is not None:
        rest = rest[: int(settings["embed_samples"])]
    return x[rest], y[rest], x[att], y[att]


def _executor(ctx: AuditContext, owner: TorchClassifier) -> Executor:
    """The config's executor for the independent models (docs/scale.md); on Ray, a model
    on a GPU asks for a quarter of one per training task."""
    return section_executor(ctx, gpus_per_task=0.25, device=owner.device)


@dataclass(frozen=True)
class _IndependentTrainer:
    """The function of every training task: model ``i`` (the task) of the owner's
    architecture, trained without any key. It travels once per run, with what it
    captures (the audit's context: the data and the owner's model)."""

    ctx: AuditContext
    owner: TorchClassifier
    samples: int | None
    epochs: int | None
    n: int
    seed: int

    @classmethod
    def of(
        cls,
        ctx: AuditContext,
        owner: TorchClassifier,
        settings: Mapping[str, Any],
        executor: Executor,
    ) -> _IndependentTrainer:
        # Workers print no progress bars (theirs would interleave with the driver's).
        quiet = executor.name != "local" or not ctx.show_progress
        samples, epochs = settings["independent_samples"], settings["independent_epochs"]
        return cls(
            replace(ctx, show_progress=not quiet, cache=None, step_log=None),
            owner,
            None if samples is None else int(samples),
            None if epochs is None else int(epochs),
            int(settings["independent_models"]),
            int(ctx.config.seed),
        )

    def settings(self) -> dict[str, Any]:
        """Everything a model depends on besides the task index, the model, the data and
        the audit seed (part of every cache key)."""
        return {
            "samples": self.samples,
            "epochs": self.epochs,
            "recipe": "reference" if self.ctx.retrainable else "loop",
        }

    def model_seed(self, i: int) -> int:
        return self.seed + 1000 + i

    def __call__(self, i: int) -> dict[str, np.ndarray]:
        """The weights of independent model ``i``: its own seed, its own seeded subset of
        ``samples`` training inputs (model 0 is the one audits trained before there were
        several)."""
        x, y = self.ctx.dataset.x_train, self.ctx.dataset.y_train
        if self.samples is not None:
            idx = np.random.default_rng(self.seed + 1 + i).permutation(x.shape[0])
            x, y = x[idx[: self.samples]], y[idx[: self.samples]]
        own_seed = self.model_seed(i)
        desc = f"independent model {i + 1}/{self.n} (no watermark)"
        if self.ctx.retrainable:
            model = self.ctx.train_like(x, y, seed=own_seed, epochs=self.epochs, desc=desc)
        else:
            model = self.owner.reinitialised(own_seed)
            train(
                model,
                x,
                y,
                epochs=self.epochs or 10,
                seed=own_seed,
                show_progress=self.ctx.show_progress,
                desc=desc,
            )
        return _weights(model)

    def description(self) -> str:
        n = self.ctx.dataset.x_train.shape[0]
        used = n if self.samples is None else min(self.samples, n)
        how = "the reference recipe" if self.ctx.retrainable else "advml's training loop"
        most = "" if self.epochs is None else f" ({self.epochs} epochs at most)"
        first = self.model_seed(0)
        if self.n == 1:
            return (
                f"same architecture, trained on {used} training inputs with {how}{most} from "
                f"seed {first}, without the key"
            )
        subset = "its own random" if self.samples is not None and used < n else "the same"
        return (
            f"{self.n} models of the same architecture, each trained on {subset} {used} "
            f"training inputs with {how}{most} from its own seed ({first} to "
            f"{first + self.n - 1}), without the keys"
        )


def _independent_models(
    ctx: AuditContext, owner: TorchClassifier, trainer: _IndependentTrainer, executor: Executor
) -> list[TorchClassifier]:
    """The ``trainer.n`` independent models, each a task on ``executor`` stored in the
    step cache as it finishes (a rerun, or a run with more models, trains only the models
    not stored yet)."""
    cache = None
    if ctx.cache is not None:
        key = hash_data(
            [ctx.model_fp, ctx.data_fp, ctx.config.seed, trainer.settings(), SCHEMA_VERSION]
        )
        cache = TaskCache(ctx.cache, f"{ctx.section}-independent-{key}")
    weights = cached_map(
        executor,
        trainer,
        list(range(trainer.n)),
        cache=cache,
        encode=(lambda w: ({}, w)) if cache is not None else None,
        decode=(lambda meta, arrays: arrays) if cache is not None else None,
        desc="independent models",
        show_progress=ctx.show_progress,
    )
    return [_restore(owner, w) for w in weights]


# -- steps ----------------------------------------------------------------------------
def _weights(model: TorchClassifier) -> dict[str, np.ndarray]:
    return {f"w:{k}": v.detach().cpu().numpy() for k, v in model.module.state_dict().items()}


def _restore(base: TorchClassifier, arrays: Mapping[str, np.ndarray]) -> TorchClassifier:
    """A copy of ``base`` with the weights stored by :func:`_weights`."""
    model = base.clone()
    # A copy: arrays from Ray's object store are read-only.
    state = {k[2:]: torch.tensor(v) for k, v in arrays.items() if k.startswith("w:")}
    model.module.load_state_dict(state)
    model.module.eval()
    return model


def _key_to(key: WatermarkKey) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    meta = {"scheme": key.scheme, "secret": key.secret, "settings": dict(key.settings)}
    meta["meta"] = dict(key.meta)
    return meta, {f"k:{k}": np.asarray(v) for k, v in key.arrays.items()}


def _key_from(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> WatermarkKey:
    k = meta["key"]
    return WatermarkKey(
        scheme=k["scheme"],
        secret=k["secret"],
        settings=k["settings"],
        arrays={n[2:]: v for n, v in arrays.items() if n.startswith("k:")},
        meta=k["meta"],
    )


def _suspect(model: Classifier, access: str) -> Classifier:
    """``model`` as the owner can query it under the threat model's ``access``."""
    return restrict_access(model, access)


def _accuracy(model: Classifier, x: np.ndarray, y: np.ndarray) -> float:
    return float((np.asarray(model.predict(x)) == y).mean())


def _check_result(v: Verification) -> dict[str, Any]:
    out: dict[str, Any] = {
        "verified": bool(v.verified),
        "matches": int(v.matches),
        "n": int(v.n),
        "match_rate": float(v.match_rate),
        "chance_probability": float(v.chance_probability),
        "queries": int(v.queries),
    }
    if v.reason is not None:
        out["reason"] = v.reason  # the model could not be checked against the key
    return out


def _threshold(n: int, p0: float, alpha: float) -> int:
    """The fewest matches of ``n`` whose binomial chance probability is below ``alpha``."""
    for m in range(n + 1):
        if binomial_tail(m, n, p0) < alpha:
            return m
    return n + 1


def _embed_step(
    scheme: WatermarkScheme,
    owner: TorchClassifier,
    x_owner: np.ndarray,
    y_owner: np.ndarray,
    x_eval: np.ndarray,
    y_eval: np.ndarray,
    *,
    access: str,
    alpha: float,
    secret: str,
    examples: int,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    marked = scheme.embed(owner, x_owner, y_owner, key=secret)
    key = marked.key
    own = verify(_suspect(marked.model, access), key, alpha=alpha)
    unmarked = verify(_suspect(owner, access), key, alpha=alpha)
    p0 = float(own.null_rate)
    summary = {
        "name": scheme.name,
        "params": dict(scheme.get_params()),
        "key_size": key.size,
        "null_rate": p0,
        "threshold": _threshold(key.size, p0, alpha),
        "embed_seconds": round(marked.seconds, 3),
        "clean_accuracy": _accuracy(marked.model, x_eval, y_eval),
        "verification": _check_result(own),
        "unmarked": _check_result(unmarked),
    }
    key_meta, key_arrays = _key_to(key)
    arrays = {**_weights(marked.model), **key_arrays}
    if "x" in key.arrays:
        k = min(examples, key.size)
        arrays.update(
            examples_x=np.asarray(key.arrays["x"][:k], dtype=np.float32),
            examples_label=np.asarray(key.arrays["labels"][:k]),
            examples_marked=np.asarray(own.extracted[:k]),
        )
    return {
        "summary": summary,
        "clean_accuracy": summary["clean_accuracy"],
        "key": key_meta,
    }, arrays


def _false_claim_step(
    key: WatermarkKey,
    independent: Callable[[], list[TorchClassifier]],
    trainer: _IndependentTrainer,
    x_eval: np.ndarray,
    y_eval: np.ndarray,
    *,
    access: str,
    alpha: float,
    examples: int,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The key checked on every independent model: each one claimed is a false claim.

    The false-claim rate is the share claimed, with its 95 % Wilson interval: with 0
    claims of ``n`` its upper end (3.7/n for large n) bounds how often the test would
    claim a model that is not the owner's, as far as ``n`` models can tell.
    """
    checks = []
    first = None
    for i, model in enumerate(independent()):
        v = verify(_suspect(model, access), key, alpha=alpha)
        first = first if first is not None else v
        checks.append(
            {
                **_check_result(v),
                "seed": trainer.model_seed(i),
                "accuracy": _accuracy(model, x_eval, y_eval),
            }
        )
    assert first is not None  # at least one model (checked with the settings)
    claimed = sum(1 for c in checks if c["verified"])
    summary = {
        # The first model, as audits reported before there were several.
        "independent": {
            **{k: v for k, v in checks[0].items() if k != "seed"},
            "description": trainer.description() if trainer.n == 1 else _first(trainer),
        },
        "independent_models": {
            "n": len(checks),
            "claimed": claimed,
            "false_claim_rate": claimed / len(checks),
            "interval": proportion(claimed, len(checks)).to_dict(),
            "max_match_rate": max(c["match_rate"] for c in checks),
            "min_chance_probability": min(c["chance_probability"] for c in checks),
            "checks": checks,
        },
    }
    arrays: dict[str, np.ndarray] = {}
    if "x" in key.arrays:
        arrays["examples_independent"] = np.asarray(first.extracted[: min(examples, key.size)])
    return summary, arrays


def _first(trainer: _IndependentTrainer) -> str:
    return f"the first of the {trainer.n} independent models (seed {trainer.model_seed(0)})"


def _removal_step(
    attack: RemovalAttack,
    marked: Callable[[], TorchClassifier],
    key: WatermarkKey,
    x_att: np.ndarray,
    y_att: np.ndarray,
    x_eval: np.ndarray,
    y_eval: np.ndarray,
    *,
    access: str,
    alpha: float,
    reference_accuracy: float,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    result = attack.remove(marked(), x_att, y_att)
    row: dict[str, Any] = {
        "attack": describe(attack),
        "label": _short(attack.name, attack.get_params()),
        "name": attack.name,
        "params": dict(attack.get_params()),
        "seconds": round(result.seconds, 3),
    }
    v = verify(_suspect(result.model, access), key, alpha=alpha)
    if v.reason is not None:
        # The key cannot be checked against the attacker's model: not detected when it
        # was read (another architecture), not applicable when its weights are hidden.
        row.update(
            detected=False if v.applicable else None,
            matches=None,
            match_rate=None,
            chance_probability=None,
            note=v.reason,
        )
    else:
        row.update(
            detected=bool(v.verified),
            matches=int(v.matches),
            match_rate=float(v.match_rate),
            chance_probability=float(v.chance_probability),
            note="",
        )
    acc = _accuracy(result.model, x_eval, y_eval)
    row.update(clean_accuracy=acc, accuracy_drop=reference_accuracy - acc)
    return row, {}


# -- verdict --------------------------------------------------------------------------
def _verdict(
    schemes: list[dict[str, Any]], skipped: list[dict[str, str]], cheap_cost: float
) -> Verdict:
    if not schemes:
        reasons = "; ".join(f"{s['scheme']}: {s['reason']}" for s in skipped)
        return Verdict(
            "unknown",
            "not assessed",
            f"No watermark could be embedded and verified here ({reasons}).",
            {"verified_schemes": 0},
        )
    verified = [s for s in schemes if s["verification"]["verified"]]
    false_claims = [s for s in schemes if _claimed(s) or s["unmarked"]["verified"]]
    cheap = {
        s["name"]: [
            r for r in s["removal"] if r["detected"] is False and r["accuracy_drop"] <= cheap_cost
        ]
        for s in verified
    }
    robust = [s for s in verified if not cheap[s["name"]]]
    numbers = {
        "verified_schemes": len(verified),
        "false_claims": len(false_claims),
        "min_chance_probability": min(s["verification"]["chance_probability"] for s in schemes),
        "max_accuracy_cost": max(s["accuracy_cost"] for s in schemes),
        "robust_schemes": len(robust),
        "independent_models": _many(schemes[0])["n"],
        "independent_claims": sum(_many(s)["claimed"] for s in schemes),
    }
    names = ", ".join(_label(s) for s in schemes)
    cost = max(s["accuracy_cost"] for s in schemes)
    intro = (
        f"Watermarks ({names}) were embedded into copies of this model at a cost of at most "
        f"{100 * max(cost, 0.0):.1f} points of accuracy. "
    )
    if false_claims:
        first = false_claims[0]
        many = _many(first)
        where = (
            f"{_counted(many)} independently trained models"
            if many["claimed"] and many["n"] > 1
            else "a model that does not carry it"
        )
        text = intro + (
            f"The {_label(first)} watermark was also found in {where}, so a match proves "
            "nothing: ownership cannot be proven this way."
        )
        return Verdict("fail", "ownership not provable", text, numbers)
    if not verified:
        text = intro + (
            "None of them could be read back from the marked copy with a convincing chance "
            "probability: ownership cannot be proven with these settings."
        )
        return Verdict("fail", "ownership not provable", text, numbers)
    best = min(verified, key=lambda s: s["verification"]["chance_probability"])
    v = best["verification"]
    text = intro + (
        f"Ownership can be proven: the {_label(best)} watermark matched {v['matches']} of "
        f"{v['n']} (chance probability {v['chance_probability']:.1e}), and "
        + _none_claimed(best)
        + ". "
    )
    parts = []
    for s in verified:
        removed = [r for r in s["removal"] if r["detected"] is False]
        survived = [r for r in s["removal"] if r["detected"]]
        if removed:
            cheapest = min(removed, key=lambda r: r["accuracy_drop"])
            parts.append(
                f"the {_label(s)} watermark did not survive {_attack_words(cheapest)} "
                f"(which cost the attacker {100 * max(cheapest['accuracy_drop'], 0.0):.1f} "
                "points)"
            )
        elif survived:
            parts.append(
                f"the {_label(s)} watermark survived "
                + ", ".join(_attack_words(r) for r in survived)
            )
    if parts:
        text += "Against removal, " + "; ".join(parts) + "."
    if robust:
        return Verdict("pass", "ownership provable", text, numbers)
    text += (
        " An attacker who holds the model can remove every watermark tested here while "
        f"keeping its accuracy (losing at most {100 * cheap_cost:.0f} points)."
    )
    return Verdict("warn", "watermark removable", text, numbers)


def _many(scheme: Mapping[str, Any]) -> Mapping[str, Any]:
    """The scheme's checks on the independent models (one, in reports that predate
    ``independent_models``)."""
    many = scheme.get("independent_models")
    if many is not None:
        return many
    one = int(bool(scheme["independent"]["verified"]))
    return {"n": 1, "claimed": one, "interval": proportion(one, 1).to_dict()}


def _claimed(scheme: Mapping[str, Any]) -> bool:
    return bool(scheme["independent"]["verified"]) or _many(scheme)["claimed"] > 0


def _counted(many: Mapping[str, Any]) -> str:
    """'0 of 8 (95% interval 0.0% to 32.4%)': claims among the independent models."""
    iv = many["interval"]
    return (
        f"{many['claimed']} of {many['n']} (95% interval {100 * iv['low']:.1f}% to "
        f"{100 * iv['high']:.1f}%)"
    )


def _none_claimed(scheme: Mapping[str, Any]) -> str:
    many = _many(scheme)
    if many["n"] == 1:
        return "an independently trained model was not claimed"
    return (
        f"none of {many['n']} independently trained models was claimed (false claims: "
        f"{_counted(many)})"
    )


def _label(scheme: Mapping[str, Any]) -> str:
    return {
        "uchida": "white-box (Uchida)",
        "adi": "trigger-set (Adi)",
        "content": "content trigger-set",
        "noise": "noise trigger-set",
        "unrelated": "unrelated-class trigger-set",
    }.get(str(scheme["name"]), str(scheme["name"]))


def _short(name: str, params: Mapping[str, Any]) -> str:
    """A short label of a removal attack for tables and charts, e.g. "FTAL, 2 epochs"."""
    if name in ("prune", "fine_prune"):
        return f"{name.replace('_', '-')} {100 * float(params.get('rate', 0)):.0f}%"
    if name in ("ftll", "ftal", "rtll", "rtal") and "epochs" in params:
        return f"{name.upper()}, {params['epochs']} epochs"
    return name


def _attack_words(row: Mapping[str, Any]) -> str:
    name, p = row["name"], row["params"]
    if name == "prune":
        return f"pruning {100 * float(p.get('rate', 0)):.0f}% of the weights"
    if name == "fine_prune":
        return f"fine-pruning {100 * float(p.get('rate', 0)):.0f}% of the units"
    words = {
        "ftll": "fine-tuning the last layer",
        "ftal": "fine-tuning all layers",
        "rtll": "re-training the last layer",
        "rtal": "re-training all layers",
        "preprocess": "input preprocessing",
        "distill": "distillation into a fresh model",
        "copycat": "model extraction",
    }
    text = words.get(str(name), str(name))
    if "epochs" in p and name in ("ftll", "ftal", "rtll", "rtal"):
        text += f" ({p['epochs']} epochs)"
    return text
