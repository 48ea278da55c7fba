"""How well a membership inference attack separates members from non-members.

Carlini et al. ("Membership Inference Attacks From First Principles", S&P 2022, §III)
argue that an attack matters when it identifies *some* members with confidence, so the
headline numbers are the true-positive rate at a low false-positive rate (0.1%, 1%) and
the ROC curve on log-log axes; AUC, balanced accuracy and the membership advantage of
Yeom et al. (CSF 2018, Def. 4: ``TPR - FPR``) are given beside them.

Scores follow one convention everywhere: **higher means "more likely a member"**.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import Tensor

__all__ = ["MembershipMetrics", "membership_metrics", "roc_curve", "tpr_at_fpr"]


def _as_1d(name: str, a: np.ndarray | Tensor | Any) -> np.ndarray:
    arr = a.detach().cpu().numpy() if isinstance(a, Tensor) else np.asarray(a)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-d, got shape {arr.shape}")
    return arr


def _check(scores: Any, is_member: Any) -> tuple[np.ndarray, np.ndarray]:
    s = _as_1d("scores", scores).astype(np.float64)
    m = _as_1d("is_member", is_member)
    if m.dtype != bool:
        if not np.isin(m, (0, 1)).all():
            raise ValueError("is_member must be booleans (or 0/1), one per score")
        m = m.astype(bool)
    if s.shape != m.shape:
        raise ValueError(f"scores has {s.shape[0]} entries but is_member has {m.shape[0]}")
    if not np.isfinite(s).all():
        raise ValueError("scores contains NaN or infinite values")
    if m.all() or not m.any():
        raise ValueError("is_member must contain both members (True) and non-members (False)")
    return s, m


def roc_curve(scores: Any, is_member: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ROC curve of ``scores`` (higher = member): ``fpr, tpr, thresholds``.

    Point ``i`` says what flagging every record with ``score >= thresholds[i]`` gives.
    The first point is ``(0, 0)`` (threshold ``+inf``), the last ``(1, 1)``; one point
    per distinct score (ties move together). scikit-learn's
    :func:`sklearn.metrics.roc_curve` with every point kept (``drop_intermediate=False``:
    the low-FPR end is what :func:`tpr_at_fpr` reads).
    """
    from sklearn.metrics import roc_curve as sk_roc_curve

    s, m = _check(scores, is_member)
    fpr, tpr, thresholds = sk_roc_curve(m, s, drop_intermediate=False)
    # scikit-learn < 1.3 put max(score) + 1 first; the convention here is +inf.
    thresholds = np.asarray(thresholds, dtype=np.float64)
    thresholds[0] = np.inf
    return np.asarray(fpr, np.float64), np.asarray(tpr, np.float64), thresholds


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target: float) -> float:
    """Highest TPR among ROC points with ``FPR <= target`` (Carlini et al. 2022, §III-B);
    a thin reading of the curve :func:`roc_curve` returns."""
    ok = fpr <= target + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


