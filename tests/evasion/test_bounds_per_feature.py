"""Per-feature bounds and eps relative to each feature's range (issue 13, "Data").

The same network on raw inputs and on inputs scaled to [0, 1] must be equally robust at
the same relative eps: the attack on the raw model runs in the unit box of its bounds.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_wine
from torch import nn

from advml.data import load_dataset
from advml.evasion import FGSM, PGD, Square
from advml.models import TorchClassifier
from advml.models.base import clip_bounds

ATTACKS = [
    lambda **kw: PGD(eps=0.1, steps=10, **kw),
    lambda **kw: FGSM(eps=0.1, **kw),
    lambda **kw: Square(eps=0.1, max_queries=100, **kw),
]


def fit(net: nn.Module, x: np.ndarray, y: np.ndarray, steps: int = 150) -> nn.Module:
    torch.manual_seed(0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    return net.eval()


@pytest.fixture(scope="module")
def digits_pair() -> tuple[TorchClassifier, TorchClassifier, np.ndarray, np.ndarray]:
    """One CNN with BatchNorm, seen on [0, 1] pixels and on raw 0..16 pixels."""
    ds = load_dataset("digits")
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.GELU(),
        nn.Flatten(),
        nn.Linear(8 * 64, 10),
    )
    fit(net, ds.x_train, ds.y_train, steps=60)
    scaled = TorchClassifier(net, input_shape=(1, 8, 8), n_classes=10, bounds=(0, 1))
    raw = TorchClassifier(
        net, input_shape=(1, 8, 8), n_classes=10, bounds=(0, 16), preprocessing=(0.0, 16.0)
    )
    sub = ds.subset(n_test=80, seed=0)
    return scaled, raw, sub.x_test, sub.y_test


@pytest.mark.parametrize("make", ATTACKS)
def test_raw_and_scaled_digits_are_equally_robust_at_relative_eps(digits_pair, make) -> None:
    scaled, raw, x, y = digits_pair
    on_scaled = make().generate(scaled, x, y)
    on_raw = make(eps_scale="relative").generate(raw, x * 16, y)
    # x * 16 and z * 16 are exact in float32, so the two runs are the same arithmetic.
    np.testing.assert_array_equal(on_raw.success, on_scaled.success)
    np.testing.assert_array_equal(on_raw.x_adv, on_scaled.x_adv * 16)
    # Read as absolute, eps 0.1 on 0..16 pixels is a 160x smaller ball: far more "robust".
    absolute = make().generate(raw, x * 16, y)
    assert absolute.success.sum() < on_raw.success.sum()


def test_relative_on_unit_bounds_is_the_absolute_attack(digits_pair) -> None:
    scaled, _, x, y = digits_pair
    a = PGD(eps=0.1, steps=5).generate(scaled, x, y)
    b = PGD(eps=0.1, steps=5, eps_scale="relative").generate(scaled, x, y)
    np.testing.assert_array_equal(a.x_adv, b.x_adv)


@pytest.fixture(scope="module")
def wine() -> dict[str, object]:
    """Wine's 13 raw features (ranges from 0.1 to 1680) and a per-feature-bounds model."""
    data = load_wine()
    x, y = data.data.astype(np.float32), data.target
    low, high = x.min(0), x.max(0)
    mean, std = x.mean(0), x.std(0)
    net = fit(nn.Sequential(nn.Linear(13, 16), nn.ReLU(), nn.Linear(16, 3)), (x - mean) / std, y)
    raw = TorchClassifier(
        net, input_shape=(13,), n_classes=3, bounds=(low, high), preprocessing=(mean, std)
    )
    # The same function on min-max scaled features: z = (x - low) / (high - low).
    span = high - low
    scaled = TorchClassifier(
        net,
        input_shape=(13,),
        n_classes=3,
        bounds=(0, 1),
        preprocessing=((mean - low) / span, std / span),
    )
    return {"x": x, "y": y, "low": low, "high": high, "raw": raw, "scaled": scaled}


@pytest.mark.parametrize("make", ATTACKS)
@pytest.mark.parametrize("scale", ["absolute", "relative"])
def test_outputs_stay_in_per_feature_bounds_and_ball(wine, make, scale) -> None:
    attack = make(eps_scale=scale)
    result = attack.generate(wine["raw"], wine["x"], wine["y"])
    low, high = wine["low"], wine["high"]
    x_adv = result.x_adv
    assert (x_adv >= low).all() and (x_adv <= high).all()
    radius = 0.1 * (high - low) if scale == "relative" else np.full_like(low, 0.1)
    # float32 arithmetic on values up to 1680: a few ulps of the largest feature.
    tol = 4 * np.finfo(np.float32).eps * np.maximum(np.abs(high), 1)
    assert (np.abs(x_adv - wine["x"]) <= radius + tol).all()
    if scale == "relative":  # features with a wide range move by more than 0.1
        assert np.abs(x_adv - wine["x"]).max() > 1.0


