"""Membership metrics on hand-made scores with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from advml.privacy.membership import membership_metrics, roc_curve, tpr_at_fpr


def test_perfect_separation() -> None:
    scores = np.r_[np.linspace(2, 3, 50), np.linspace(0, 1, 2000)]
    truth = np.r_[np.ones(50, bool), np.zeros(2000, bool)]
    m = membership_metrics(scores, truth)
    assert m.auc == 1.0 and m.advantage == 1.0 and m.balanced_accuracy == 1.0
    assert m.tpr_at_0_1_fpr == 1.0 and m.tpr_at_1_fpr == 1.0
    assert (m.member_fpr == 0).all() and m.exposed(0.0) == 50


def test_reversed_scores_give_zero_auc() -> None:
    m = membership_metrics([0.0, 0.1, 0.9, 1.0], [True, True, False, False])
    assert m.auc == 0.0 and m.advantage == 0.0 and m.tpr_at_1_fpr == 0.0


def test_ties_count_one_half() -> None:
    m = membership_metrics([0.5, 0.5], [True, False])
    assert m.auc == pytest.approx(0.5)


def test_small_known_curve() -> None:
    fpr, tpr, thr = roc_curve([0.9, 0.8, 0.3, 0.1], [True, False, True, False])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    assert thr[0] == np.inf
    m = membership_metrics([0.9, 0.8, 0.3, 0.1], [True, False, True, False])
    assert m.auc == pytest.approx(0.75)
    assert m.advantage == pytest.approx(0.5)
    # The member at 0.9 costs no false positive; the one at 0.3 costs half the non-members.
    np.testing.assert_allclose(m.member_fpr, [0.0, 0.5])


def test_tpr_at_low_fpr_uses_the_highest_point_below() -> None:
    fpr = np.array([0.0, 0.0005, 0.002, 0.02, 1.0])
    tpr = np.array([0.0, 0.10, 0.20, 0.5, 1.0])
    assert tpr_at_fpr(fpr, tpr, 0.001) == 0.10
    assert tpr_at_fpr(fpr, tpr, 0.01) == 0.20


def test_random_scores_are_near_chance() -> None:
    rng = np.random.default_rng(0)
    m = membership_metrics(rng.normal(size=20_000), rng.uniform(size=20_000) < 0.5)
    assert abs(m.auc - 0.5) < 0.02 and m.tpr_at_1_fpr < 0.03


def test_threshold_accuracy_of_given_decisions() -> None:
    m = membership_metrics(
        [3, 2, 1, 0], [True, True, False, False], predicted=[True, False, False, False]
    )
    assert m.threshold_accuracy == pytest.approx(0.75)


def test_curve_is_thinned_for_reports() -> None:
    rng = np.random.default_rng(1)
    m = membership_metrics(rng.normal(size=5000), rng.uniform(size=5000) < 0.5)
    curve = m.curve(max_points=100)
    assert len(curve["fpr"]) <= 101 and curve["fpr"][0] == 0.0
    assert all(a <= b for a, b in zip(curve["fpr"], curve["fpr"][1:], strict=False))
    assert set(m.summary()) >= {"auc", "tpr_at_0.1%_fpr", "tpr_at_1%_fpr", "advantage"}


@pytest.mark.parametrize(
    ("scores", "truth", "match"),
    [
        ([1.0, 2.0], [True, True], "both members"),
        ([1.0, np.nan], [True, False], "NaN"),
        ([1.0, 2.0, 3.0], [True, False], "is_member has 2"),
        ([[1.0, 2.0]], [True, False], "scores must be 1-d"),
        ([1.0, 2.0], [2, 0], "is_member must be booleans"),
    ],
)
def test_bad_inputs_are_explained(scores: list[float], truth: list[bool], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        membership_metrics(np.asarray(scores), np.asarray(truth))
