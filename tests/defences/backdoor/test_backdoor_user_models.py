"""Backdoor defences on networks a user brings: defined here, outside advml, and wrapped
in TorchClassifier. A CNN of conv-BatchNorm-ReLU blocks and a GELU MLP, trained on the
8x8 digits with 10% BadNets poisoning (2x2 patch in the bottom-right corner, label 0)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from _user_models import bn_cnn, gelu_mlp

from advml.defences.backdoor import (
    ActivationClustering,
    FinePruning,
    FinePruningResult,
    Pruning,
    bake_masks,
    default_layer,
    run_defence,
)
from advml.defences.backdoor.activation_clustering import clustering_layers
from advml.defences.backdoor.fine_pruning import LR_GRID
from advml.defences.backdoor.pruning import RepairCheck
from advml.models import TorchClassifier, train
from advml.poisoning import BadNets, PatternTrigger, PoisonedData

TRIGGER = PatternTrigger(size=2, margin=0, shape="square")


@dataclass(frozen=True)
class UserBackdoor:
    model: TorchClassifier
    poisoned: PoisonedData
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def backdoored(digits_data: object, arch: str, seed: int = 0) -> UserBackdoor:
    """Train ``arch`` ("cnn" or "mlp") on digits poisoned with BadNets (seeded)."""
    d = digits_data
    poisoned = BadNets(trigger=TRIGGER, fraction=0.1, target=0, seed=seed).poison(
        d.x_train,  # type: ignore[attr-defined]
        d.y_train,  # type: ignore[attr-defined]
        n_classes=10,
    )
    torch.manual_seed(seed)
    net = bn_cnn() if arch == "cnn" else gelu_mlp()
    model = TorchClassifier(net, input_shape=(1, 8, 8), n_classes=10)
    train(
        model,
        poisoned.x,
        poisoned.y,
        epochs=15,
        seed=seed,
        patience=None,
        val_fraction=0.0,
        show_progress=False,
    )
    half = len(d.x_test) // 2  # type: ignore[attr-defined]
    return UserBackdoor(
        model,
        poisoned,
        d.x_test[:half],  # type: ignore[attr-defined]
        d.y_test[:half],  # type: ignore[attr-defined]
        d.x_test[half:],  # type: ignore[attr-defined]
        d.y_test[half:],  # type: ignore[attr-defined]
    )


@pytest.fixture(scope="module")
def user_cnn(digits_data: object) -> UserBackdoor:
    return backdoored(digits_data, "cnn")


@pytest.fixture(scope="module")
def user_mlp(digits_data: object) -> UserBackdoor:
    return backdoored(digits_data, "mlp")


def test_pruning_a_batchnorm_block_zeroes_the_unit_downstream(user_cnn: UserBackdoor) -> None:
    b = user_cnn
    # The last convolution's units are taken where they leave the block, after bn2 and
    # relu2: zeroed at conv2, bn2 would output its shift instead of 0.
    assert default_layer(b.model) == "relu2"
    assert Pruning(layer="conv2").repair(b.model, b.x_val, b.y_val).layer == "relu2"
    result = Pruning().repair(b.model, b.x_val, b.y_val)
    assert result.layer == "relu2" and result.order.size == 24 and result.n_pruned > 0
    # Units are ranked by their mean post-activation output on the clean data.
    with b.model.evaluating():
        acts = np.asarray(b.model.activations(b.x_val, "relu2"))
    means = acts.mean(axis=(0, 2, 3))
    np.testing.assert_allclose(result.mean_activation, means, rtol=1e-5, atol=1e-7)
    pruned = result.order[: result.n_pruned]
    assert set(pruned) == set(np.argsort(means, kind="stable")[: result.n_pruned])
    # Every pruned channel is exactly 0 after the block and in the flattened features
    # the next layer reads, for every input (clean or triggered).
    x = np.concatenate([b.x_test, TRIGGER.apply(b.x_test)])
    model = result.model
    with model.evaluating():
        block = np.asarray(model.activations(x, "relu2"))
        flat = np.asarray(model.activations(x, "flat")).reshape(block.shape)
    assert (block[:, pruned] == 0).all() and (flat[:, pruned] == 0).all()
    # Masking every unit leaves nothing at all downstream.
    model.set_unit_mask("relu2", np.zeros(24, dtype=bool))
    with model.evaluating():
        assert not np.asarray(model.activations(x, "flat")).any()


def test_baked_batchnorm_pruning_behaves_like_the_mask(user_cnn: UserBackdoor) -> None:
    b = user_cnn
    result = Pruning().repair(b.model, b.x_val, b.y_val)
    baked = bake_masks(result.model)
    assert all(baked.unit_mask(layer) is None for layer in baked.layer_names)
    pruned = result.order[: result.n_pruned]
    # The mask on relu2 is written into bn2 (scale and shift 0): exactly 0 after relu2.
    assert not baked.module.bn2.weight[pruned].any() and not baked.module.bn2.bias[pruned].any()
    x = np.concatenate([b.x_test, TRIGGER.apply(b.x_test)])
    with baked.evaluating():
        assert (np.asarray(baked.activations(x, "relu2"))[:, pruned] == 0).all()
    with baked.evaluating(), result.model.evaluating():
        p_baked, p_masked = baked.predict_proba(x), result.model.predict_proba(x)
    np.testing.assert_allclose(np.asarray(p_baked), np.asarray(p_masked), rtol=1e-5, atol=1e-6)


def test_pruning_the_gelu_mlp_masks_after_the_activation(user_mlp: UserBackdoor) -> None:
    b = user_mlp
    assert default_layer(b.model) == "act2"
    result = Pruning().repair(b.model, b.x_val, b.y_val)
    pruned = result.order[: result.n_pruned]
    with result.model.evaluating():
        acts = np.asarray(result.model.activations(b.x_test, "act2"))
    assert result.n_pruned > 0 and (acts[:, pruned] == 0).all()


def _check_search(result: FinePruningResult, n_val: int) -> None:
    """The rate search's rows obey its rule (smallest rate up, stop at the first miss)."""
    rows = result.lr_search
    assert [r["lr"] for r in rows] == sorted(LR_GRID)[: len(rows)]
    reference = rows[0]["reference"]
    assert all(r["reference"] == reference for r in rows)
    # The reference is the best held-out accuracy of the rates scored in full.
    full = [r for r in rows if r["held_out"] == n_val]
    assert max(r["accuracy"] for r in full) == reference
    # A rate keeps accuracy when it falls less than three binomial standard errors.
    bar = reference - 2 * np.sqrt(reference * (1 - reference) / n_val)
    for r in rows:
        assert bool(r["accepted"]) == (r["held_out"] == n_val and r["accuracy"] >= bar - 1e-9)
    assert result.lr == max(r["lr"] for r in rows if r["accepted"])
    # Either the whole grid kept accuracy, or the search stopped at the first rate
    # that did not.
    assert len(rows) == len(LR_GRID) or not rows[-1]["accepted"]


