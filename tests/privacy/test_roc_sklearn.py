"""The membership ROC and AUC come from scikit-learn and match the tie-aware curve that
advml computed by hand before (the reference below), point for point."""

from __future__ import annotations

import numpy as np
import pytest

from advml.privacy.membership import membership_metrics, roc_curve, tpr_at_fpr


def _reference(s: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One ROC point per distinct score, ties together, from (0, 0) at +inf."""
    order = np.argsort(-s, kind="mergesort")
    s_sorted, m_sorted = s[order], m[order]
    distinct = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.size - 1]
    tp, fp = np.cumsum(m_sorted)[distinct], np.cumsum(~m_sorted)[distinct]
    return (
        np.r_[0.0, fp / (~m).sum()],
        np.r_[0.0, tp / m.sum()],
        np.r_[np.inf, s_sorted[distinct]],
    )


@pytest.mark.parametrize("kind", ["continuous", "rounded", "three-values"])
def test_curve_matches_the_hand_written_one(kind: str) -> None:
    rng = np.random.default_rng(3)
    for _ in range(40):
        n = int(rng.integers(2, 300))
        s = rng.normal(size=n)
        if kind == "rounded":
            s = np.round(s, 1)
        elif kind == "three-values":
            s = rng.integers(0, 3, size=n).astype(float)
        m = rng.random(n) < 0.4
        m[:2] = (True, False)
        fpr, tpr, thr = roc_curve(s, m)
        ref = _reference(s, m)
        # The same counts divided by the same totals: exactly equal.
        np.testing.assert_array_equal(fpr, ref[0])
        np.testing.assert_array_equal(tpr, ref[1])
        np.testing.assert_array_equal(thr, ref[2])
        # AUC: roc_auc_score's trapezoids against the trapezoid sum over the same curve,
        # values in [0, 1] summed over <= 300 terms: a few float64 roundings.
        trapezoid = float(np.sum(np.diff(ref[0]) * (ref[1][1:] + ref[1][:-1]) / 2.0))
        assert membership_metrics(s, m).auc == pytest.approx(trapezoid, abs=1e-12)


def test_known_values_with_a_tie() -> None:
    # Members 0.9 and 0.5; non-members 0.8 and 0.5 (a tie, counted one half).
    s = np.array([0.9, 0.8, 0.5, 0.5])
    m = np.array([True, False, True, False])
    fpr, tpr, thr = roc_curve(s, m)
    np.testing.assert_array_equal(fpr, [0.0, 0.0, 0.5, 1.0])
    np.testing.assert_array_equal(tpr, [0.0, 0.5, 0.5, 1.0])
    np.testing.assert_array_equal(thr, [np.inf, 0.9, 0.8, 0.5])
    # Pairs (member, non-member): (0.9, 0.8) 1, (0.9, 0.5) 1, (0.5, 0.8) 0, (0.5, 0.5) 1/2.
    assert membership_metrics(s, m).auc == 0.625
    assert tpr_at_fpr(fpr, tpr, 0.0) == 0.5
    assert tpr_at_fpr(fpr, tpr, 0.01) == 0.5
    assert tpr_at_fpr(fpr, tpr, 0.5) == 0.5
    assert tpr_at_fpr(fpr, tpr, 1.0) == 1.0
