"""Ownership verification with a stated chance probability.

Every scheme reduces verification to ``n`` items (signature bits, or trigger inputs with
their assigned labels) and counts how many the suspect model matches. The claim "this
model derives from mine" is worth as much as the probability that a model *not* derived
from the owner's would match as well by chance:

- **binomial null**: each item matches independently with the scheme's chance rate
  ``p0`` (1/2 for a bit read through a random projection, 1/K or 1/(K-1) for a trigger
  whose label the key drew uniformly at random; the chance probability is
  ``P[Binomial(n, p0) >= matches]``;
- **empirical null** (after :func:`calibrate`): item ``i`` matches with the rate seen on
  ``R`` independently trained reference models, taken cautiously as the one-sided 90%
  Clopper–Pearson upper bound ``q_i`` of ``c_i / R`` (``c_i`` references matched it),
  so that a handful of references neither calls an item no reference matched
  impossible nor understates how alike independent models are; the chance probability
  is the Poisson-binomial tail ``P[sum_i Bernoulli(q_i) >= matches]``.

The decision uses the larger (more cautious) of the two when both exist:
``verified = chance_probability < alpha``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from advml.models.base import Classifier, check_classifier
from advml.validation import check_number
from advml.watermark.key import WatermarkKey

__all__ = [
    "DEFAULT_ALPHA",
    "Verification",
    "binomial_tail",
    "calibrate",
    "not_checked",
    "poisson_binomial_tail",
    "verify",
]

DEFAULT_ALPHA = 1e-4
"""Default significance level of an ownership claim."""

EMPIRICAL_CONFIDENCE = 0.9
"""Confidence of the per-item upper bounds of the empirical null."""


@dataclass(frozen=True)
class Verification:
    """The outcome of checking a suspect model against a key.

    ``observed``, ``extracted`` and ``expected`` are numpy arrays with one entry per
    item (bit or trigger).
    """

    scheme: str
    verified: bool
    """Ownership claimed: ``chance_probability < alpha``."""
    matches: int
    n: int
    chance_probability: float
    """Probability that a model not derived from the owner's matches this well by chance
    (the larger of the binomial and the empirical one when the key is calibrated)."""
    binomial_probability: float
    null_rate: float
    """The binomial null's per-item chance rate ``p0``."""
    empirical_probability: float | None
    """Poisson-binomial tail under the reference models' per-item rates (None uncalibrated)."""
    empirical_rank: float | None
    """``(1 + #references matching at least as well) / (R + 1)`` (None uncalibrated)."""
    reference_models: int
    alpha: float
    queries: int
    """Inputs the suspect model was asked about (0 for white-box verification)."""
    observed: np.ndarray
    """Boolean: item matched."""
    extracted: np.ndarray
    """Bits read from the weights, or the labels the model gave the triggers."""
    expected: np.ndarray
    """The signature bits, or the labels the key assigned."""
    reason: str | None = None
    """Why the model could not be checked against the key (None when it was): another
    architecture, a missing layer, other inputs or classes, no access to the weights.
    Such a model is never verified: ``verified`` is False, no item matched and the
    chance probability is 1."""
    applicable: bool = True
    """False when the model does not give the access the scheme reads (white-box
    verification of a black-box model): the check then says nothing either way. True
    when the model was read, including a model that does not fit the key (another
    architecture): the watermark is not in it."""

    @property
    def match_rate(self) -> float:
        return self.matches / self.n if self.n else 0.0

    @property
    def bit_error_rate(self) -> float:
        """Fraction of mismatched items (the BER for a bit signature)."""
        return 1.0 - self.match_rate

    def summary(self) -> dict[str, Any]:
        """Plain numbers for reports."""
        return {
            "scheme": self.scheme,
            "verified": self.verified,
            "matches": self.matches,
            "n": self.n,
            "match_rate": self.match_rate,
            "chance_probability": self.chance_probability,
            "binomial_probability": self.binomial_probability,
            "null_rate": self.null_rate,
            "empirical_probability": self.empirical_probability,
            "empirical_rank": self.empirical_rank,
            "reference_models": self.reference_models,
            "alpha": self.alpha,
            "queries": self.queries,
            "reason": self.reason,
            "applicable": self.applicable,
        }


def binomial_tail(matches: int, n: int, p0: float) -> float:
    """``P[Binomial(n, p0) >= matches]``."""
    if matches <= 0:
        return 1.0
    return float(stats.binom.sf(matches - 1, n, p0))


def poisson_binomial_tail(matches: int, rates: np.ndarray) -> float:
    """``P[sum_i Bernoulli(rates_i) >= matches]`` by exact dynamic programming."""
    if matches <= 0:
        return 1.0
    q = np.asarray(rates, dtype=np.float64)
    dist = np.zeros(q.shape[0] + 1)
    dist[0] = 1.0
    for i, p in enumerate(q, start=1):
        dist[1 : i + 1] = dist[1 : i + 1] * (1 - p) + dist[0:i] * p
        dist[0] *= 1 - p
    return float(min(1.0, dist[matches:].sum()))


def null_rates(agreement: np.ndarray, references: int) -> np.ndarray:
    """Per-item chance rates of the empirical null: the upper 90% Clopper–Pearson bounds.

    ``agreement[i]`` of ``references`` models matched item ``i``; the bound is the 0.9
    quantile of ``Beta(c + 1, R - c)`` (1 where every reference matched).
    """
    c = np.asarray(agreement, dtype=np.float64)
    upper = stats.beta.ppf(EMPIRICAL_CONFIDENCE, c + 1, np.maximum(references - c, 1e-12))
    return np.where(c >= references, 1.0, upper)