def test_raw_and_scaled_wine_agree_at_relative_eps(wine) -> None:
    x, y, low, high = wine["x"], wine["y"], wine["low"], wine["high"]
    z = (x - low) / (high - low)
    on_scaled = PGD(eps=0.1, steps=20).generate(wine["scaled"], z, y)
    on_raw = PGD(eps=0.1, steps=20, eps_scale="relative").generate(wine["raw"], x, y)
    # Not bit-identical (low + z * span rounds), so a few inputs near the boundary may flip.
    assert abs(int(on_raw.success.sum()) - int(on_scaled.success.sum())) <= 3
    absolute = PGD(eps=0.1, steps=20).generate(wine["raw"], x, y)
    assert absolute.success.sum() < on_raw.success.sum()


def test_per_channel_bounds_broadcast_over_pixels() -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    model = TorchClassifier(
        net, input_shape=(3, 4, 4), n_classes=2, bounds=(np.zeros(3), np.array([1.0, 2.0, 4.0]))
    )
    _, high = clip_bounds(model)
    assert isinstance(high, torch.Tensor) and high.shape == (1, 3, 4, 4)
    assert model.bounds == (0.0, 4.0)
    x = np.random.default_rng(0).uniform(0, 1, (5, 3, 4, 4)).astype(np.float32)
    out = PGD(eps=0.5, steps=3, eps_scale="relative").generate(model, x).x_adv
    assert (out[:, 0] <= 1.0).all() and (np.abs(out - x)[:, 2] <= 2.0 + 1e-6).all()
    with pytest.raises(ValueError, match=r"feature 0 .*outside its bounds"):
        PGD(eps=0.1).generate(model, np.full((1, 3, 4, 4), 1.5, dtype=np.float32))
    assert model.clone().feature_bounds is not None


def test_bad_bounds_and_eps_scale_are_named() -> None:
    net = nn.Linear(3, 2)
    with pytest.raises(ValueError, match=r"feature 1 .*low 2 >= high 2"):
        TorchClassifier(net, input_shape=(3,), n_classes=2, bounds=([0, 2, 0], [1, 2, 1]))
    with pytest.raises(ValueError, match=r"bounds low has shape \(2,\)"):
        TorchClassifier(net, input_shape=(3,), n_classes=2, bounds=([0, 0], [1, 1]))
    with pytest.raises(ValueError, match="eps_scale must be one of 'absolute', 'relative'"):
        PGD(eps_scale="percent")  # type: ignore[arg-type]


def test_sklearn_model_on_raw_breast_cancer_and_its_access_view() -> None:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from advml.models import SklearnClassifier
    from advml.models.access import restrict_access

    data = load_breast_cancer()
    x, y = data.data.astype(np.float32), data.target
    low, high = x.min(0), x.max(0)  # 30 features, ranges from 0.03 to 4000
    est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)
    model = SklearnClassifier(est, bounds=(low, high))
    result = PGD(eps=0.05, steps=10, eps_scale="relative").generate(model, x[:60], y[:60])
    x_adv = result.x_adv
    assert (x_adv >= low).all() and (x_adv <= high).all()
    tol = 4 * np.finfo(np.float32).eps * np.maximum(np.abs(high), 1)
    assert (np.abs(x_adv - x[:60]) <= 0.05 * (high - low) + tol).all()
    view = restrict_access(model, "scores")
    assert view.feature_bounds is not None
    square = Square(eps=0.05, max_queries=50, eps_scale="relative").generate(view, x[:20], y[:20])
    assert (square.x_adv >= low).all() and (square.x_adv <= high).all()


@pytest.mark.parametrize("scale", ["absolute", "relative"])
def test_feature_constraints_hold_with_per_feature_bounds(wine, scale) -> None:
    from advml.evasion import FeatureConstraints

    x, y = wine["x"], wine["y"]
    keep = (x[:, 12] >= 300) & (x[:, 12] <= 1000)
    x, y = x[keep], y[keep]
    rules = FeatureConstraints(immutable=[0], ranges={12: (300.0, 1000.0)})
    result = PGD(eps=0.2, steps=10, eps_scale=scale, constraints=rules).generate(wine["raw"], x, y)
    x_adv = result.x_adv
    np.testing.assert_array_equal(x_adv[:, 0], x[:, 0])
    # float32 rounding of values near 1000: a few ulps.
    assert (x_adv[:, 12] >= 300 - 1e-3).all() and (x_adv[:, 12] <= 1000 + 1e-3).all()
    assert (x_adv >= wine["low"]).all() and (x_adv <= wine["high"]).all()
    assert rules.satisfied(x, x_adv, (float(wine["low"].min()), float(wine["high"].max()))).all()


def test_relative_run_keeps_untouched_features_exact(wine) -> None:
    x, y = wine["x"], wine["y"]
    same = PGD(eps=0.0, eps_scale="relative").generate(wine["raw"], x, y)
    np.testing.assert_array_equal(same.x_adv, x)
    assert (same.l0 == 0).all()
