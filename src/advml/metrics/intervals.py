"""95 % intervals for the audit's figures: how sure a rate measured on n inputs is.

Every rate in a report (robust accuracy, attack success, a membership TPR, a fidelity)
is a count out of n, so its uncertainty follows from n. Proportions get the Wilson score
interval (Wilson 1927; Brown, Cai & DasGupta 2001 recommend it over the normal
"Wald" interval, whose coverage collapses near 0 and 1) or, on request, the exact
Clopper-Pearson interval (Clopper & Pearson 1934), which never covers less than 95 % and
so is wider. Statistics that are not a simple count (the AUC of a membership attack, its
TPR at a fixed false-alarm rate) get a percentile bootstrap interval (Efron & Tibshirani
1993, ch. 13), resampling the two groups separately, vectorised over the resamples.

The coverage of each interval is checked against simulation in
``tests/report/test_intervals.py`` (93-97 % of 2,000 simulated audits).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats

from advml.validation import check_number

__all__ = [
    "Interval",
    "bootstrap_auc",
    "bootstrap_tpr_at_fpr",
    "clopper_pearson",
    "difference_exceeds",
    "from_rate",
    "membership_intervals",
    "proportion",
    "rate",
    "wilson",
]

CONFIDENCE = 0.95
Method = Literal["wilson", "clopper-pearson", "bootstrap"]


@dataclass(frozen=True)
class Interval:
    """A figure with its 95 % interval and, for a proportion, the counts behind it.

    ``count`` of ``n`` for a proportion ("4 of 500"); for a bootstrap statistic ``n`` is
    the number of records it rests on and ``count`` is ``None``.
    """

    value: float
    low: float
    high: float
    n: int
    count: int | None = None
    method: Method = "wilson"

    def to_dict(self) -> dict[str, Any]:
        """Plain data for report.json: ``value``, ``low``, ``high``, ``n``, ``count``."""
        return {
            "value": self.value,
            "low": self.low,
            "high": self.high,
            "n": self.n,
            "count": self.count,
            "method": self.method,
        }

    @property
    def width(self) -> float:
        return self.high - self.low

    def words(self, *, percent: bool = True) -> str:
        """'72.0 % (95 % interval 67.9-75.8 %, 360 of 500)' as the report writes it."""
        f = _pct if percent else _num
        counts = f", {self.count} of {self.n}" if self.count is not None else f", n = {self.n}"
        return f"{f(self.value)} (95 % interval {f(self.low)} to {f(self.high)}{counts})"


def _pct(v: float) -> str:
    return f"{100 * v:.1f} %"


def _num(v: float) -> str:
    return f"{v:.3f}"


def wilson(
    k: int | np.ndarray, n: int | np.ndarray, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray]:
    """The Wilson score interval of ``k`` successes in ``n`` trials (vectorised).

    ``p_hat = k/n``, ``z`` the normal quantile; the bounds are
    ``(p_hat + z²/2n ± z sqrt(p_hat(1-p_hat)/n + z²/4n²)) / (1 + z²/n)``
    (Wilson 1927, eq. in Brown, Cai & DasGupta 2001, §4.1.1). ``n = 0`` gives [0, 1].
    """
    k_arr = np.asarray(k, dtype=np.float64)
    n_arr = np.asarray(n, dtype=np.float64)
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    safe_n = np.where(n_arr > 0, n_arr, 1.0)
    p = k_arr / safe_n
    denom = 1.0 + z * z / safe_n
    centre = (p + z * z / (2 * safe_n)) / denom
    half = z * np.sqrt(p * (1 - p) / safe_n + z * z / (4 * safe_n * safe_n)) / denom
    low = np.where(n_arr > 0, np.clip(centre - half, 0.0, 1.0), 0.0)
    high = np.where(n_arr > 0, np.clip(centre + half, 0.0, 1.0), 1.0)
    # The bounds are exact at k = 0 and k = n (rounding may leave 1e-17 there).
    low = np.where(k_arr <= 0, 0.0, low)
    high = np.where(k_arr >= n_arr, 1.0, high)
    return low, high


def clopper_pearson(
    k: int | np.ndarray, n: int | np.ndarray, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray]:
    """The exact (Clopper-Pearson 1934) interval from beta quantiles (vectorised)."""
    k_arr = np.asarray(k, dtype=np.float64)
    n_arr = np.asarray(n, dtype=np.float64)
    alpha = 1 - confidence
    with np.errstate(invalid="ignore"):
        low = np.where(k_arr > 0, stats.beta.ppf(alpha / 2, k_arr, n_arr - k_arr + 1), 0.0)
        high = np.where(k_arr < n_arr, stats.beta.ppf(1 - alpha / 2, k_arr + 1, n_arr - k_arr), 1.0)
    return np.nan_to_num(low, nan=0.0), np.nan_to_num(high, nan=1.0)


def proportion(k: int, n: int, *, method: Method = "wilson") -> Interval:
    """``k`` of ``n`` with its 95 % interval (Wilson by default, or Clopper-Pearson)."""
    check_number("n", n, low=0, integer=True)
    check_number("k", k, low=0, high=max(int(n), 0), integer=True)
    if method == "clopper-pearson":
        lo, hi = clopper_pearson(k, n)
    elif method == "wilson":
        lo, hi = wilson(k, n)
    else:
        raise ValueError(f"method must be 'wilson' or 'clopper-pearson', got {method!r}")
    value = k / n if n else 0.0
    return Interval(float(value), float(lo), float(hi), int(n), int(k), method)


def rate(hits: np.ndarray) -> Interval:
    """The share of ``True`` in a boolean array, with its Wilson interval."""
    arr = np.asarray(hits, dtype=bool).ravel()
    return proportion(int(arr.sum()), int(arr.size))


def _codes(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Scores replaced by their integer rank among all distinct values (ties share one)."""
    values, codes = np.unique(np.concatenate([pos, neg]), return_inverse=True)
    codes = codes.astype(np.int64).ravel()
    return codes[: pos.size], codes[pos.size :], int(values.size)


