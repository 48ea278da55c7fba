"""The membership experiment API behind ``advml membership``.

Tabular data (a Gaussian-blob dataset built here) and a GELU network defined here, so
the API is tried on a model advml did not build as well as on the one it trains.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from advml.data import Dataset
from advml.models import TorchClassifier, train
from advml.privacy.membership import (
    LiRA,
    LossThreshold,
    MembershipSetup,
    evaluate_membership,
    membership_attacks,
)


def blobs(n_train: int = 120, n_test: int = 120, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0.3, 0.7, size=(3, 6))

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 3, n)
        x = np.clip(centres[y] + rng.normal(0, 0.15, (n, 6)), 0, 1).astype(np.float32)
        return x, y.astype(np.int64)

    x_tr, y_tr = draw(n_train)
    x_te, y_te = draw(n_test)
    return Dataset(
        name="blobs",
        x_train=x_tr,
        y_train=y_tr,
        x_test=x_te,
        y_test=y_te,
        input_shape=(6,),
        n_classes=3,
        bounds=(0.0, 1.0),
        class_names=("a", "b", "c"),
        description="three Gaussian blobs in [0, 1]^6",
    )


def gelu_model(ds: Dataset) -> TorchClassifier:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 64), nn.GELU(), nn.Linear(64, 3))
    model = TorchClassifier(net, input_shape=(6,), n_classes=3)
    train(
        model, ds.x_train, ds.y_train, epochs=40, val_fraction=0.0, patience=None,
        show_progress=False,
    )  # fmt: skip
    return model


def test_trained_here_splits_a_pool_into_members_and_non_members() -> None:
    ds = blobs()
    setup = MembershipSetup.trained_here(ds, target_size=50, epochs=5, seed=3, show_progress=False)
    assert setup.n_members == setup.n_non_members == 50
    assert len(setup.x) == 100 and np.array_equal(setup.x_pool, setup.x)
    assert len(setup.x_attacker) == 240 - 100  # every record outside the pool
    assert setup.train_fn is not None and setup.info["source"] == "trained"
    assert setup.model.query_count == 0
    again = MembershipSetup.trained_here(ds, target_size=50, epochs=5, seed=3, show_progress=False)
    assert np.array_equal(again.is_member, setup.is_member)  # same seed, same split
    with pytest.raises(ValueError, match="target_size 200 needs a pool of 400"):
        MembershipSetup.trained_here(ds, target_size=200, epochs=1, show_progress=False)


def test_evaluate_membership_on_a_custom_model_from_its_splits() -> None:
    ds = blobs()
    model = gelu_model(ds)
    setup = MembershipSetup.from_splits(model, ds, n_eval=40, seed=1, name="gelu.pt")
    assert setup.n_members == setup.n_non_members == 40
    assert len(setup.x_attacker) == 120 - 40 and len(setup.x_pool) == 80 + 80
    attacks = membership_attacks(
        ["loss_threshold", "label_only", "lira"],
        {"calibration": "population", "shadow_epochs": 2},
        seed=2,
        n_shadow=2,
    )
    assert attacks["lira"].n_shadow == 2 and attacks["loss_threshold"].seed == 2  # type: ignore[attr-defined]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # LiRA's shadows copy the GELU network: no fallback
        report = evaluate_membership(setup, attacks)
    numbers = report.to_dict()
    assert numbers["n_members"] == 40 and set(numbers["attacks"]) == set(attacks)
    loss = report.outcomes["loss_threshold"]
    # The same as running the attack by hand on the same data.
    fitted = LossThreshold(calibration="population", seed=2).fit(
        model, setup.x_attacker, setup.y_attacker
    )
    by_hand = fitted.infer(model, setup.x, setup.y).metrics(setup.is_member)
    assert loss.metrics is not None and loss.metrics.auc == by_hand.auc
    assert loss.queries == len(setup.x_attacker) + len(setup.x)
    assert set(numbers["roc"]) == set(attacks)
    assert isinstance(attacks["lira"], LiRA)


def test_a_label_only_view_skips_the_score_attacks_with_the_reason() -> None:
    from advml.models.callable import CallableClassifier

    ds = blobs()
    model = gelu_model(ds)
    setup = MembershipSetup.from_splits(model, ds, n_eval=30)

    def labels_only(m: object) -> CallableClassifier:
        assert isinstance(m, TorchClassifier)
        return CallableClassifier(
            lambda x: np.asarray(m.predict(x)),
            input_shape=(6,),
            n_classes=3,
            bounds=(0.0, 1.0),
            returns="labels",
        )

    attacks = membership_attacks(["loss_threshold", "label_only"], {"calibration": "population"})
    report = evaluate_membership(setup, attacks, view=labels_only)
    assert report.outcomes["loss_threshold"].metrics is None
    assert "labels only" in report.outcomes["loss_threshold"].skipped
    assert report.to_dict()["attacks"]["loss_threshold"] == {
        "skipped": "LossThreshold needs the model's scores; this model answers labels only"
    }
    assert report.outcomes["label_only"].metrics is not None
    assert report.target.has_scores is False


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"names": ["nope"]}, "attacks has unknown names"),
        ({"names": ["lira"], "settings": {"bogus": 1}}, r"settings \['bogus'\]"),
        ({"names": ["lira"], "n_shadow": 1}, "n_shadow"),
    ],
)
def test_membership_attacks_name_what_is_wrong(kwargs: dict, named: str) -> None:
    names = kwargs.pop("names")
    with pytest.raises(ValueError, match=named):
        membership_attacks(names, **kwargs)
