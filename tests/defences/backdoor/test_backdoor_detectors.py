"""The detectors' claims: activation clustering, spectral signatures, Neural Cleanse, STRIP.

Known answers on the hand-built model of ``conftest.py`` (its backdoor unit is dormant on
clean inputs, so triggered training samples form their own cluster and their own
direction), and measured behaviour on the real backdoored digits MLP. None of the
defences sees the test split's triggers or labels: each gets only the data its ``uses``
names (the poisoned training set, or the clean validation half).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import HAND_TRIGGER, Backdoored, hand_data

from advml.defences.backdoor import (
    STRIP,
    ActivationClustering,
    NeuralCleanse,
    SpectralSignatures,
)
from advml.errors import UnsupportedModelError
from advml.models import TorchClassifier
from advml.poisoning import BadNets, evaluate_backdoor


def _poisoned(n: int = 200, n_poison: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hand data with the trigger on ``n_poison`` class-1 samples relabelled 0."""
    x, y = hand_data(n=n, seed=0)
    idx = np.flatnonzero(y == 1)[:n_poison]
    x[idx] = HAND_TRIGGER.apply(x[idx])
    y[idx] = 0
    return x, y, idx


@pytest.mark.parametrize("reduction", ["ica", "pca"])
def test_activation_clustering_finds_exactly_the_poison(
    hand_model: TorchClassifier, reduction: str
) -> None:
    x, y, idx = _poisoned()
    # The poison is a minority of its label here (20 of ~120), so Chen et al.'s size
    # rule (0.35) applies; uniform clean classes split in halves at a silhouette above
    # 0.25 and are only kept out by it.
    result = ActivationClustering(reduction=reduction, max_cluster_size=0.35).detect(
        hand_model, x, y
    )
    assert result.flagged_classes == (0,)
    np.testing.assert_array_equal(result.indices, np.sort(idx))
    scores = result.score(idx, within_class=0)
    assert scores["precision"] == scores["recall"] == scores["f1"] == 1.0
    info = result.per_class[0]
    assert info["small_fraction"] == pytest.approx(len(idx) / (y == 0).sum())
    assert info["silhouette"] >= ActivationClustering().min_silhouette


def test_activation_clustering_flags_nothing_on_clean_data(hand_model: TorchClassifier) -> None:
    x, y = hand_data(n=200, seed=0)
    result = ActivationClustering(max_cluster_size=0.35).detect(hand_model, x, y)
    assert result.flagged_classes == () and not result.flagged.any()
    # With the default size rule (up to half the class) only the silhouette decides, and
    # uniformly spread clean classes split well enough to be flagged: the known cost of
    # allowing the poison to be half of its label.
    loose = ActivationClustering().detect(hand_model, x, y)
    assert all(info["small_fraction"] > 0.35 for info in loose.per_class)
    assert result.score(np.array([], dtype=np.int64))["f1"] == 0.0


def test_spectral_signatures_rank_the_poison_first(hand_model: TorchClassifier) -> None:
    x, y, idx = _poisoned()
    n0 = int((y == 0).sum())
    # expected_fraction chosen so that 1.5x it is exactly the poison count of class 0.
    result = SpectralSignatures(expected_fraction=len(idx) / (1.5 * n0)).detect(hand_model, x, y)
    members = np.flatnonzero(y == 0)
    top = members[np.argsort(-result.scores[members])[: len(idx)]]
    np.testing.assert_array_equal(np.sort(top), np.sort(idx))
    assert result.score(idx, within_class=0)["f1"] == 1.0
    assert result.per_class[0]["top_singular_value"] > result.per_class[1]["top_singular_value"]


@pytest.mark.slow
def test_spectral_signatures_on_a_real_backdoor(digits_pixel_backdoor: Backdoored) -> None:
    b = digits_pixel_backdoor
    result = SpectralSignatures().detect(b.model, b.poisoned.x, b.poisoned.y)
    target = result.score(b.poisoned.indices, within_class=0)
    # Measured: precision 0.93, recall 0.28 in the target class (digits MLP, seed 0):
    # what it removes from the target class is almost all poison, but it removes only
    # 1.5 x 10% of the class, while this all-to-one backdoor makes half of it poison.
    assert target["precision"] >= 0.8
    n0 = int((b.poisoned.y == 0).sum())
    assert target["n_flagged"] == round(1.5 * 0.1 * n0)


