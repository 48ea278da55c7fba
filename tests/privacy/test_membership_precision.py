"""Membership scores keep confident records apart (float64, from the logits).

A membership score lives in the last digits of a confident prediction: the records a
model fits best are the members an attacker finds first. In float32 the log-softmax of a
record whose logit margin is above about 17 is exactly 0, so every such record ties and
TPR at low FPR collapses. These hand-built logits have margins from 18 to 60, where
float32 (and a plain float64 softmax beyond about 37) saturates; every score must still
order them, and match its formula evaluated in float64 by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advml.models import CallableClassifier
from advml.privacy.membership import (
    ConfidenceThreshold,
    EntropyThreshold,
    LossThreshold,
    ModifiedEntropy,
)
from advml.privacy.membership.base import log_probs, stable_log_softmax
from advml.privacy.membership.lira import logit_confidence

N_CLASSES = 10
MARGINS = np.array([18.0, 22.0, 26.0, 30.0, 34.0, 40.0, 50.0, 60.0])


def margin_model() -> CallableClassifier:
    """Record ``i`` answers logit ``MARGINS[i]`` for class 0 and 0 for the nine others."""
    table = np.zeros((len(MARGINS), N_CLASSES))
    table[:, 0] = MARGINS

    def api(x: np.ndarray) -> np.ndarray:
        return table[x[:, 0].round().astype(int)]

    return CallableClassifier(
        api,
        input_shape=(1,),
        n_classes=N_CLASSES,
        bounds=(0.0, float(len(MARGINS))),
        returns="logits",
    )


def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.arange(len(MARGINS), dtype=torch.float32)[:, None]
    return x, torch.zeros(len(MARGINS), dtype=torch.long)


def test_float32_log_softmax_ties_these_records() -> None:
    # The defect being guarded against: float32 rounds every one of them to log p_y = 0.
    z = torch.zeros(len(MARGINS), N_CLASSES)
    z[:, 0] = torch.as_tensor(MARGINS, dtype=torch.float32)
    assert (torch.log_softmax(z, dim=1)[:, 0] == 0).all()
    # And a plain float64 log-softmax still ties those beyond a margin of about 37.
    assert (torch.log_softmax(z.double(), dim=1)[MARGINS > 37, 0] == 0).all()


def test_stable_log_softmax_is_exact_for_the_top_class() -> None:
    z = torch.zeros(len(MARGINS), N_CLASSES, dtype=torch.float64)
    z[:, 0] = torch.as_tensor(MARGINS)
    lp = stable_log_softmax(z)
    # log p_0 = -log1p(9 exp(-m)), log p_j = -m + log p_0 for the others.
    expected = -np.log1p((N_CLASSES - 1) * np.exp(-MARGINS))
    np.testing.assert_allclose(lp[:, 0].numpy(), expected, rtol=1e-14, atol=0)
    np.testing.assert_allclose(lp[:, 1].numpy(), -MARGINS + expected, rtol=1e-14, atol=0)
    # It agrees with torch's log-softmax where that one is exact (a two-class tie).
    even = torch.zeros(1, 2, dtype=torch.float64)
    assert stable_log_softmax(even)[0, 0].item() == pytest.approx(-np.log(2), rel=1e-15)


def scores(attack_cls: type) -> np.ndarray:
    model = margin_model()
    x, y = inputs()
    fitted = attack_cls(calibration="population").fit(model, x.numpy(), y.numpy())
    return fitted.infer(model, x.numpy(), y.numpy()).scores


@pytest.mark.parametrize(
    "attack_cls", [LossThreshold, ConfidenceThreshold, EntropyThreshold, ModifiedEntropy]
)
def test_every_threshold_score_orders_the_confident_records(attack_cls: type) -> None:
    s = scores(attack_cls)
    assert s.dtype == np.float64
    # Larger margin = more confident = more member-like: strictly increasing, no tie.
    assert (np.diff(s) > 0).all(), s


def test_threshold_scores_match_their_formulas_in_float64() -> None:
    eps = (N_CLASSES - 1) * np.exp(-MARGINS)  # sum of the other classes' odds
    log_py = -np.log1p(eps)
    p_other = np.exp(-MARGINS + log_py)  # each of the nine others
    np.testing.assert_allclose(scores(LossThreshold), log_py, rtol=1e-12)
    np.testing.assert_allclose(scores(ConfidenceThreshold), log_py, rtol=1e-12)
    neg_entropy = np.exp(log_py) * log_py + (N_CLASSES - 1) * p_other * np.log(p_other)
    np.testing.assert_allclose(scores(EntropyThreshold), neg_entropy, rtol=1e-12)
    # -Mentr = (1 - p_y) log p_y + sum_{j != y} p_j log(1 - p_j)  (Song & Mittal, eq. 6)
    neg_mentr = -np.expm1(log_py) * log_py + (N_CLASSES - 1) * p_other * np.log1p(-p_other)
    np.testing.assert_allclose(scores(ModifiedEntropy), neg_mentr, rtol=1e-12)


def test_lira_logit_confidence_is_the_margin_form() -> None:
    model = margin_model()
    x, y = inputs()
    phi = logit_confidence(model, x, y).numpy()
    # phi = z_y - log sum_{j != y} exp(z_j) = m - log 9 (Carlini et al. 2022, eq. 4).
    np.testing.assert_allclose(phi, MARGINS - np.log(N_CLASSES - 1), rtol=1e-15)
    assert (np.diff(phi) > 0).all()


def test_shadow_features_keep_the_confident_records_apart() -> None:
    model = margin_model()
    x, _ = inputs()
    lp = log_probs(model, x)
    assert lp.dtype == torch.float64
    assert (torch.diff(lp[:, 0]) > 0).all() and (torch.diff(lp[:, 1]) < 0).all()


def test_a_confidently_wrong_record_scores_below_a_confidently_right_one() -> None:
    model = margin_model()
    x, y = inputs()
    wrong = torch.ones_like(y)  # the label the model gives 1e-26 .. 1e-8
    for attack_cls in (LossThreshold, ModifiedEntropy):
        fitted = attack_cls(calibration="population").fit(model, x.numpy(), y.numpy())
        right_s = fitted.infer(model, x.numpy(), y.numpy()).scores
        wrong_s = fitted.infer(model, x.numpy(), wrong.numpy()).scores
        assert np.isfinite(wrong_s).all() and (wrong_s < right_s.min()).all()
        # Wrong labels: the more confident the model, the less member-like.
        assert (np.diff(wrong_s) < 0).all()