def test_fine_pruning_keeps_clean_accuracy_and_repairs_the_bn_cnn(user_cnn: UserBackdoor) -> None:
    b = user_cnn
    trig, target = TRIGGER.apply(b.x_test), np.zeros_like(b.y_test)
    before = RepairCheck.measure(b.model, b.x_test, b.y_test, trig, target)
    assert before.attack_success >= 0.95
    result = FinePruning().repair(b.model, b.x_val, b.y_val)
    _check_search(result, len(b.y_val))
    # Measured (seed 0): held-out accuracy 0.972 / 0.978 / 0.944 for 1e-3 / 3e-3 / 1e-2:
    # 1e-2 falls 3.4 points, more than three standard errors (3.3), so 3e-3 (the old
    # 10-point rule took 3e-2: 8.3 points lost on test data).
    assert result.lr == 3e-3
    after = result.check(b.x_test, b.y_test, trig, target)
    # Measured: attack success 1.00 -> 0.006, clean accuracy 0.989 -> 0.967.
    assert after.attack_success <= 0.05 and not after.repair_failed
    assert after.clean_accuracy >= before.clean_accuracy - 0.03


def test_fine_pruning_keeps_clean_accuracy_and_says_the_mlp_repair_failed(
    user_mlp: UserBackdoor,
) -> None:
    b = user_mlp
    trig, target = TRIGGER.apply(b.x_test), np.zeros_like(b.y_test)
    before = RepairCheck.measure(b.model, b.x_test, b.y_test, trig, target)
    assert before.attack_success >= 0.95 and before.repair_failed
    result = FinePruning().repair(b.model, b.x_val, b.y_val)
    _check_search(result, len(b.y_val))
    # Only 3e-2 removes this backdoor, and on held-out folds it costs 6-9 points of
    # clean accuracy (measured seeds 0-3; 1e-2 already 5): the rule keeps accuracy.
    assert result.lr < 3e-2
    # 180 clean inputs in batches of 32: 6 steps an epoch, 17 epochs for 100 steps.
    assert result.epochs == 17
    after = result.check(b.x_test, b.y_test, trig, target)
    # Measured (seed 0): lr 3e-3, attack success 0.81, clean accuracy 0.956 -> 0.944.
    # The backdoor survives and the check says so, instead of a silent weak result.
    assert after.repair_failed and after.attack_success > after.max_success == 0.2
    assert after.clean_accuracy >= before.clean_accuracy - 0.03
    # The owner who accepts the trade gives the rate: 3e-2 repairs (measured 0.08 at a
    # 1.7-point clean cost on this split, which the held-out folds could not promise).
    strong = FinePruning(lr=3e-2).repair(b.model, b.x_val, b.y_val)
    assert strong.lr == 3e-2 and strong.lr_search == ()
    assert not strong.check(b.x_test, b.y_test, trig, target).repair_failed


