"""HopSkipJump in the audit with ``eps_scale: relative`` on a table of per-feature
bounds: the L∞ distance compared with ε is each feature's move over its range."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_wine
from torch import nn

from advml import registry
from advml.audit import AuditConfig, run_audit
from advml.audit.sections.evasion import WithinEps, plan
from advml.data import Dataset
from advml.models import TorchClassifier
from advml.models.access import restrict_access
from advml.models.architectures import build


@pytest.fixture(scope="module")
def wine() -> tuple[Dataset, TorchClassifier]:
    """Raw wine features (ranges 0.13..5 up to 278..1680) with per-feature bounds, and
    an MLP trained on their standardised values."""
    data = load_wine()
    x, y = data.data.astype(np.float32), data.target.astype(np.int64)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    train, test = order[:140], order[140:]
    low, high = x.min(0), x.max(0)
    ds = Dataset(
        name="wine-raw",
        x_train=x[train],
        y_train=y[train],
        x_test=x[test],
        y_test=y[test],
        input_shape=(13,),
        n_classes=3,
        bounds=(float(low.min()), float(high.max())),
        class_names=("a", "b", "c"),
        description="wine, raw features",
        feature_bounds=(low, high),
    )
    mean, std = x[train].mean(0), x[train].std(0)
    torch.manual_seed(0)
    net = build("mlp", input_shape=(13,), n_classes=3, hidden=(16,))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    xt, yt = torch.tensor((x[train] - mean) / std), torch.tensor(y[train])
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    net.eval()
    model = TorchClassifier(
        net, input_shape=(13,), n_classes=3, bounds=(low, high), preprocessing=(mean, std)
    )
    return ds, model


def test_within_eps_measures_each_feature_relative_to_its_range(
    wine: tuple[Dataset, TorchClassifier],
) -> None:
    ds, model = wine
    x, y = ds.x_test[:12], ds.y_test[:12]
    span = ds.feature_bounds[1] - ds.feature_bounds[0]  # type: ignore[index]
    hsj = registry.create("evasion", "hopskipjump", norm="inf", max_queries=300, seed=0)
    memo: dict = {}
    results = {
        eps: WithinEps(hsj, eps, memo, relative=True).generate(model, x, y)
        for eps in (0.0, 0.05, 0.1, 0.3)
    }
    kept = []
    for eps, r in results.items():
        moved = np.abs(r.x_adv - x) / span
        tol = 4 * np.finfo(np.float32).eps * np.maximum(np.abs(ds.feature_bounds[1]), 1) / span  # type: ignore[index]
        assert (moved[r.success] <= eps + 1e-6 + tol).all()
        # Inputs not kept are the clean ones, counted as not fooled.
        np.testing.assert_array_equal(r.x_adv[~r.success], x[~r.success])
        assert r.params["eps_scale"] == "relative"
        kept.append(int(r.success.sum()))
        # Norms in the data's units: a relative move of proline is hundreds of units.
        np.testing.assert_allclose(
            r.linf[r.success], np.abs(r.x_adv - x)[r.success].max(1), rtol=1e-6
        )
    assert kept == sorted(kept) and kept[-1] > kept[1]
    # Absolute L∞ within 0.3 units: the old check; the relative ball keeps examples
    # whose raw moves are far larger (proline's range is 1402 units).
    big = results[0.3]
    assert big.success.any() and (big.linf[big.success] > 0.3).any()


def test_audit_plan_gives_hopskipjump_the_relative_scale(
    wine: tuple[Dataset, TorchClassifier],
) -> None:
    ds, model = wine
    labels = restrict_access(model, "labels")
    common = {"dataset": "wine-raw", "access": "labels", "eps": (0.0, 0.1)}
    steps, _ = plan(AuditConfig(**common, eps_scale="relative"), labels)
    hsj = [a for name, _, a in steps if name == "hopskipjump"]
    assert hsj and all(a.relative for a in hsj)  # type: ignore[attr-defined]
    steps, _ = plan(AuditConfig(**common, eps_scale="absolute"), labels)
    assert not any(a.relative for name, _, a in steps if name == "hopskipjump")  # type: ignore[attr-defined]
    config = AuditConfig(
        **common,
        eps_scale="relative",
        sections=("evasion",),
        n_samples=10,
        queries_per_input=200,
        profile="quick",
        examples=2,
    )
    report = run_audit(config, model=model, dataset=ds, show_progress=False).report
    points = next(a for a in report["sections"]["evasion"]["attacks"] if a["name"] == "hopskipjump")
    accs = [p["robust_accuracy"] for p in points["points"]]
    assert accs[1] <= accs[0]
