"""The shared training loop: seeding, history, early stopping, params=, loss_fn=, checks."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor
from torch.nn import functional as F

from advml.models import History, TorchClassifier, TrainingRecipe, train, validation_split
from advml.models.architectures import mlp


def small_model(seed: int = 0, dropout: float = 0.0) -> TorchClassifier:
    torch.manual_seed(seed)
    module = mlp(input_shape=(1, 8, 8), n_classes=10, hidden=(32,), dropout=dropout)
    return TorchClassifier(module, input_shape=(1, 8, 8), n_classes=10)


def weights(model: TorchClassifier) -> dict[str, Tensor]:
    return {k: v.clone() for k, v in model.module.state_dict().items()}


def val_loss(model: TorchClassifier, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float(F.cross_entropy(model.forward(torch.as_tensor(x)), torch.as_tensor(y)))


def test_same_seed_same_weights(digits_data: Any) -> None:
    x, y = digits_data.x_train, digits_data.y_train
    runs = []
    for run in range(2):
        model = small_model(dropout=0.5)  # dropout masks must be seeded too
        torch.manual_seed(100 + run)  # whatever the global state, only `seed` counts
        train(model, x, y, epochs=2, seed=7, show_progress=False)
        runs.append(weights(model))
    assert runs[0].keys() == runs[1].keys()
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    other = small_model(dropout=0.5)
    train(other, x, y, epochs=2, seed=8, show_progress=False)
    assert not torch.equal(weights(other)["fc1.weight"], runs[0]["fc1.weight"])


def test_global_random_state_is_left_alone(digits_data: Any) -> None:
    model = small_model(dropout=0.5)
    state = torch.get_rng_state()
    train(
        model,
        digits_data.x_train[:200],
        digits_data.y_train[:200],
        epochs=1,
        seed=1,
        show_progress=False,
    )
    assert torch.equal(torch.get_rng_state(), state)


def test_history_and_learning(digits_data: Any) -> None:
    model = small_model()
    model.module.train()
    history = train(
        model,
        digits_data.x_train,
        digits_data.y_train,
        epochs=4,
        patience=None,
        show_progress=False,
    )
    assert isinstance(history, History)
    assert history.epochs_run == 4
    for series in (
        history.train_loss,
        history.train_accuracy,
        history.val_loss,
        history.val_accuracy,
    ):
        assert isinstance(series, tuple) and len(series) == 4
        assert all(math.isfinite(v) for v in series)
    assert all(0 <= a <= 1 for a in history.train_accuracy + history.val_accuracy)
    assert history.train_loss[-1] < history.train_loss[0]
    assert history.val_accuracy[-1] > max(0.5, history.val_accuracy[0])  # chance is 0.1
    assert history.best_epoch == int(np.argmin(history.val_loss)) + 1
    assert not history.stopped_early
    assert history.seconds >= 0
    assert not model.module.training  # left in eval mode
    assert model.query_count == 0  # training is not querying


def test_without_validation_data_every_epoch_runs(digits_data: Any) -> None:
    model = small_model()
    history = train(
        model,
        digits_data.x_train,
        digits_data.y_train,
        epochs=3,
        val_fraction=0.0,
        patience=1,
        show_progress=False,
    )
    assert history.epochs_run == 3 and len(history.train_loss) == 3
    assert history.val_loss == () and history.val_accuracy == ()
    assert history.best_epoch == 3 and not history.stopped_early


def test_val_fraction_holds_out_that_share(digits_data: Any) -> None:
    seen: list[int] = []

    def counting_loss(model: TorchClassifier, xb: Tensor, yb: Tensor) -> Tensor:
        seen.append(xb.shape[0])
        return F.cross_entropy(model.forward(xb), yb)

    x, y = digits_data.x_train[:200], digits_data.y_train[:200]
    train(
        small_model(), x, y, epochs=1, val_fraction=0.25, loss_fn=counting_loss, show_progress=False
    )
    assert sum(seen) == 150


def test_early_stopping_restores_the_best_weights(digits_data: Any) -> None:
    # Random labels: the network can only memorise the training set, so the loss on fresh
    # (equally random) validation labels rises once it starts to.
    rng = np.random.default_rng(0)
    x, x_val = digits_data.x_train, digits_data.x_test
    y, y_val = rng.integers(0, 10, len(x)), rng.integers(0, 10, len(x_val))
    model = small_model()
    history = train(
        model,
        x,
        y,
        x_val=x_val,
        y_val=y_val,
        epochs=40,
        lr=1e-2,
        patience=1,
        show_progress=False,
    )
    assert history.stopped_early
    assert history.epochs_run < 40
    assert history.epochs_run == history.best_epoch + 1  # patience 1: one epoch worse
    assert len(history.val_loss) == history.epochs_run
    assert history.val_loss[-1] >= min(history.val_loss)
    assert val_loss(model, x_val, y_val) == pytest.approx(min(history.val_loss), abs=1e-5)


def test_patience_none_still_restores_the_best_weights(digits_data: Any) -> None:
    rng = np.random.default_rng(1)
    x, x_val = digits_data.x_train[:400], digits_data.x_test
    y, y_val = rng.integers(0, 10, len(x)), rng.integers(0, 10, len(x_val))
    model = small_model()
    history = train(
        model,
        x,
        y,
        x_val=x_val,
        y_val=y_val,
        epochs=8,
        lr=1e-2,
        patience=None,
        show_progress=False,
    )
    assert history.epochs_run == 8 and not history.stopped_early
    assert history.best_epoch < 8  # the loss rose, so the last epoch is not the best
    assert val_loss(model, x_val, y_val) == pytest.approx(min(history.val_loss), abs=1e-5)


def test_params_trains_only_those(digits_data: Any) -> None:
    model = small_model()
    before = weights(model)
    out = list(model.module.out.parameters())
    train(
        model, digits_data.x_train, digits_data.y_train, epochs=2, params=out, show_progress=False
    )
    after = weights(model)
    assert torch.equal(after["fc1.weight"], before["fc1.weight"])
    assert torch.equal(after["fc1.bias"], before["fc1.bias"])
    assert not torch.equal(after["out.weight"], before["out.weight"])
    assert not torch.equal(after["out.bias"], before["out.bias"])


def test_custom_loss_is_used(digits_data: Any) -> None:
    calls: list[tuple[bool, int]] = []

    def always_zero(model: TorchClassifier, xb: Tensor, yb: Tensor) -> Tensor:
        # Ignores the labels: teaches the network to answer 0 whatever it sees.
        calls.append((model.module.training, xb.shape[0]))
        return F.cross_entropy(model.forward(xb), torch.zeros_like(yb))

    x, y = digits_data.x_train, digits_data.y_train
    model = small_model()
    history = train(
        model,
        x,
        y,
        epochs=2,
        batch_size=100,
        val_fraction=0.0,
        loss_fn=always_zero,
        show_progress=False,
    )
    assert len(calls) == 2 * math.ceil(len(x) / 100)
    assert all(training for training, _ in calls)  # the loss sees the model in train mode
    assert sum(n for _, n in calls) == 2 * len(x)
    assert (model.predict(digits_data.x_test) == 0).all()
    # The history measures the true labels, which the network has stopped predicting.
    assert history.train_accuracy[-1] == pytest.approx((y == 0).mean(), abs=0.01)


def test_sgd_optimizer_learns(digits_data: Any) -> None:
    history = train(
        small_model(),
        digits_data.x_train,
        digits_data.y_train,
        epochs=3,
        optimizer="sgd",
        lr=0.05,
        show_progress=False,
    )
    assert history.train_loss[-1] < history.train_loss[0]


@pytest.mark.parametrize(
    ("settings", "culprit"),
    [
        ({"epochs": 0}, "epochs"),
        ({"epochs": 2.5}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": 0.0}, "lr"),
        ({"lr": -1e-3}, "lr"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"val_fraction": -0.1}, "val_fraction"),
        ({"patience": 0}, "patience"),
        ({"x_val": np.zeros((2, 1, 8, 8), np.float32)}, "y_val"),
        ({"y_val": np.zeros(2, int)}, "x_val"),
        ({"x_val": np.zeros((2, 64), np.float32), "y_val": np.zeros(2, int)}, "x_val"),
        ({"x_val": np.zeros((2, 1, 8, 8), np.float32), "y_val": np.array([0, 10])}, "y_val"),
        ({"x_val": np.zeros((2, 1, 8, 8), np.float32), "y_val": np.zeros(3, int)}, "y_val"),
    ],
)
def test_bad_settings_raise_naming_them(
    digits_data: Any, settings: dict[str, Any], culprit: str
) -> None:
    model = small_model()
    before = weights(model)
    with pytest.raises((TypeError, ValueError), match=culprit):
        train(
            model,
            digits_data.x_train[:50],
            digits_data.y_train[:50],
            show_progress=False,
            **settings,
        )
    assert all(torch.equal(before[k], v) for k, v in weights(model).items())


@pytest.mark.parametrize(
    "y",
    [
        np.full(50, 10),
        np.full(50, -1),
        np.full(50, 0.5),
        np.zeros((50, 10)),
        np.zeros(49, int),
    ],
)
def test_bad_labels_raise_naming_y(digits_data: Any, y: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"\by\b"):
        train(small_model(), digits_data.x_train[:50], y, show_progress=False)


def test_bad_inputs_raise_naming_x(digits_data: Any) -> None:
    with pytest.raises(ValueError, match=r"\bx\b"):
        train(
            small_model(),
            digits_data.x_train[:50, 0],
            digits_data.y_train[:50],
            show_progress=False,
        )


def test_val_fraction_that_leaves_nothing_to_train_on(digits_data: Any) -> None:
    with pytest.raises(ValueError, match="val_fraction"):
        train(
            small_model(),
            digits_data.x_train[:2],
            digits_data.y_train[:2],
            val_fraction=0.9,
            show_progress=False,
        )


def test_validation_split_partitions_the_records() -> None:
    fit, val = validation_split(50, 0.1, seed=3)
    assert len(val) == 5 and len(fit) == 45
    np.testing.assert_array_equal(np.sort(np.concatenate([fit, val])), np.arange(50))
    np.testing.assert_array_equal(val, validation_split(50, 0.1, seed=3)[1])
    assert not np.array_equal(val, validation_split(50, 0.1, seed=4)[1])
    assert len(validation_split(5, 0.01, seed=0)[1]) == 1  # at least one record
    with pytest.raises(ValueError, match="val_fraction"):
        validation_split(2, 0.9, seed=0)
    with pytest.raises(ValueError, match="val_fraction"):
        validation_split(10, 0.0, seed=0)


def test_a_recipe_is_the_same_call_as_its_keywords(digits_data: Any) -> None:
    x, y = digits_data.x_train, digits_data.y_train
    settings: dict[str, Any] = dict(
        epochs=3, batch_size=32, lr=0.05, optimizer="sgd", momentum=0.8, weight_decay=1e-4,
        val_fraction=0.2, patience=1, schedule="cosine",
    )  # fmt: skip
    by_keywords, by_recipe = small_model(dropout=0.3), small_model(dropout=0.3)
    h1 = train(by_keywords, x, y, seed=5, show_progress=False, **settings)
    h2 = train(by_recipe, x, y, seed=5, show_progress=False, recipe=TrainingRecipe(**settings))
    assert h1.train_loss == h2.train_loss and h1.best_epoch == h2.best_epoch
    w1, w2 = weights(by_keywords), weights(by_recipe)
    assert all(torch.equal(w1[k], w2[k]) for k in w1)


def test_the_loop_is_plain_minibatch_training(digits_data: Any) -> None:
    """Bit for bit what a plain loop does (seeded shuffle, cosine SGD, dropout): the loop's
    parts (split, epoch, early stopping) change nothing of the arithmetic."""
    x, y = digits_data.x_train[:400], digits_data.y_train[:400]
    model = small_model(dropout=0.3)
    train(
        model, x, y, epochs=3, batch_size=50, lr=0.1, optimizer="sgd", schedule="cosine",
        val_fraction=0.0, seed=11, show_progress=False,
    )  # fmt: skip

    plain = small_model(dropout=0.3)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    opt = torch.optim.SGD(plain.module.parameters(), lr=0.1, momentum=0.9)
    gen, step, total = torch.Generator().manual_seed(11), 0, 3 * 8
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(11)
        for _ in range(3):
            plain.module.train()
            order = torch.randperm(400, generator=gen)
            for i in range(0, 400, 50):
                idx = order[i : i + 50]
                opt.zero_grad()
                loss = F.cross_entropy(plain.forward(xt[idx]), yt[idx])
                loss.backward()
                for group in opt.param_groups:  # Loshchilov & Hutter 2017, eq. 5
                    group["lr"] = 0.1 * 0.5 * (1 + math.cos(math.pi * step / total))
                step += 1
                opt.step()
    w1, w2 = weights(model), weights(plain)
    assert all(torch.equal(w1[k], w2[k]) for k in w1)


def test_a_recipe_and_keywords_together_are_refused(digits_data: Any) -> None:
    with pytest.raises(ValueError, match="either as recipe=TrainingRecipe"):
        train(
            small_model(), digits_data.x_train, digits_data.y_train, epochs=2,
            recipe=TrainingRecipe(epochs=3), show_progress=False,
        )  # fmt: skip
    with pytest.raises(ValueError, match="epochs"):
        TrainingRecipe(epochs=0)