def test_fine_pruning_bar_is_three_standard_errors_or_3_points_unless_a_tolerance_is_given() -> (
    None
):
    # 3 sqrt(p (1 - p) / n): 0.978 on 180 inputs -> 3.28 points; 0.83 on 250 -> 7.13;
    # 0.964 on 500 (mnist-5k) -> 2.50, below the 3-point floor, which 1e-2's fall of
    # 2.6 on mnist-5k's folds passes.
    assert FinePruning()._bar(0.978, 180) == pytest.approx(0.978 - 0.032799, abs=1e-6)
    assert FinePruning()._bar(0.964, 500) == pytest.approx(0.964 - 0.03, abs=1e-9)
    assert FinePruning()._bar(0.83, 250) == pytest.approx(0.83 - 0.071271, abs=1e-6)
    assert FinePruning()._bar(1.0, 180) == pytest.approx(0.97)  # no spread at 100%: the floor
    assert FinePruning(lr_tolerance=0.05)._bar(0.9, 180) == pytest.approx(0.85)


def test_fine_pruning_rejects_bad_rate_settings() -> None:
    for kwargs, name in [
        ({"lr_grid": ()}, "lr_grid"),
        ({"lr_grid": (1e-2, -1.0)}, "lr_grid"),
        ({"lr_tolerance": 2.0}, "lr_tolerance"),
        ({"folds": 1}, "folds"),
        ({"min_steps": 0}, "min_steps"),
        ({"lr": 0.0}, "lr"),
    ]:
        with pytest.raises(ValueError, match=name):
            FinePruning(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("arch", "layers", "min_f1"),
    [
        ("cnn", ["relu2", "relu3"], 0.99),
        ("mlp", ["act1", "act2"], 0.95),
    ],
)
def test_activation_clustering_flags_the_target_class_over_the_whole_training_set(
    request: pytest.FixtureRequest, arch: str, layers: list[str], min_f1: float
) -> None:
    b: UserBackdoor = request.getfixturevalue(f"user_{arch}")
    result = ActivationClustering().detect(b.model, b.poisoned.x, b.poisoned.y)
    assert clustering_layers(b.model) == layers
    # Measured (seed 0): F1 1.000 on the CNN, 0.979 on the MLP; no other class flagged
    # (before: the MLP's class 9 too, 0.896; before issue 11: 0.67 and 0.36).
    assert result.flagged_classes == (0,)
    assert result.score(b.poisoned.indices)["f1"] >= min_f1
    # Every class has its decision, the reason and the layer that decided; the clean
    # ones name the relative-spread test they failed at their most suspect layer.
    for info in result.per_class:
        assert info["poisoned"] == (info["class"] == 0)
        assert isinstance(info["reason"], str) and info["reason"]
        assert info["layer"] in layers and set(info["layers"]) == set(layers)
        assert (
            info["relative_spread"]
            == max(info["layers"][name]["relative_spread"] for name in layers)
            or info["poisoned"]
        )
    target = result.per_class[0]
    # The poison (relabelled from nine classes) is about three times as spread as the
    # class's own samples, far beyond any clean class's split.
    assert target["spread_ratio"] > 2.0
    assert target["relative_spread"] >= ActivationClustering().min_relative_spread
    clean = [i for i in result.per_class if i["class"] != 0]
    assert all("robust deviations" in i["reason"] for i in clean)


