"""Verification statistics: the binomial and empirical nulls, calibration, the decision."""

from __future__ import annotations

import math
from itertools import product

import numpy as np
import pytest
from scipy import stats

from advml.watermark import WatermarkKey, calibrate, verify
from advml.watermark.verify import binomial_tail, decide, poisson_binomial_tail


def test_binomial_tail_known_values() -> None:
    assert binomial_tail(64, 64, 0.5) == pytest.approx(2.0**-64)
    assert binomial_tail(0, 10, 0.3) == 1.0
    assert binomial_tail(6, 10, 0.5) == pytest.approx(
        sum(math.comb(10, k) for k in range(6, 11)) / 1024
    )


def test_poisson_binomial_tail_matches_enumeration() -> None:
    rates = np.array([0.1, 0.5, 0.9, 0.3, 0.7])
    for m in range(7):
        exact = sum(
            np.prod([r if b else 1 - r for r, b in zip(rates, bits, strict=True)])
            for bits in product([0, 1], repeat=5)
            if sum(bits) >= m
        )
        assert poisson_binomial_tail(m, rates) == pytest.approx(exact)


def test_poisson_binomial_with_equal_rates_is_binomial() -> None:
    assert poisson_binomial_tail(30, np.full(100, 0.2)) == pytest.approx(
        float(stats.binom.sf(29, 100, 0.2)), rel=1e-9
    )


def key(n: int = 20) -> WatermarkKey:
    return WatermarkKey(
        scheme="adi",
        secret="s",
        settings={"n_triggers": n},
        arrays={"x": np.zeros((n, 2), np.float32), "labels": np.zeros(n, np.int64)},
        meta={"null_rate": 0.1, "n_classes": 10},
    )


def test_decision_uses_alpha_and_the_more_cautious_null() -> None:
    k = key()
    observed = np.ones(20, bool)
    result = decide(
        key=k,
        observed=observed,
        extracted=np.zeros(20),
        expected=np.zeros(20),
        null_rate=0.1,
        queries=20,
        alpha=1e-4,
    )
    assert result.verified and result.chance_probability == pytest.approx(1e-20)
    assert result.empirical_probability is None and result.reference_models == 0
    # References that all match every item make the same observation worthless.
    cal = k.with_updates(
        arrays={"null_agreement": np.full(20, 5), "null_matches": np.full(5, 20)},
        meta={"null_models": 5},
    )
    again = decide(
        key=cal,
        observed=observed,
        extracted=np.zeros(20),
        expected=np.zeros(20),
        null_rate=0.1,
        queries=20,
        alpha=1e-4,
    )
    assert again.empirical_probability == 1.0
    assert again.chance_probability == again.empirical_probability
    assert not again.verified
    assert again.empirical_rank == 1.0


def test_calibrate_counts_reference_matches(digits_mlp, independent_mlps) -> None:  # type: ignore[no-untyped-def]
    # A key whose labels are the digits MLP's own predictions: references agree often.
    x = np.random.default_rng(0).random((30, 1, 8, 8)).astype(np.float32)
    labels = np.asarray(digits_mlp.predict(x))
    k = WatermarkKey(
        scheme="adi",
        secret="s",
        settings={},
        arrays={"x": x, "labels": labels},
        meta={"null_rate": 0.1, "n_classes": 10},
    )
    cal = calibrate(k, independent_mlps)
    assert cal.calibrated and not k.calibrated
    expected = sum((np.asarray(m.predict(x)) == labels).astype(int) for m in independent_mlps)
    np.testing.assert_array_equal(cal.arrays["null_agreement"], expected)
    assert cal.meta["null_models"] == 2
    result = verify(digits_mlp, cal)
    assert result.matches == 30 and result.reference_models == 2
    assert result.chance_probability >= result.binomial_probability


def test_bad_alpha_and_key_are_refused(digits_mlp) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="alpha"):
        verify(digits_mlp, key(), alpha=0)
    with pytest.raises(TypeError, match="key"):
        verify(digits_mlp, {"scheme": "adi"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reference_models"):
        calibrate(key(), [])
