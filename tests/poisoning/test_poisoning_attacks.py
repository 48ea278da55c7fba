"""BadNets, clean-label and label flipping on plain arrays: what each changes, exactly."""

from __future__ import annotations

import numpy as np
import pytest

from advml.poisoning import BadNets, CleanLabel, LabelFlip, PatternTrigger, PixelTrigger


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.random((200, 1, 8, 8)).astype(np.float32)
    y = np.repeat(np.arange(10), 20)
    return x, y


def test_badnets_all_to_one(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    result = BadNets(fraction=0.1, target=3, seed=0).poison(x, y)
    assert result.n_poisoned == 20 and result.fraction == pytest.approx(0.1)
    assert np.all(np.diff(result.indices) > 0)
    assert not np.any(y[result.indices] == 3)  # target-class samples would change nothing
    np.testing.assert_array_equal(result.y[result.indices], 3)
    np.testing.assert_array_equal(
        result.x[result.indices], PatternTrigger().apply(x[result.indices])
    )
    clean = ~result.is_poisoned
    np.testing.assert_array_equal(result.x[clean], x[clean])
    np.testing.assert_array_equal(result.y[clean], y[clean])
    np.testing.assert_array_equal(result.y_original, y)
    np.testing.assert_array_equal(result.backdoor_labels(np.array([0, 5])), [3, 3])
    assert result.target == 3 and result.mode == "all-to-one" and result.n_classes == 10


def test_badnets_all_to_all_and_source(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    result = BadNets(fraction=0.5, mode="all-to-all", source=9, trigger="pixel").poison(x, y)
    assert result.n_poisoned == 10
    assert np.all(y[result.indices] == 9)
    np.testing.assert_array_equal(result.y[result.indices], 0)  # 9 -> 0 modulo 10
    np.testing.assert_array_equal(result.backdoor_labels(np.array([0, 9])), [1, 0])
    assert result.target is None
    assert isinstance(result.trigger, PixelTrigger)


def test_badnets_seeds(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    a = BadNets(seed=1).poison(x, y)
    b = BadNets(seed=1).poison(x, y)
    c = BadNets(seed=2).poison(x, y)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.indices, c.indices)


def test_badnets_checks_against_the_data(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    with pytest.raises(ValueError, match="target=12"):
        BadNets(target=12).poison(x, y)
    with pytest.raises(ValueError, match="fraction"):
        BadNets(fraction=0.001).poison(x, y)
    with pytest.raises(ValueError, match="source and target"):
        BadNets(source=2, target=2)
    with pytest.raises(ValueError, match="one label per sample"):
        BadNets().poison(x, y[:3])
    with pytest.raises(ValueError, match="trigger"):
        BadNets(trigger="nope")


def test_integer_images_come_back_as_float32() -> None:
    x = np.zeros((20, 1, 8, 8), dtype=np.uint8)
    y = np.arange(20) % 2
    result = BadNets(fraction=0.2, target=0).poison(x, y, bounds=(0, 255))
    assert result.x.dtype == np.float32
    assert result.x[result.indices].max() == 255.0


def test_clean_label_keeps_every_label(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    result = CleanLabel(fraction=0.5, target=4).poison(x, y)
    np.testing.assert_array_equal(result.y, y)
    assert result.n_poisoned == 10 and np.all(y[result.indices] == 4)
    assert not np.array_equal(result.x[result.indices], x[result.indices])


def test_label_flip_random_changes_every_chosen_label(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    result = LabelFlip(fraction=0.3).poison(x, y)
    assert result.n_poisoned == 60
    assert np.all(result.y[result.indices] != y[result.indices])
    np.testing.assert_array_equal(result.x, x)
    assert result.trigger is None
    with pytest.raises(ValueError, match="no trigger"):
        result.apply_trigger(x)
    # Every wrong label is possible: the new labels are spread over the other classes.
    assert len(np.unique(result.y[result.indices])) == 10


def test_label_flip_targeted(data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = data
    result = LabelFlip(fraction=0.5, mode="targeted", source=7, target=1).poison(x, y)
    assert result.n_poisoned == 10
    assert np.all(y[result.indices] == 7) and np.all(result.y[result.indices] == 1)
