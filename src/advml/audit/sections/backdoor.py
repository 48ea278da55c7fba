"""Backdoor: poison a share of the training data, retrain, measure, and try the defences.

The adversary can poison ``fraction`` of the training set (the threat model's poisoning
capability: ``section_settings: {backdoor: {fraction: 0.1}}``; 0 says the adversary
cannot, and the section is skipped). The section stamps a BadNets checkerboard patch on
that share, relabels it to ``target`` (all-to-one), trains a copy of the audited model
with its own recipe (``ctx.train_like``) - or, for a network the user brought (a
factory, TorchScript, ``torch.export``, a converted ONNX graph), the same architecture
re-initialised and trained with advml's loop - and measures clean accuracy and attack success
on the evaluated test inputs. Then, as the model owner would:

- the backdoor-neuron analysis (the auditor knows the trigger): activation profiles of
  the pruned layer on clean and triggered inputs;
- pruning and fine-pruning (Liu et al. 2018) with the owner's clean validation data
  (half of the evaluated inputs; the other half is only used to measure);
- activation clustering (Chen et al. 2019) on the poisoned training set, scored against
  the true poisoned indices; STRIP (Gao et al. 2019) calibrated on clean validation
  inputs at 1% false rejection; Neural Cleanse (Wang et al. 2019) when asked for
  (``neural_cleanse: true``: it costs minutes on the mnist-5k CNN).

Training a CNN on mnist-5k costs minutes on a small CPU, so the default trains the
backdoored copy on ``train_samples`` of the training set for ``epochs`` epochs (both in
the report): its clean accuracy is then a little below the audited model's for that
reason, not because of the backdoor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from advml.audit.sections.base import AuditContext, AuditSection, SectionOutput, Verdict
from advml.metrics.intervals import from_rate
from advml.models.base import WhiteBox
from advml.models.torch import TorchClassifier
from advml.models.training import train

__all__ = ["SECTION", "BackdoorSection"]

_KEYS_INT = ("target", "trigger_size", "pruning_steps", "strip_overlays", "neural_cleanse_steps")


class BackdoorSection(AuditSection):
    """BadNets poisoning of a retrained copy, with pruning, fine-pruning and detectors.

    Settings: ``fraction`` (share of the training set the adversary poisons, in [0, 0.5];
    0 skips the section), ``target`` (backdoor label), ``trigger_size`` (side of the
    checkerboard patch in pixels), ``train_samples`` (training samples used for the
    copy; ``None`` all), ``epochs`` (training epochs of the copy; ``None`` the
    reference recipe), ``pruning_steps`` (points of the pruning curve),
    ``fine_pruning_epochs``, ``strip_overlays``, ``clustering`` (``"pca"`` or ``"ica"``),
    ``neural_cleanse`` (bool) and ``neural_cleanse_steps``.
    """

    name = "backdoor"
    title = "Backdoor: poisoned training data"
    threat = "integrity"
    order = 30
    default_settings: ClassVar[Mapping[str, Any]] = {
        "fraction": 0.1,
        "target": 0,
        "trigger_size": 3,
        "train_samples": 2000,
        "epochs": 2,
        "pruning_steps": 8,
        "fine_pruning_epochs": None,
        "strip_overlays": 8,
        "clustering": "pca",
        "neural_cleanse": False,
        "neural_cleanse_steps": 300,
        "examples": 4,
    }
    quick_settings: ClassVar[Mapping[str, Any]] = {
        "train_samples": None,
        "epochs": 5,
    }

    def skip_reason(self, ctx: AuditContext, settings: Mapping[str, Any]) -> str | None:
        _check(settings)
        if float(settings["fraction"]) == 0:
            return "the threat model says the adversary cannot poison the training data"
        if not isinstance(ctx.model, WhiteBox):
            return (
                "measuring a backdoor means retraining the model on poisoned data, and this "
                f"model is not a PyTorch network advml can train ({type(ctx.model).__name__})"
            )
        if not ctx.retrainable:
            from advml.models.formats.torch_files import without_layer_hooks

            no_hooks = without_layer_hooks(_user_model(ctx).module)
            if no_hooks:
                return (
                    "the backdoor defences read and prune the activations of the network's "
                    f"layers, and {no_hooks}; load it as ONNX or a state dict with "
                    "--model-factory instead"
                )
            fixed = _not_retrainable(ctx)
            if fixed:
                return (
                    "measuring a backdoor means retraining the model's architecture from "
                    f"fresh weights, and advml cannot re-initialise {', '.join(fixed[:3])}"
                )
        if len(ctx.dataset.input_shape) != 3:
            return "the BadNets patch trigger needs image inputs"
        return None

    def run(self, ctx: AuditContext, settings: Mapping[str, Any]) -> SectionOutput:
        from advml.poisoning import BadNets, PatternTrigger

        _check(settings)
        seed = int(ctx.config.seed)
        ds = ctx.dataset
        trigger = PatternTrigger(size=int(settings["trigger_size"]))
        attack = BadNets(
            trigger=trigger,
            fraction=float(settings["fraction"]),
            target=int(settings["target"]),
            seed=seed,
        )
        x_train, y_train = _training_subset(ds.x_train, ds.y_train, settings, seed)
        poisoned = attack.poison(x_train, y_train, n_classes=ds.n_classes, bounds=ds.bounds)
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(ctx.x))
        half = len(order) // 2
        val, ev = order[:half], order[half:]
        x_val, y_val, x_ev, y_ev = ctx.x[val], ctx.y[val], ctx.x[ev], ctx.y[ev]
        base = {
            "fraction": float(settings["fraction"]),
            "target": int(settings["target"]),
            "trigger": trigger.get_params(),
            "train_samples": settings["train_samples"],
            "epochs": settings["epochs"],
        }

        def train_step() -> tuple[dict[str, Any], dict[str, np.ndarray]]:
            epochs = None if settings["epochs"] is None else int(settings["epochs"])
            if ctx.retrainable:
                model = ctx.train_like(
                    poisoned.x,
                    poisoned.y,
                    seed=seed,
                    epochs=epochs,
                    desc="training the backdoored copy",
                )
            else:
                # The user's own architecture (a factory, TorchScript, torch.export, a
                # converted ONNX graph...): fresh seeded weights, advml's training loop.
                model = _user_model(ctx).reinitialised(seed)
                train(
                    model,
                    poisoned.x,
                    poisoned.y,
                    epochs=epochs or _USER_EPOCHS,
                    seed=seed,
                    show_progress=ctx.show_progress,
                    desc="training the backdoored copy",
                )
            state = {
                f"w:{k}": v.detach().cpu().numpy() for k, v in model.module.state_dict().items()
            }
            return {}, state

        _, weights = ctx.step("train", base, train_step)
        model = _rebuild(ctx, weights)

        def measure_step() -> tuple[dict[str, Any], dict[str, np.ndarray]]:
            return _measure(model, poisoned, x_val, y_val, x_ev, y_ev, settings, seed)

        meta, arrays = ctx.step("defences", {**base, **_defence_keys(settings)}, measure_step)
        meta = {
            **meta,
            "fraction": float(settings["fraction"]),
            "target": int(settings["target"]),
            "n_poisoned": poisoned.n_poisoned,
            "n_train": len(poisoned.y),
            "n_validation": len(y_val),
            "n_evaluation": len(y_ev),
            # Attack success is measured on the triggered inputs not already of the
            # target class: its count out of these gives the 95% interval.
            "n_triggered": int((y_ev != int(settings["target"])).sum()),
            "audited_clean_accuracy": float((ctx.clean_pred[ev] == y_ev).mean()),
            "trigger": {"name": "pattern", **trigger.get_params()},
            "reduced": {
                "train_samples": settings["train_samples"],
                "epochs": settings["epochs"],
                "note": (
                    "the backdoored copy was trained on "
                    f"{len(poisoned.y)} training samples for "
                    f"{'the recipe' if settings['epochs'] is None else settings['epochs']} "
                    "epochs to keep the audit short; its clean accuracy is compared with the "
                    "audited model's, which saw the full recipe"
                ),
            },
        }
        examples = int(settings["examples"])
        shown = x_ev[:examples]
        artifacts = {
            **arrays,
            "clean_examples": shown.astype(np.float32),
            "triggered_examples": np.asarray(poisoned.apply_trigger(shown), dtype=np.float32),
            "triggered_pred": np.asarray(model.predict(np.asarray(poisoned.apply_trigger(shown)))),
            "clean_pred": np.asarray(model.predict(shown)),
            "trigger_mask": trigger.mask_pattern(ds.input_shape, ds.bounds)[0][0],
        }
        return SectionOutput(meta, _verdict(meta), artifacts)


SECTION = BackdoorSection


def _check(settings: Mapping[str, Any]) -> None:
    from advml.validation import check_bool, check_choice, check_number

    check_number("fraction", settings["fraction"], low=0, high=0.5)
    for key in _KEYS_INT:
        check_number(key, settings[key], low=0 if key == "target" else 1, integer=True)
    if settings["fine_pruning_epochs"] is not None:
        check_number("fine_pruning_epochs", settings["fine_pruning_epochs"], low=1, integer=True)
    check_number("examples", settings["examples"], low=0, integer=True)
    for key in ("train_samples", "epochs"):
        if settings[key] is not None:
            check_number(key, settings[key], low=1, integer=True)
    check_choice("clustering", settings["clustering"], ("pca", "ica"))
    check_bool("neural_cleanse", settings["neural_cleanse"])


def _defence_keys(settings: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("pruning_steps", "fine_pruning_epochs", "strip_overlays", "clustering")
    out = {k: settings[k] for k in keys}
    if settings["neural_cleanse"]:
        out["neural_cleanse_steps"] = settings["neural_cleanse_steps"]
    return out


def _training_subset(
    x: np.ndarray, y: np.ndarray, settings: Mapping[str, Any], seed: int
) -> tuple[np.ndarray, np.ndarray]:
    n = settings["train_samples"]
    if n is None or int(n) >= len(y):
        return x, y
    idx = np.sort(np.random.default_rng(seed).permutation(len(y))[: int(n)])
    return x[idx], y[idx]


def _rebuild(ctx: AuditContext, weights: Mapping[str, np.ndarray]) -> TorchClassifier:
    import torch

    from advml.models import build_architecture
    from advml.models.reference import TRAINING

    arch = ctx.architecture
    ds = ctx.dataset
    if arch is None:  # the user's architecture: a copy of it with the trained weights
        model = _user_model(ctx).clone()
        model.module.load_state_dict(
            {
                k[2:]: torch.as_tensor(np.asarray(v))
                for k, v in weights.items()
                if k.startswith("w:")
            }
        )
        model.module.eval()
        return model
    module = build_architecture(
        arch, input_shape=ds.input_shape, n_classes=ds.n_classes, **TRAINING[arch].arch_kwargs
    )
    module.load_state_dict(
        {k[2:]: torch.as_tensor(np.asarray(v)) for k, v in weights.items() if k.startswith("w:")}
    )
    module.eval()
    return TorchClassifier(
        module, input_shape=ds.input_shape, n_classes=ds.n_classes, bounds=ds.bounds
    )


# Epochs of advml's training loop for a user's architecture when the settings give none
# (its early stopping on a validation split usually ends it sooner).
_USER_EPOCHS = 10


def _user_model(ctx: AuditContext) -> TorchClassifier:
    model = ctx.model
    if not isinstance(model, TorchClassifier):
        raise TypeError(f"the backdoor section needs a TorchClassifier, got {type(model).__name__}")
    return model


def _not_retrainable(ctx: AuditContext) -> list[str]:
    """Parameters of the audited network that cannot be drawn afresh (empty: it can be
    retrained from scratch)."""
    from advml.models.reinit import not_reinitialisable

    if not isinstance(ctx.model, TorchClassifier):
        return ["the network (not a TorchClassifier)"]
    return not_reinitialisable(ctx.model.module)


def _measure(
    model: TorchClassifier,
    poisoned: Any,
    x_val: np.ndarray,
    y_val: np.ndarray,
    x_ev: np.ndarray,
    y_ev: np.ndarray,
    settings: Mapping[str, Any],
    seed: int,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    from advml.defences.backdoor import (
        STRIP,
        ActivationClustering,
        FinePruning,
        NeuralCleanse,
        Pruning,
        activation_profile,
    )
    from advml.poisoning import evaluate_backdoor

    target = int(poisoned.target)
    before = evaluate_backdoor(model, poisoned, x_ev, y_ev)
    xt_ev = np.asarray(poisoned.apply_trigger(x_ev), dtype=np.float32)
    yb_ev = poisoned.backdoor_labels(y_ev)
    profile = activation_profile(model, x_val, poisoned.apply_trigger(x_val))
    units = model.n_units(profile.layer)
    step = max(1, math.ceil(units / int(settings["pruning_steps"])))
    pruning = Pruning(step=step).repair(model, x_val, y_val)
    curve = pruning.curve(x_ev, y_ev, xt_ev, yb_ev)
    pruned = evaluate_backdoor(pruning.model, poisoned, x_ev, y_ev)
    epochs = settings["fine_pruning_epochs"]
    fine = FinePruning(step=step, epochs=None if epochs is None else int(epochs), seed=seed).repair(
        model, x_val, y_val
    )
    fine_ev = evaluate_backdoor(fine.model, poisoned, x_ev, y_ev)
    # The defences cannot see the trigger; the audit can, and says when a repair failed
    # (attack success above REPAIR_MAX_SUCCESS) rather than print a weak number.
    pruning_check = pruning.check(x_ev, y_ev, xt_ev, yb_ev, max_success=REPAIR_MAX_SUCCESS)
    fine_check = fine.check(x_ev, y_ev, xt_ev, yb_ev, max_success=REPAIR_MAX_SUCCESS)
    clustering = ActivationClustering(reduction=settings["clustering"], seed=seed).detect(
        model, poisoned.x, poisoned.y
    )
    strip = STRIP(n_overlays=int(settings["strip_overlays"]), frr=0.01, seed=seed).fit(model, x_val)
    eligible = y_ev != target
    strip_detect = strip.detect(xt_ev[eligible]).detection_rate
    strip_frr = strip.detect(x_ev).detection_rate
    meta: dict[str, Any] = {
        "clean_accuracy": before.clean_accuracy,
        "attack_success": before.attack_success,
        "triggered_accuracy": before.triggered_accuracy,
        "per_class_attack_success": [_num(v) for v in before.per_class_attack_success],
        "neuron_analysis": {
            "layer": profile.layer,
            "units": int(units),
            "backdoor_units": profile.backdoor_units().tolist()[:10],
            "n_backdoor_units": int(profile.backdoor_units().size),
        },
        "pruning": {
            "layer": pruning.layer,
            "fraction_pruned": pruning.fraction_pruned,
            "clean_accuracy": pruned.clean_accuracy,
            "attack_success": pruned.attack_success,
            "crossing": curve.crossing(0.05),
            "repair_failed": pruning_check.repair_failed,
            "curve": {k: [_num(v) for v in vals] for k, vals in curve.to_dict().items()},
        },
        "fine_pruning": {
            "epochs": fine.epochs,
            "lr": fine.lr,
            "lr_search": [dict(row) for row in fine.lr_search],
            "clean_accuracy": fine_ev.clean_accuracy,
            "attack_success": fine_ev.attack_success,
            "repair_failed": fine_check.repair_failed,
            "max_success": REPAIR_MAX_SUCCESS,
        },
        "detectors": {
            "activation_clustering": {
                "flagged_classes": list(clustering.flagged_classes),
                "target_class": {
                    k: float(v)
                    for k, v in clustering.score(poisoned.indices, within_class=target).items()
                },
                "whole_training_set": {
                    k: float(v) for k, v in clustering.score(poisoned.indices).items()
                },
                "per_class": [
                    {
                        "class": int(info["class"]),
                        "n": int(info["n"]),
                        "poisoned": bool(info["poisoned"]),
                        "reason": str(info.get("reason", "")),
                        "silhouette": _num(info.get("silhouette")),
                        "spread_ratio": _num(info.get("spread_ratio")),
                        "relative_spread": _num(info.get("relative_spread")),
                        "layer": info.get("layer"),
                        "small_fraction": _num(info.get("small_fraction")),
                    }
                    for info in clustering.per_class
                ],
                "reduction": settings["clustering"],
            },
            "strip": {
                "detection_rate": strip_detect,
                "false_rejection": strip_frr,
                "frr_setting": 0.01,
                "threshold": strip.threshold,
            },
        },
        "data_used": {
            "pruning": Pruning.uses,
            "fine_pruning": FinePruning.uses,
            "activation_clustering": ActivationClustering.uses,
            "strip": STRIP.uses,
        },
    }
    arrays: dict[str, np.ndarray] = {
        "profile_clean": profile.clean.astype(np.float32),
        "profile_triggered": profile.triggered.astype(np.float32),
    }
    if settings["neural_cleanse"]:
        nc = NeuralCleanse(steps=int(settings["neural_cleanse_steps"]), seed=seed).inspect(
            model, x_val
        )
        meta["detectors"]["neural_cleanse"] = {
            "flagged": nc.flagged,
            "target": nc.target,
            "max_anomaly_index": float(nc.anomaly_index.max()),
            "anomaly_index": nc.anomaly_index.tolist(),
        }
        meta["data_used"]["neural_cleanse"] = NeuralCleanse.uses
        arrays["nc_mask"] = nc.masks[int(np.argmax(nc.anomaly_index))].astype(np.float32)
    return meta, arrays


REPAIR_MAX_SUCCESS = 0.2
"""Attack success above which a repair (pruning, fine-pruning) is reported as failed: the
rate below which the verdict says the backdoor did not take."""


def _num(v: float | None) -> float | None:
    return None if v is None or math.isnan(v) else float(v)


def _verdict(meta: Mapping[str, Any]) -> Verdict:
    asr = _num(meta["attack_success"])
    fine = _num(meta["fine_pruning"]["attack_success"])
    strip = meta["detectors"]["strip"]["detection_rate"]
    ac_f1 = meta["detectors"]["activation_clustering"]["target_class"]["f1"]
    numbers = {
        "attack_success": asr,
        "clean_accuracy": meta["clean_accuracy"],
        "fine_pruned_attack_success": fine,
        "strip_detection_rate": strip,
        "clustering_f1": ac_f1,
    }
    if asr is None:
        return Verdict("unknown", "unknown", "No triggered test input could be measured.", numbers)
    n = int(meta.get("n_triggered", meta.get("n_evaluation", 0)))
    iv = from_rate(asr, n) if n else None
    counted = (
        f" ({iv.count} of {n}; 95% interval {100 * iv.low:.0f}% to {100 * iv.high:.0f}%)"
        if iv
        else ""
    )
    if iv:
        numbers.update(attack_success_low=iv.low, attack_success_high=iv.high, n_triggered=n)
    lead = (
        f"An attacker who slips {meta['n_poisoned']} patched and relabelled images "
        f"({100 * meta['fraction']:.0f}%) into {meta['n_train']} training images planted "
        "a backdoor that sends "
        f"{100 * asr:.0f}% of patched test images{counted} to the attacker's label, while "
        f"the model still scores {100 * meta['clean_accuracy']:.0f}% on clean images."
    )
    # "Did not take" needs the interval's upper end below 20%: the data exclude a
    # backdoor that works on a fifth of the inputs.
    if (iv.high if iv else asr) < 0.2:
        return Verdict(
            "pass",
            "backdoor did not take",
            f"Poisoning {meta['n_poisoned']} of {meta['n_train']} training images made only "
            f"{100 * asr:.0f}% of patched test images{counted} go to the attacker's label.",
            numbers,
        )
    removed = fine is not None and fine <= 0.05
    failed = bool(meta["fine_pruning"].get("repair_failed", False))
    detected = strip >= 0.9 or ac_f1 >= 0.9
    repair = (
        f" Fine-pruning with the owner's clean images failed to repair the model: "
        f"{100 * (fine or 0):.0f}% of patched images still reach the attacker's label"
        if failed
        else f" Fine-pruning with the owner's clean images lowered that to {100 * (fine or 0):.0f}%"
    )
    tail = (
        repair + f" (clean accuracy {100 * meta['fine_pruning']['clean_accuracy']:.0f}%); STRIP "
        f"flagged {100 * strip:.0f}% of patched inputs at a 1% false alarm rate; activation "
        f"clustering found the poisoned images with F1 {ac_f1:.2f}."
    )
    if removed or detected:
        return Verdict("warn", "backdoor possible, defences help", lead + tail, numbers)
    return Verdict("fail", "backdoor possible", lead + tail, numbers)