@dataclass(frozen=True)
class MembershipMetrics:
    """Numbers and curve of one attack on one set of members and non-members."""

    auc: float
    """Area under the ROC curve (0.5 is guessing)."""
    balanced_accuracy: float
    """Best ``(TPR + TNR) / 2`` over thresholds (Carlini et al. 2022 report this)."""
    advantage: float
    """Membership advantage ``max(TPR - FPR)`` (Yeom et al. 2018) = 2 * balanced acc - 1."""
    tpr_at_0_1_fpr: float
    """TPR at 0.1% FPR; with fewer than 1,000 non-members this is the TPR at FPR 0."""
    tpr_at_1_fpr: float
    """TPR at 1% FPR."""
    threshold_accuracy: float | None
    """Balanced accuracy of the attack's own decisions (threshold chosen on attacker data)."""
    n_members: int
    n_non_members: int
    fpr: np.ndarray = field(repr=False)
    tpr: np.ndarray = field(repr=False)
    member_fpr: np.ndarray = field(repr=False)
    """Per member: the FPR an attacker pays to flag it (the fraction of non-members scoring
    at least as high). Small = this record is exposed; the per-record risk."""

    def exposed(self, at_fpr: float = 0.001) -> int:
        """Number of members an attacker flags at a false-positive rate of ``at_fpr``."""
        return int((self.member_fpr <= at_fpr + 1e-12).sum())

    def summary(self) -> dict[str, Any]:
        """Plain numbers for reports."""
        return {
            "auc": self.auc,
            "balanced_accuracy": self.balanced_accuracy,
            "advantage": self.advantage,
            "tpr_at_0.1%_fpr": self.tpr_at_0_1_fpr,
            "tpr_at_1%_fpr": self.tpr_at_1_fpr,
            "threshold_accuracy": self.threshold_accuracy,
            "n_members": self.n_members,
            "n_non_members": self.n_non_members,
        }

    def curve(self, max_points: int = 400) -> Mapping[str, list[float]]:
        """The ROC curve thinned to about ``max_points`` points (log-spaced in FPR), for
        plots and JSON."""
        fpr, tpr = self.fpr, self.tpr
        if fpr.size > max_points:
            grid = np.unique(
                np.r_[0.0, np.geomspace(max(1e-5, 1.0 / self.n_non_members), 1.0, max_points)]
            )
            idx = np.unique(np.searchsorted(fpr, grid, side="right") - 1).clip(0)
            fpr, tpr = fpr[idx], tpr[idx]
        return {"fpr": [float(v) for v in fpr], "tpr": [float(v) for v in tpr]}


def membership_metrics(
    scores: np.ndarray | Tensor,
    is_member: np.ndarray | Tensor,
    *,
    predicted: np.ndarray | Tensor | None = None,
) -> MembershipMetrics:
    """ROC, AUC, balanced accuracy, advantage, TPR at 0.1% / 1% FPR and per-record risk.

    Parameters
    ----------
    scores : array of shape (n,)
        The attack's scores, higher meaning "member".
    is_member : array of shape (n,)
        The truth: True for records in the target's training data.
    predicted : array of shape (n,), optional
        The attack's own in/out decisions; gives ``threshold_accuracy``.

    Returns
    -------
    MembershipMetrics

    Examples
    --------
    >>> m = membership_metrics([0.9, 0.8, 0.3, 0.1], [True, False, True, False])
    >>> m.auc
    0.75
    """
    s, m = _check(scores, is_member)
    from sklearn.metrics import roc_auc_score

    fpr, tpr, _ = roc_curve(s, m)
    # The Mann-Whitney statistic: ties between a member and a non-member count one half.
    auc = float(roc_auc_score(m, s))
    advantage = float(np.max(tpr - fpr))
    neg = np.sort(s[~m])
    # Fraction of non-members scoring >= each member's score.
    member_fpr = 1.0 - np.searchsorted(neg, s[m], side="left") / neg.size
    thr_acc = None
    if predicted is not None:
        p = _as_1d("predicted", predicted).astype(bool)
        if p.shape != m.shape:
            raise ValueError(f"predicted has {p.shape[0]} entries for {m.shape[0]} records")
        thr_acc = float((p[m].mean() + (~p[~m]).mean()) / 2.0)
    return MembershipMetrics(
        auc=auc,
        balanced_accuracy=(1.0 + advantage) / 2.0,
        advantage=advantage,
        tpr_at_0_1_fpr=tpr_at_fpr(fpr, tpr, 0.001),
        tpr_at_1_fpr=tpr_at_fpr(fpr, tpr, 0.01),
        threshold_accuracy=thr_acc,
        n_members=int(m.sum()),
        n_non_members=int((~m).sum()),
        fpr=fpr,
        tpr=tpr,
        member_fpr=member_fpr,
    )
