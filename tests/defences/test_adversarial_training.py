"""FGSM (random start) and PGD adversarial training on the digits MLP."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor

from advml import registry
from advml.defences.training import FGSMTraining, PGDTraining, StandardTraining, TrainedModel
from advml.errors import UnsupportedModelError
from advml.evasion import PGD
from advml.metrics import accuracy
from advml.models import SklearnClassifier, TorchClassifier
from advml.models.architectures import build

EPS = 0.1  # a moderate L∞ radius for 8x8 digits in [0, 1]


def fresh_mlp(hidden: tuple[int, ...] = (64,)) -> TorchClassifier:
    torch.manual_seed(0)
    module = build("mlp", input_shape=(1, 8, 8), n_classes=10, hidden=hidden)
    return TorchClassifier(module, input_shape=(1, 8, 8), n_classes=10)


def weights(model: TorchClassifier) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in model.module.state_dict().items()}


def same(a: dict[str, Tensor], b: dict[str, Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def pgd_accuracy(model: TorchClassifier, x: np.ndarray, y: np.ndarray) -> float:
    adv = PGD(eps=EPS, steps=20, seed=1).generate(model, x, y).x_adv
    return accuracy(model, adv, y)


@pytest.fixture(scope="module")
def standard(digits_data: Any) -> TrainedModel:
    return StandardTraining(epochs=10).fit(
        fresh_mlp(hidden=(256, 256)), digits_data.x_train, digits_data.y_train, show_progress=False
    )


@pytest.mark.parametrize(
    "defence",
    [FGSMTraining(eps=EPS, epochs=10), PGDTraining(eps=EPS, steps=5, epochs=10)],
    ids=["fgsm_training", "pgd_training"],
)
def test_robust_model_beats_standard_under_pgd(
    defence: Any, standard: TrainedModel, digits_data: Any
) -> None:
    x, y = digits_data.x_test, digits_data.y_test
    trained = defence.fit(
        fresh_mlp(hidden=(256, 256)), digits_data.x_train, digits_data.y_train, show_progress=False
    )
    robust_acc, base_acc = pgd_accuracy(trained.model, x, y), pgd_accuracy(standard.model, x, y)
    # Measured: about 0.76 against 0.50; clean accuracy stays within a few points.
    assert robust_acc >= base_acc + 0.15, (robust_acc, base_acc)
    assert accuracy(trained.model, x, y) >= accuracy(standard.model, x, y) - 0.05
    assert trained.method == defence.name
    assert trained.history.epochs_run == 10 and trained.seconds > 0


def test_registered_under_robust_training() -> None:
    assert {"fgsm_training", "pgd_training", "standard"} <= set(
        registry.available("robust_training")
    )
    pgd = registry.create("robust_training", "pgd_training", eps=0.2, steps=3)
    assert isinstance(pgd, PGDTraining) and pgd.eps == 0.2
    assert registry.schema("robust_training", "fgsm_training")["eps"]["default"] == 0.3


@pytest.mark.parametrize(
    ("cls", "setting", "value", "error"),
    [
        (PGDTraining, "eps", -0.1, ValueError),
        (PGDTraining, "steps", 0, ValueError),
        (PGDTraining, "step_size", 0.0, ValueError),
        (PGDTraining, "norm", "1", ValueError),
        (PGDTraining, "epochs", 0, ValueError),
        (PGDTraining, "batch_size", 2.5, TypeError),
        (PGDTraining, "lr", 0.0, ValueError),
        (PGDTraining, "optimizer", "rmsprop", ValueError),
        (PGDTraining, "weight_decay", -1.0, ValueError),
        (PGDTraining, "warmup_epochs", -1, ValueError),
        (PGDTraining, "init", "random", ValueError),
        (PGDTraining, "seed", -3, ValueError),
        (FGSMTraining, "eps", "0.3", TypeError),
        (FGSMTraining, "step_size", -1.0, ValueError),
    ],
)
def test_bad_settings_name_the_parameter(
    cls: type, setting: str, value: Any, error: type[Exception]
) -> None:
    with pytest.raises(error, match=setting):
        cls(**{setting: value})


def test_warmup_longer_than_training_is_refused() -> None:
    with pytest.raises(ValueError, match="warmup_epochs"):
        PGDTraining(epochs=3, warmup_epochs=4)


def test_same_seed_same_model_other_seed_other_model(digits_data: Any) -> None:
    x, y = digits_data.x_train[:300], digits_data.y_train[:300]
    runs = []
    for seed in (3, 3, 4):
        torch.manual_seed(100 + seed)  # the global state must not matter
        trained = FGSMTraining(eps=EPS, epochs=2, seed=seed).fit(
            fresh_mlp(), x, y, show_progress=False
        )
        runs.append(weights(trained.model))
    assert same(runs[0], runs[1])
    assert not same(runs[0], runs[2])


def test_callers_model_and_data_are_left_alone(digits_data: Any) -> None:
    model = fresh_mlp()
    model.module.eval()
    before = weights(model)
    x, y = digits_data.x_train[:200].copy(), digits_data.y_train[:200].copy()
    x0, y0 = x.copy(), y.copy()
    trained = PGDTraining(eps=EPS, steps=2, epochs=1).fit(model, x, y, show_progress=False)
    assert trained.model is not model and trained.model.module is not model.module
    assert same(before, weights(model))
    assert not model.module.training
    assert np.array_equal(x, x0) and np.array_equal(y, y0)
    assert not trained.model.module.training  # returned ready for inference
    assert trained.model.query_count == 0
    assert all(p.grad is None for p in model.module.parameters())


def test_inplace_trains_the_given_model(digits_data: Any) -> None:
    model = fresh_mlp()
    before = weights(model)
    trained = FGSMTraining(eps=EPS, epochs=1).fit(
        model,
        digits_data.x_train[:200],
        digits_data.y_train[:200],
        inplace=True,
        show_progress=False,
    )
    assert trained.model is model
    assert not same(before, weights(model))


def test_init_model_fine_tunes_the_given_weights(
    digits_mlp: TorchClassifier, digits_data: Any
) -> None:
    x, y = digits_data.x_train[:200], digits_data.y_train[:200]
    tuned = FGSMTraining(eps=EPS, epochs=1, lr=1e-6, init="model").fit(
        digits_mlp, x, y, show_progress=False
    )
    scratch = FGSMTraining(eps=EPS, epochs=1, lr=1e-6).fit(digits_mlp, x, y, show_progress=False)
    x_test, y_test = digits_data.x_test, digits_data.y_test
    # A negligible learning rate keeps the given weights (and their accuracy) with
    # init="model"; init="scratch" starts from new random weights.
    assert accuracy(tuned.model, x_test, y_test) == pytest.approx(
        accuracy(digits_mlp, x_test, y_test), abs=0.02
    )
    assert accuracy(scratch.model, x_test, y_test) < 0.5


def test_eps_warmup_schedule_and_step_scaling(digits_data: Any) -> None:
    x, y = digits_data.x_train[:100], digits_data.y_train[:100]
    trained = PGDTraining(eps=0.2, steps=2, epochs=4, warmup_epochs=2).fit(
        fresh_mlp(), x, y, show_progress=False
    )
    assert trained.eps_schedule == pytest.approx((0.1, 0.2, 0.2, 0.2))
    assert PGDTraining(eps=0.2, step_size=0.05)._scaled_step(0.1, default=1.0) == pytest.approx(
        0.025
    )
    assert StandardTraining(epochs=1).fit(fresh_mlp(), x, y, show_progress=False).eps_schedule == ()


def test_the_training_loop_calls_on_epoch_before_each_epoch(digits_data: Any) -> None:
    from advml.models import train

    seen: list[int] = []
    train(
        fresh_mlp(),
        digits_data.x_train[:64],
        digits_data.y_train[:64],
        epochs=3,
        val_fraction=0,
        on_epoch=seen.append,
        show_progress=False,
    )
    assert seen == [1, 2, 3]


def test_models_without_a_torch_network_are_refused(digits_data: Any) -> None:
    from sklearn.linear_model import LogisticRegression

    x = digits_data.x_train[:60].reshape(60, -1)
    est = LogisticRegression(max_iter=1000).fit(x, digits_data.y_train[:60])
    model = SklearnClassifier(est, bounds=(0, 1))
    with pytest.raises(UnsupportedModelError, match="TorchClassifier"):
        PGDTraining().fit(model, x, digits_data.y_train[:60])  # type: ignore[arg-type]


def test_bad_data_names_the_argument(digits_data: Any) -> None:
    with pytest.raises(ValueError, match="x"):
        PGDTraining(epochs=1).fit(
            fresh_mlp(), digits_data.x_train[:10] * 3, digits_data.y_train[:10]
        )
    with pytest.raises(ValueError, match="y"):
        PGDTraining(epochs=1).fit(fresh_mlp(), digits_data.x_train[:10], digits_data.y_train[:9])
