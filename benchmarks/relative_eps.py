"""Robust accuracy of one network on raw and on [0, 1]-scaled inputs: eps read in the
data's units (absolute) versus as a fraction of each feature's range (relative).

The issue-13 example: the same network looks far more robust on raw 0..16 digits pixels
(or raw wine features) than on scaled ones when eps is absolute; with ``eps_scale=
"relative"`` both give the same robust accuracy. Each network is trained once here (seed
0, a few seconds on a CPU), then attacked with PGD-20 at eps 0.1 on the test split.

Run: ``PYTHONPATH=src python benchmarks/relative_eps.py``
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_wine
from torch import nn

from advml.data import load_dataset
from advml.evasion import PGD
from advml.models import TorchClassifier


def fit(net: nn.Module, x: np.ndarray, y: np.ndarray, steps: int) -> nn.Module:
    torch.manual_seed(0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    return net.eval()


def robust(model: TorchClassifier, x: np.ndarray, y: np.ndarray, scale: str) -> float:
    result = PGD(eps=0.1, steps=20, eps_scale=scale).generate(model, x, y)  # type: ignore[arg-type]
    return float((result.y_adv == y).mean())


def main() -> None:
    rows = []
    ds = load_dataset("digits")
    torch.manual_seed(0)
    cnn = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 64, 10)
    )
    fit(cnn, ds.x_train, ds.y_train, steps=150)
    unit = TorchClassifier(cnn, input_shape=(1, 8, 8), n_classes=10, bounds=(0, 1))
    raw = TorchClassifier(
        cnn, input_shape=(1, 8, 8), n_classes=10, bounds=(0, 16), preprocessing=(0.0, 16.0)
    )
    x, y = ds.x_test, ds.y_test
    rows.append(("digits CNN", "[0, 1] pixels", robust(unit, x, y, "absolute")))
    rows.append(("digits CNN", "raw 0..16, absolute eps", robust(raw, 16 * x, y, "absolute")))
    rows.append(("digits CNN", "raw 0..16, relative eps", robust(raw, 16 * x, y, "relative")))

    data = load_wine()
    xw, yw = data.data.astype(np.float32), data.target
    low, high = xw.min(0), xw.max(0)
    z = (xw - low) / (high - low)
    mlp = fit(nn.Sequential(nn.Linear(13, 32), nn.ReLU(), nn.Linear(32, 3)), z, yw, steps=300)
    unit_w = TorchClassifier(mlp, input_shape=(13,), n_classes=3, bounds=(0, 1))
    raw_w = TorchClassifier(
        mlp, input_shape=(13,), n_classes=3, bounds=(low, high), preprocessing=(low, high - low)
    )
    rows.append(("wine MLP", "min-max scaled", robust(unit_w, z, yw, "absolute")))
    rows.append(("wine MLP", "raw, absolute eps", robust(raw_w, xw, yw, "absolute")))
    rows.append(("wine MLP", "raw, relative eps", robust(raw_w, xw, yw, "relative")))
    print("PGD-20, eps 0.1; robust accuracy")
    for model, inputs, acc in rows:
        print(f"  {model:<11} {inputs:<26} {acc:6.1%}")


if __name__ == "__main__":
    main()