def decide(
    *,
    key: WatermarkKey,
    observed: np.ndarray,
    extracted: np.ndarray,
    expected: np.ndarray,
    null_rate: float,
    queries: int,
    alpha: float,
) -> Verification:
    """Turn per-item matches into a :class:`Verification` (used by every scheme)."""
    observed = np.asarray(observed, dtype=bool)
    n = int(observed.shape[0])
    matches = int(observed.sum())
    binomial = binomial_tail(matches, n, null_rate)
    empirical: float | None = None
    rank: float | None = None
    refs = 0
    if key.calibrated:
        counts = np.asarray(key.arrays["null_agreement"], dtype=np.float64)
        refs = int(key.meta.get("null_models", 0))
        empirical = poisson_binomial_tail(matches, null_rates(counts, refs))
        ref_matches = np.asarray(key.arrays.get("null_matches", np.zeros(0)))
        rank = float((1 + int((ref_matches >= matches).sum())) / (refs + 1))
    chance = binomial if empirical is None else max(binomial, empirical)
    return Verification(
        scheme=key.scheme,
        verified=bool(chance < alpha),
        matches=matches,
        n=n,
        chance_probability=chance,
        binomial_probability=binomial,
        null_rate=float(null_rate),
        empirical_probability=empirical,
        empirical_rank=rank,
        reference_models=refs,
        alpha=float(alpha),
        queries=int(queries),
        observed=observed,
        extracted=np.asarray(extracted),
        expected=np.asarray(expected),
    )


def not_checked(
    *,
    key: WatermarkKey,
    reason: str,
    expected: np.ndarray,
    null_rate: float,
    alpha: float,
    applicable: bool = True,
) -> Verification:
    """The answer for a model that cannot be checked against ``key``: not verified, and why.

    No item was read: ``observed`` is all False, ``extracted`` all -1 (nothing read),
    no query was asked, and the chance probability is 1 (no evidence of ownership).
    """
    expected = np.asarray(expected)
    n = int(expected.shape[0])
    return Verification(
        scheme=key.scheme,
        verified=False,
        matches=0,
        n=n,
        chance_probability=1.0,
        binomial_probability=1.0,
        null_rate=float(null_rate),
        empirical_probability=None,
        empirical_rank=None,
        reference_models=int(key.meta.get("null_models", 0)) if key.calibrated else 0,
        alpha=float(alpha),
        queries=0,
        observed=np.zeros(n, dtype=bool),
        extracted=np.full(n, -1, dtype=np.int64),
        expected=expected,
        reason=reason,
        applicable=applicable,
    )


def _scheme(key: WatermarkKey) -> Any:
    from advml import registry  # the registry imports this package: import at call time

    if not isinstance(key, WatermarkKey):
        raise TypeError(
            f"key must be a WatermarkKey (see advml.watermark.load_key), got {type(key).__name__}"
        )
    cls = registry.get("watermark", key.scheme)
    return cls(**dict(key.settings))


def verify(model: Classifier, key: WatermarkKey, *, alpha: float = DEFAULT_ALPHA) -> Verification:
    """Check whether ``model`` carries the watermark described by ``key``.

    Parameters
    ----------
    model : Classifier
        The suspect model: white-box (a ``TorchClassifier``) for ``"uchida"``; any
        adapter, including a label-only :class:`~advml.models.CallableClassifier` around a
        remote API, for the trigger-set schemes (each trigger is one counted query; no
        scheme needs scores). A model that cannot be checked against the key (another
        architecture, a missing layer, other input shape or number of classes, a
        black-box model for a white-box scheme, a query budget smaller than the key) is
        answered "not verified" with the reason in :attr:`Verification.reason`, never
        with an exception.
    key : WatermarkKey
        The owner's key (from ``embed`` or :func:`~advml.watermark.load_key`).
    alpha : float
        Significance level: ownership is claimed when the chance probability is below it.

    Returns
    -------
    Verification

    Raises
    ------
    TypeError
        ``model`` is not an advml Classifier, or ``key`` not a WatermarkKey (mistakes of
        the caller, not properties of the suspect model).
    """
    check_number("alpha", alpha, low=0, high=1, low_inclusive=False, high_inclusive=False)
    scheme = _scheme(key)
    result: Verification = scheme.verify(model, key, alpha=alpha)
    return result


def calibrate(key: WatermarkKey, reference_models: Sequence[Classifier]) -> WatermarkKey:
    """Store the empirical null of ``key`` measured on independently trained models.

    The reference models must be trained without the key (e.g. with other seeds on the
    same data); their per-item matches become the rates of the empirical null.

    Returns
    -------
    WatermarkKey
        A new key with ``null_agreement`` (per item, how many references matched it),
        ``null_matches`` (per reference, how many items it matched) and
        ``meta["null_models"]``.
    """
    models = list(reference_models)
    if not models:
        raise ValueError("reference_models is empty: give at least one independently trained model")
    scheme = _scheme(key)
    for i, m in enumerate(models):
        check_classifier(f"reference_models[{i}]", m)
        reason = scheme.unsupported_reason(m, key)
        if reason is not None:
            raise ValueError(
                f"reference_models[{i}] cannot be checked against this key ({reason}); give "
                f"models of the watermarked model's architecture, trained without the key"
            )
    per_model = [np.asarray(scheme.observe(m, key)[0], dtype=bool) for m in models]
    stacked = np.stack(per_model)
    return key.with_updates(
        arrays={
            "null_agreement": stacked.sum(axis=0).astype(np.int64),
            "null_matches": stacked.sum(axis=1).astype(np.int64),
        },
        meta={"null_models": len(models)},
    )