@pytest.mark.parametrize("arch", ["cnn", "mlp"])
def test_activation_clustering_flags_nothing_on_a_clean_user_model(
    digits_data: object, arch: str
) -> None:
    d = digits_data
    x, y = d.x_train, d.y_train  # type: ignore[attr-defined]
    torch.manual_seed(0)
    model = TorchClassifier(bn_cnn() if arch == "cnn" else gelu_mlp(), input_shape=(1, 8, 8),
                            n_classes=10)  # fmt: skip
    train(model, x, y, epochs=15, seed=0, patience=None, val_fraction=0.0, show_progress=False)
    result = ActivationClustering().detect(model, x, y)
    # Measured (seed 0): largest relative spread 1.6 (CNN) and 3.6 (MLP), far below 8;
    # the silhouette rule before flagged class 1 (CNN) and class 9 (MLP) here.
    assert result.flagged_classes == () and not result.flagged.any()


def test_activation_clustering_single_source_poison_needs_the_silhouette_test(
    digits_data: object,
) -> None:
    # Poison from one source class (half the 3s, relabelled 0) is no more spread than
    # the 0s themselves: the default (spread) test misses it, the opt-in relative
    # silhouette test finds it. Measured (seed 0): F1 0 by default, 1.00 with 3.
    d = digits_data
    poisoned = BadNets(trigger=TRIGGER, fraction=0.5, source=3, target=0, seed=0).poison(
        d.x_train,  # type: ignore[attr-defined]
        d.y_train,  # type: ignore[attr-defined]
        n_classes=10,
    )
    torch.manual_seed(0)
    model = TorchClassifier(bn_cnn(), input_shape=(1, 8, 8), n_classes=10)
    train(model, poisoned.x, poisoned.y, epochs=15, seed=0, patience=None,
          val_fraction=0.0, show_progress=False)  # fmt: skip
    default = ActivationClustering().detect(model, poisoned.x, poisoned.y)
    assert default.flagged_classes == ()
    assert default.per_class[0]["relative_spread"] < ActivationClustering().min_relative_spread
    loose = ActivationClustering(min_relative_silhouette=3.0).detect(model, poisoned.x, poisoned.y)
    assert loose.flagged_classes == (0,)
    assert loose.score(poisoned.indices)["f1"] >= 0.95
    assert loose.per_class[0]["relative_silhouette"] >= 3.0
    with pytest.raises(ValueError, match="min_relative_silhouette"):
        ActivationClustering(min_relative_silhouette=-1.0)


def test_run_defence_measures_and_says_when_the_repair_failed(user_mlp: UserBackdoor) -> None:
    b = user_mlp
    run = run_defence(
        FinePruning(lr=1e-3, epochs=1), b.model, b.x_val, b.y_val, b.x_test, b.y_test,
        backdoor=b.poisoned,
    )  # fmt: skip
    n = run.numbers
    assert n["before"]["attack_success"] >= 0.95 and n["repair_failed"] is True
    assert n["after"]["attack_success"] > n["max_success"] == 0.2
    assert run.repaired is not None and "repair failed" in "\n".join(run.lines())
    screen = run_defence(
        ActivationClustering(), b.model, b.x_val, b.y_val, b.x_test, b.y_test,
        backdoor=b.poisoned,
    )  # fmt: skip
    assert screen.repaired is None and screen.numbers["flagged_classes"] == [0]
    assert screen.numbers["f1"] >= 0.95
    with pytest.raises(ValueError, match="--data"):
        run_defence(ActivationClustering(), b.model, b.x_val, b.y_val, b.x_test, b.y_test)