def _auc_rows(pos: np.ndarray, neg: np.ndarray, n_codes: int) -> np.ndarray:
    """AUC of each row of integer score codes: the Mann-Whitney U statistic over
    ``n_pos * n_neg``, a tie between a member and a non-member counting 1/2.

    Row ``i`` is shifted by ``i * (n_codes + 1)`` so that one flat ``searchsorted``
    counts, for every member score, the non-member scores below and equal to it in its
    own row.
    """
    rows, n_pos = pos.shape
    n_neg = neg.shape[1]
    shift = (np.arange(rows, dtype=np.int64) * (n_codes + 1))[:, None]
    p_codes = (pos + shift).ravel()
    n_sorted = np.sort(neg + shift, axis=1).ravel()
    below = np.searchsorted(n_sorted, p_codes, side="left")
    equal = np.searchsorted(n_sorted, p_codes, side="right") - below
    # ``below`` counts from the start of the flat array: subtract the rows before.
    below = below - np.repeat(np.arange(rows, dtype=np.int64) * n_neg, n_pos)
    u = (below + 0.5 * equal).reshape(rows, n_pos).sum(axis=1)
    return np.asarray(u / (n_pos * n_neg), dtype=np.float64)


def bootstrap_auc(
    scores_in: np.ndarray,
    scores_out: np.ndarray,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> Interval:
    """The AUC of scores for members (``scores_in``) against non-members, with a
    percentile-bootstrap interval: each group resampled with replacement on its own
    (stratified), ``n_boot`` times, all resamples counted at once."""
    pos = np.asarray(scores_in, dtype=np.float64).ravel()
    neg = np.asarray(scores_out, dtype=np.float64).ravel()
    if pos.size == 0 or neg.size == 0:
        raise ValueError("bootstrap_auc needs at least one score in each group")
    cp, cn, n_codes = _codes(pos, neg)
    value = float(_auc_rows(cp[None], cn[None], n_codes)[0])
    rng = np.random.default_rng(seed)
    boot = _auc_rows(
        cp[rng.integers(0, pos.size, (n_boot, pos.size))],
        cn[rng.integers(0, neg.size, (n_boot, neg.size))],
        n_codes,
    )
    lo, hi = np.quantile(boot, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Interval(value, float(lo), float(hi), int(pos.size + neg.size), None, "bootstrap")


def _tpr_rows(pos: np.ndarray, neg: np.ndarray, fpr: float) -> np.ndarray:
    """Per row: the share of ``pos`` above the threshold that flags at most ``fpr`` of
    ``neg`` (the ``ceil(fpr * n)``-th largest negative score is not exceeded)."""
    n_neg = neg.shape[1]
    allowed = int(np.floor(fpr * n_neg + 1e-9))
    top = np.sort(neg, axis=1)[:, ::-1]
    # Flag scores strictly above the (allowed+1)-th largest negative: at most ``allowed``
    # negatives are flagged (ties are not split).
    thr = top[:, allowed] if allowed < n_neg else np.full(neg.shape[0], -np.inf)
    return np.asarray((pos > thr[:, None]).mean(axis=1), dtype=np.float64)


def bootstrap_tpr_at_fpr(
    scores_in: np.ndarray,
    scores_out: np.ndarray,
    fpr: float,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> Interval:
    """TPR at a false-alarm rate of at most ``fpr`` with a percentile-bootstrap interval.

    The threshold is chosen on each resample again, so the interval includes the
    uncertainty of the threshold, which at low FPR rests on a handful of non-members.
    ``count`` is the number of members flagged at the observed threshold.
    """
    check_number("fpr", fpr, low=0, high=1)
    pos = np.asarray(scores_in, dtype=np.float64).ravel()
    neg = np.asarray(scores_out, dtype=np.float64).ravel()
    if pos.size == 0 or neg.size == 0:
        raise ValueError("bootstrap_tpr_at_fpr needs at least one score in each group")
    value = float(_tpr_rows(pos[None], neg[None], fpr)[0])
    rng = np.random.default_rng(seed)
    boot = _tpr_rows(
        pos[rng.integers(0, pos.size, (n_boot, pos.size))],
        neg[rng.integers(0, neg.size, (n_boot, neg.size))],
        fpr,
    )
    lo, hi = np.quantile(boot, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Interval(
        value, float(lo), float(hi), int(pos.size), round(value * pos.size), "bootstrap"
    )


def bootstrap(
    statistic: Callable[[np.ndarray], np.ndarray],
    values: np.ndarray,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> Interval:
    """Percentile bootstrap of ``statistic`` over the rows of ``values``.

    ``statistic`` maps an array of shape ``(n_boot, n, ...)`` to ``(n_boot,)`` (and
    ``(1, n, ...)`` to ``(1,)`` for the observed value), so the resamples run at once.
    """
    arr = np.asarray(values)
    if arr.shape[0] == 0:
        raise ValueError("bootstrap needs at least one value")
    value = float(statistic(arr[None])[0])
    rng = np.random.default_rng(seed)
    boot = statistic(arr[rng.integers(0, arr.shape[0], (n_boot, arr.shape[0]))])
    lo, hi = np.quantile(boot, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Interval(value, float(lo), float(hi), int(arr.shape[0]), None, "bootstrap")


def difference_exceeds(a: Interval | Mapping[str, Any], b: Interval | Mapping[str, Any]) -> bool:
    """Whether ``a`` and ``b`` differ by more than their uncertainty: their 95 % intervals
    do not overlap.

    Non-overlap of two 95 % intervals is a conservative test (it implies a difference at
    well under the 5 % level, Schenker & Gentleman 2001), so a "yes" here is a difference
    a reader can rely on; a "no" means the data cannot tell the two apart.
    """

    def bounds(x: Interval | Mapping[str, Any]) -> tuple[float, float]:
        if isinstance(x, Interval):
            return x.low, x.high
        return float(x["low"]), float(x["high"])

    alo, ahi = bounds(a)
    blo, bhi = bounds(b)
    return ahi < blo or bhi < alo


def membership_intervals(
    scores: np.ndarray, is_member: np.ndarray, *, n_boot: int = 1000, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """The 95 % intervals of a membership attack's AUC and TPR at 1 % and 0.1 % FPR.

    ``scores``: higher means "member"; the TPR at an FPR is the one of
    :func:`advml.privacy.membership.metrics.tpr_at_fpr` (the best ROC point with at most
    that FPR), so the interval's ``value`` equals the figure beside it.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    m = np.asarray(is_member, dtype=bool).ravel()
    pos, neg = s[m], s[~m]
    return {
        "auc": bootstrap_auc(pos, neg, n_boot=n_boot, seed=seed).to_dict(),
        "tpr_at_1_fpr": bootstrap_tpr_at_fpr(pos, neg, 0.01, n_boot=n_boot, seed=seed).to_dict(),
        "tpr_at_0_1_fpr": bootstrap_tpr_at_fpr(pos, neg, 0.001, n_boot=n_boot, seed=seed).to_dict(),
    }


def from_rate(value: float, n: int) -> Interval:
    """The interval of a rate stored as a fraction of ``n`` (its count is
    ``round(value * n)``, exact for a fraction of ``n`` items)."""
    return proportion(round(float(value) * n), int(n))
