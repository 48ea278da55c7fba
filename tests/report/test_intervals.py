"""The report's 95 % intervals, checked against simulation: over 2,000 simulated audits
an interval must cover the true rate 93-97 % of the time."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from advml.metrics.intervals import (
    _auc_rows,
    _codes,
    bootstrap_auc,
    bootstrap_tpr_at_fpr,
    clopper_pearson,
    difference_exceeds,
    proportion,
    wilson,
)

N_AUDITS = 2000


@pytest.mark.parametrize(("p", "n"), [(0.72, 500), (0.08, 500), (0.5, 36), (0.97, 500)])
def test_the_wilson_interval_covers_the_true_rate_in_95_percent_of_audits(p: float, n: int) -> None:
    k = np.random.default_rng(1).binomial(n, p, N_AUDITS)
    low, high = wilson(k, n)
    coverage = float(((low <= p) & (p <= high)).mean())
    assert 0.93 <= coverage <= 0.97, coverage


def test_clopper_pearson_is_exact_so_never_below_95_percent() -> None:
    k = np.random.default_rng(2).binomial(200, 0.3, N_AUDITS)
    low, high = clopper_pearson(k, 200)
    assert float(((low <= 0.3) & (0.3 <= high)).mean()) >= 0.945
    # Equal to scipy's exact binomial test interval (computed another way).
    for k, n in ((4, 500), (0, 20), (17, 36)):
        lo, hi = clopper_pearson(k, n)
        ref = stats.binomtest(k, n).proportion_ci(method="exact")
        assert float(lo) == pytest.approx(ref.low, abs=1e-12)
        assert float(hi) == pytest.approx(ref.high, abs=1e-12)


def test_a_proportion_keeps_its_counts_and_edges_are_exact() -> None:
    iv = proportion(4, 500)
    assert (iv.count, iv.n, iv.value) == (4, 500, 0.008)
    assert "4 of 500" in iv.words()
    assert proportion(0, 50).low == 0.0 and proportion(50, 50).high == 1.0
    with pytest.raises(ValueError, match="k"):
        proportion(6, 5)


def test_the_vectorised_auc_equals_sklearn_with_ties() -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = rng.integers(0, 5, 17).astype(float)
        b = rng.integers(0, 5, 23).astype(float)
        cp, cn, n = _codes(a, b)
        got = float(_auc_rows(cp[None], cn[None], n)[0])
        labels = np.r_[np.ones(a.size), np.zeros(b.size)]
        assert got == pytest.approx(roc_auc_score(labels, np.r_[a, b]), abs=1e-12)


def test_the_bootstrap_auc_interval_covers_the_true_auc_in_95_percent_of_audits() -> None:
    # Members' scores N(0.8, 1), non-members' N(0, 1): the true AUC is Phi(0.8 / sqrt 2).
    rng = np.random.default_rng(1)
    d, n = 0.8, 50
    true = float(stats.norm.cdf(d / np.sqrt(2)))
    covered = 0
    for i in range(N_AUDITS):
        iv = bootstrap_auc(rng.normal(d, 1, n), rng.normal(0, 1, n), n_boot=200, seed=i)
        covered += iv.low <= true <= iv.high
    assert 0.93 <= covered / N_AUDITS <= 0.97, covered / N_AUDITS


def test_the_bootstrap_tpr_at_fpr_interval_covers_the_true_tpr() -> None:
    rng = np.random.default_rng(3)
    d, fpr = 1.5, 0.1
    true = float(1 - stats.norm.cdf(stats.norm.ppf(1 - fpr) - d))
    covered = 0
    for i in range(1000):
        iv = bootstrap_tpr_at_fpr(
            rng.normal(d, 1, 200), rng.normal(0, 1, 200), fpr, n_boot=200, seed=i
        )
        covered += iv.low <= true <= iv.high
    assert 0.93 <= covered / 1000 <= 0.97, covered / 1000


def test_a_difference_counts_only_beyond_the_uncertainty() -> None:
    assert difference_exceeds(proportion(360, 500), proportion(250, 500))
    assert not difference_exceeds(proportion(18, 36), proportion(20, 36))


def test_published_anchors_apply_only_to_known_settings() -> None:
    from advml.report.anchors import anchors

    point = {"eps": 0.3, "robust_accuracy": 0.0, "robust_accuracy_interval": None}
    report = {
        "dataset": {"name": "mnist-5k"},
        "model": {"source": "reference"},
        "sections": {"evasion": {"attacks": [{"name": "pgd", "points": [point]}]}},
    }
    (madry,) = anchors(report)
    assert madry["section"] == "evasion" and "Madry" in madry["citation"]
    assert "89.3%" in madry["published"] and "0.0%" in madry["figure"]["text"]
    assert anchors({**report, "model": {"source": "file"}}) == []
    assert anchors({**report, "dataset": {"name": "breast-cancer"}}) == []