@pytest.mark.slow
def test_neural_cleanse_flags_the_backdoored_model_only(
    digits_pixel_backdoor: Backdoored,
) -> None:
    b = digits_pixel_backdoor
    found = NeuralCleanse().inspect(b.model, b.x_val)
    # Measured: anomaly index 3.3 for label 0 (the target); the clean model's largest
    # is 1.0 (digits MLPs, seed 0, same data and seed apart from the poison).
    assert found.flagged and found.target == 0
    assert found.anomaly_index[0] > 2
    assert found.attack_success[0] >= 0.9
    clean = NeuralCleanse().inspect(b.clean_model, b.x_val)
    assert not clean.flagged and clean.target is None
    assert clean.anomaly_index.max() < 2
    # The reversed trigger is small and sits on the real trigger's pixel.
    mask, _ = found.trigger(0)
    assert found.l1_norms[0] < np.median(found.l1_norms) / 3
    assert np.unravel_index(np.argmax(mask), mask.shape)[-2:] == (7, 7)


@pytest.mark.slow
def test_neural_cleanse_unlearning_removes_the_backdoor(
    digits_pixel_backdoor: Backdoored,
) -> None:
    b = digits_pixel_backdoor
    nc = NeuralCleanse()
    found = nc.inspect(b.model, b.x_val)
    repaired = nc.repair(b.model, b.x_val, b.y_val, inspection=found)
    before = evaluate_backdoor(b.model, b.poisoned, b.x_test, b.y_test)
    after = evaluate_backdoor(repaired, b.poisoned, b.x_test, b.y_test)
    assert after.attack_success <= before.attack_success / 2
    assert after.clean_accuracy >= before.clean_accuracy - 0.05


@pytest.mark.slow
def test_strip_detects_triggered_inputs_at_one_percent_frr(
    digits_pixel_backdoor: Backdoored,
) -> None:
    b = digits_pixel_backdoor
    detector = STRIP(frr=0.01).fit(b.model, b.x_val)
    # The threshold is the 1% entropy quantile of the held-out clean calibration half.
    assert (detector.clean_entropy < detector.threshold).mean() <= 0.02
    eligible = b.y_test != 0
    triggered = np.asarray(b.poisoned.apply_trigger(b.x_test[eligible]))
    # Measured: 100% of the triggered test inputs flagged, 2% of the clean ones.
    assert detector.detect(triggered).detection_rate >= 0.9
    assert detector.detect(b.x_test).detection_rate <= 0.05
    # On the clean model the trigger does nothing, so STRIP has nothing to find.
    clean = STRIP(frr=0.01).fit(b.clean_model, b.x_val)
    assert clean.detect(triggered).detection_rate <= 0.1


def test_strip_hand_built(hand_model: TorchClassifier) -> None:
    x, _ = hand_data(n=200, seed=0)
    detector = STRIP(frr=0.05, n_overlays=16).fit(hand_model, x)
    # Adding a clean input keeps x2 = 1 on a triggered one: the backdoor unit fires at 5,
    # the prediction stays 0 whatever the overlay, the entropy is 0.
    result = detector.detect(HAND_TRIGGER.apply(x[:50]))
    assert result.detection_rate == 1.0
    assert float(result.entropy.max()) == pytest.approx(0.0, abs=1e-3)
    with pytest.raises(ValueError, match="x_clean"):
        STRIP().fit(hand_model, x[:3])


def test_detectors_refuse_models_without_layers() -> None:
    from advml.models import CallableClassifier

    x, y = hand_data(n=20)
    model = CallableClassifier(
        lambda a: np.eye(2)[(a[:, 1] > a[:, 0]).astype(int)],
        input_shape=(3,),
        n_classes=2,
        bounds=(0.0, 1.0),
    )
    for defence in (ActivationClustering(), SpectralSignatures(), NeuralCleanse(steps=1)):
        with pytest.raises(UnsupportedModelError, match="TorchClassifier"):
            defence.run(model, x, y)


def test_poison_scores_against_badnets_indices(hand_model: TorchClassifier) -> None:
    x, y = hand_data(n=200, seed=0)
    data = BadNets(trigger=HAND_TRIGGER, fraction=0.1, target=0, source=1).poison(x, y)
    result = ActivationClustering(max_cluster_size=0.35).detect(hand_model, data.x, data.y)
    assert result.score(data.is_poisoned, within_class=0)["f1"] == 1.0
