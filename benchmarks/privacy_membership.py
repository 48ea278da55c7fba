"""Membership inference on a deliberately overfit target: LiRA vs the loss threshold vs ART.

Setting (issue 5): the digits MLP (``architectures.build("mlp")``) trained on 500
records to 100% training accuracy. Per seed, a pool of 1,000 of the 1,797 digits is
drawn; 500 of them are the target's members, the other 500 non-members. The attacker
knows the pool but not which half was used (Carlini et al. 2022's setting).

- advml ``lira`` (online and offline, 16 shadow models trained like the target on
  random halves of the pool) and ``loss_threshold`` (the global loss threshold of Yeom
  et al., calibrated on one shadow) score all 1,000 pool records;
- ART's ``MembershipInferenceBlackBox`` (attack models "rf", "gb", "nn") is given half
  the members and half the non-members, labelled, to train its attack model, and scores
  the other halves; every attack's AUC is also reported on exactly those held-out halves.

Targets: LiRA's TPR at 0.1% FPR >= 5x the loss threshold's; LiRA's AUC above ART's.

Run ``python benchmarks/privacy_membership.py`` (3 seeds, a few minutes on one core);
``--quick`` uses 1 seed and 8 shadows.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from typing import Any

import numpy as np
import torch

from advml.data import load_dataset
from advml.models import TorchClassifier, train
from advml.models.architectures import build
from advml.privacy.membership import LiRA, LossThreshold, membership_metrics

EPOCHS = 60  # the target reaches 100% training accuracy well before this


def make_target(x: np.ndarray, y: np.ndarray, seed: int) -> TorchClassifier:
    torch.manual_seed(seed)
    module = build("mlp", input_shape=(1, 8, 8), n_classes=10)
    model = TorchClassifier(module, input_shape=(1, 8, 8), n_classes=10, bounds=(0.0, 1.0))
    train(
        model, x, y, epochs=EPOCHS, val_fraction=0.0, patience=None, seed=seed, show_progress=False
    )
    return model


def art_auc(
    model: TorchClassifier,
    x_in: np.ndarray,
    y_in: np.ndarray,
    x_out: np.ndarray,
    y_out: np.ndarray,
    kind: str,
    seed: int,
) -> float | None:
    try:
        from art.attacks.inference.membership_inference import MembershipInferenceBlackBox
        from art.estimators.classification import PyTorchClassifier
    except ImportError:
        return None
    half_in, half_out = len(x_in) // 2, len(x_out) // 2
    clf = PyTorchClassifier(
        model=model.module,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=(1, 8, 8),
        nb_classes=10,
        clip_values=(0.0, 1.0),
    )
    np.random.seed(seed)  # noqa: NPY002 (ART draws from the global generator)
    torch.manual_seed(seed)
    attack = MembershipInferenceBlackBox(clf, attack_model_type=kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        attack.fit(x_in[:half_in], y_in[:half_in], x_out[:half_out], y_out[:half_out])
        p_in = attack.infer(x_in[half_in:], y_in[half_in:], probabilities=True)
        p_out = attack.infer(x_out[half_out:], y_out[half_out:], probabilities=True)
    scores = np.r_[np.asarray(p_in).reshape(-1), np.asarray(p_out).reshape(-1)]
    truth = np.r_[np.ones(len(x_in) - half_in, bool), np.zeros(len(x_out) - half_out, bool)]
    return membership_metrics(scores, truth).auc


def run(seed: int, n_shadow: int) -> dict[str, Any]:
    ds = load_dataset("digits")
    x_all = np.concatenate([ds.x_train, ds.x_test])
    y_all = np.concatenate([ds.y_train, ds.y_test])
    rng = np.random.default_rng(seed)
    pool = rng.choice(len(x_all), 1000, replace=False)
    x_pool, y_pool = x_all[pool], y_all[pool]
    member = np.zeros(1000, bool)
    member[rng.choice(1000, 500, replace=False)] = True
    target = make_target(x_pool[member], y_pool[member], seed)
    train_acc = float((target.predict(x_pool[member]) == y_pool[member]).mean())
    test_acc = float((target.predict(x_pool[~member]) == y_pool[~member]).mean())
    # The held-out halves ART is scored on (its first halves train its attack model).
    eval_in = np.flatnonzero(member)[250:]
    eval_out = np.flatnonzero(~member)[250:]
    held = np.r_[eval_in, eval_out]
    out: dict[str, Any] = {"seed": seed, "train_acc": train_acc, "test_acc": test_acc}
    attacks = {
        "loss_threshold": LossThreshold(shadow_epochs=EPOCHS, seed=seed),
        # Per-record variances (the paper's choice with many shadows) and LiRA's default
        # with 16 shadows, one variance for all records.
        "lira_online": LiRA(
            n_shadow=n_shadow, fixed_variance=False, shadow_epochs=EPOCHS, seed=seed
        ),
        "lira_offline": LiRA(
            n_shadow=n_shadow,
            mode="offline",
            fixed_variance=False,
            shadow_epochs=EPOCHS,
            seed=seed,
        ),
        "lira_online_fixed_var": LiRA(n_shadow=n_shadow, shadow_epochs=EPOCHS, seed=seed),
    }
    fitted_lira = None
    for name, attack in attacks.items():
        start = time.perf_counter()
        if name.startswith("lira") and fitted_lira is not None:
            # Same shadows (same seed and pool): reuse them, only the test differs.
            fitted = type(fitted_lira)(attack, fitted_lira.state, 0.0, 0, 0.0)
        else:
            fitted = attack.fit(target, x_pool, y_pool)
            if name.startswith("lira"):
                fitted_lira = fitted
        result = fitted.infer(target, x_pool, y_pool)
        m = result.metrics(member)
        held_auc = membership_metrics(result.scores[held], member[held]).auc
        out[name] = {
            **m.summary(),
            "held_out_auc": held_auc,
            "seconds": time.perf_counter() - start,
        }
    for kind in ("rf", "gb", "nn"):
        out[f"art_blackbox_{kind}"] = {
            "held_out_auc": art_auc(
                target, x_pool[member], y_pool[member], x_pool[~member], y_pool[~member], kind, seed
            )
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--shadows", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="1 seed, 8 shadows")
    parser.add_argument("--json", help="write the raw results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    seeds = 1 if args.quick else args.seeds
    n_shadow = 8 if args.quick else args.shadows
    results = []
    for seed in range(seeds):
        r = run(seed, n_shadow)
        results.append(r)
        print(
            f"seed {seed}: target train acc {r['train_acc']:.3f}, test acc {r['test_acc']:.3f}",
            flush=True,
        )
    names = [k for k in results[0] if isinstance(results[0][k], dict)]
    print(
        f"\n{'attack':26s} {'AUC':>13s} {'held-out AUC':>13s} {'TPR@0.1%FPR':>13s} "
        f"{'TPR@1%FPR':>13s} {'bal.acc':>8s}"
    )

    def fmt(key: str, name: str) -> str:
        vals = [r[name].get(key) for r in results]
        if any(v is None for v in vals):
            return f"{'-':>13s}"
        sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
        return f"{statistics.mean(vals):7.3f}±{sd:5.3f}"

    for name in names:
        print(
            f"{name:26s} {fmt('auc', name)} {fmt('held_out_auc', name)} "
            f"{fmt('tpr_at_0.1%_fpr', name)} {fmt('tpr_at_1%_fpr', name)} "
            f"{fmt('balanced_accuracy', name)[:8]}"
        )
    for r in results:
        loss = r["loss_threshold"]["tpr_at_0.1%_fpr"]
        lira = r["lira_online"]["tpr_at_0.1%_fpr"]
        ratio = lira / loss if loss > 0 else float("inf")
        print(f"seed {r['seed']}: LiRA/loss TPR@0.1%FPR = {lira:.3f}/{loss:.3f} = {ratio:.1f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
