"""Membership inference on networks a user brings (issue 11 §2.4-2.5).

Targets defined here, outside advml, wrapped in ``TorchClassifier``: a GELU MLP and a
small CNN with BatchNorm, each trained on 500 digits (members) of a pool of 1,000 (the
other 500 are non-members) to 100% training accuracy. Per seed:

- **Score precision** (§2.4): the loss-threshold score as advml computed it before (a
  float32 log-softmax floored at log 1e-12) and now (float64 from the logits): how many
  records tie at the top score, and TPR at 1% / 0.1% FPR.
- **Shadow architecture** (§2.5): LiRA (online, ``--shadows`` shadows) with shadows
  that are fresh copies of the target's architecture (the default, ``"same"``) against
  shadows that are advml's reference MLP (the old default for a custom model), both
  trained with the target's recipe.

Run ``python benchmarks/privacy_custom_models.py`` (3 seeds, 16 shadows; a few minutes on
two cores); ``--quick`` runs 1 seed and 8 shadows.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

from advml.models import TorchClassifier, train
from advml.privacy.membership import LiRA, LossThreshold, membership_metrics

EPOCHS = 60
LR = 1e-3
BATCH = 64


class GeluMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(64, 256), nn.GELU(), nn.Linear(256, 256), nn.GELU(),
            nn.Linear(256, 10),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BNCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(128, 10),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


ARCHITECTURES = {"gelu_mlp": GeluMLP, "bn_cnn": BNCNN}


def float32_loss_scores(model: TorchClassifier, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The loss score as advml computed it before: float32, floored at log(1e-12)."""
    with torch.no_grad(), model.evaluating():
        logits = model.logits(torch.as_tensor(x))
    lp = torch.log_softmax(logits.float(), dim=1).clamp_min(float(np.log(1e-12)))
    return lp.gather(1, torch.as_tensor(y)[:, None])[:, 0].double().numpy()


def run(arch: str, seed: int, n_shadow: int) -> dict[str, float]:
    d = load_digits()
    x_all = (d.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y_all = d.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    pool = rng.permutation(len(x_all))[:1000]
    x, y = x_all[pool], y_all[pool]
    truth = np.zeros(1000, bool)
    truth[rng.choice(1000, 500, replace=False)] = True
    torch.manual_seed(seed)
    target = TorchClassifier(ARCHITECTURES[arch](), input_shape=(1, 8, 8), n_classes=10)
    train(
        target, x[truth], y[truth], epochs=EPOCHS, lr=LR, batch_size=BATCH,
        val_fraction=0.0, patience=None, seed=seed, show_progress=False,
    )  # fmt: skip
    out: dict[str, float] = {
        "train_acc": float((target.predict(x[truth]) == y[truth]).mean()),
        "test_acc": float((target.predict(x[~truth]) == y[~truth]).mean()),
    }
    old = float32_loss_scores(target, x, y)
    fitted = LossThreshold(calibration="population").fit(target, x[~truth], y[~truth])
    new = fitted.infer(target, x, y).scores
    for name, s in (("float32", old), ("float64", new)):
        m = membership_metrics(s, truth)
        out[f"loss_{name}_ties_at_top"] = int((s == s.max()).sum())
        out[f"loss_{name}_tpr_at_1"] = m.tpr_at_1_fpr
        out[f"loss_{name}_tpr_at_0_1"] = m.tpr_at_0_1_fpr
        out[f"loss_{name}_auc"] = m.auc
    for shadows in ("same", "mlp"):
        start = time.perf_counter()
        lira = LiRA(
            n_shadow=n_shadow, shadow_architecture=shadows, shadow_epochs=EPOCHS,
            shadow_lr=LR, shadow_batch_size=BATCH, seed=seed,
        )  # fmt: skip
        m = lira.fit(target, x, y).infer(target, x, y).metrics(truth)
        out[f"lira_{shadows}_auc"] = m.auc
        out[f"lira_{shadows}_tpr_at_1"] = m.tpr_at_1_fpr
        out[f"lira_{shadows}_seconds"] = time.perf_counter() - start
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, 8 shadows")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--shadows", type=int, default=16)
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), nargs="+",
                        default=sorted(ARCHITECTURES))  # fmt: skip
    parser.add_argument("--json", help="write the per-seed numbers here")
    args = parser.parse_args()
    seeds = 1 if args.quick else args.seeds
    n_shadow = 8 if args.quick else args.shadows
    results: dict[str, list[dict[str, float]]] = {}
    for arch in args.arch:
        results[arch] = [run(arch, seed, n_shadow) for seed in range(seeds)]
        rows = results[arch]
        print(f"\n{arch}: {seeds} seed(s), LiRA with {n_shadow} shadows")
        for key in rows[0]:
            values = [r[key] for r in rows]
            shown = " ".join(f"{v:.3f}" for v in values)
            print(f"  {key:<28} mean {statistics.mean(values):8.3f}   per seed {shown}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
