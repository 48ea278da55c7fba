"""restrict_access: a model as a weaker adversary sees it; the probe fingerprint."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from advml.models import CallableClassifier, TorchClassifier
from advml.models.access import restrict_access


def test_white_box_is_the_model_itself(digits_mlp: TorchClassifier) -> None:
    assert restrict_access(digits_mlp, "white-box") is digits_mlp


def test_scores_access_answers_probabilities_without_gradients(
    digits_mlp: TorchClassifier, digits_data
) -> None:
    seen = restrict_access(digits_mlp, "scores")
    assert isinstance(seen, CallableClassifier)
    assert seen.has_scores and not seen.has_gradients
    x = digits_data.x_test[:20]
    np.testing.assert_allclose(
        seen.predict_proba(x), digits_mlp.predict_proba(x), rtol=1e-5, atol=1e-6
    )
    assert seen.describe().endswith("black-box (probabilities)")


def test_labels_access_answers_labels_only(digits_mlp: TorchClassifier, digits_data) -> None:
    seen = restrict_access(digits_mlp, "labels")
    assert not seen.has_scores and not seen.has_gradients
    x = digits_data.x_test[:20]
    np.testing.assert_array_equal(seen.predict(x), digits_mlp.predict(x))


def test_scores_of_a_label_only_model_and_unknown_levels_are_refused(
    digits_mlp: TorchClassifier,
) -> None:
    labels = restrict_access(digits_mlp, "labels")
    with pytest.raises(ValueError, match="access='scores' needs a model that returns scores"):
        restrict_access(labels, "scores")
    with pytest.raises(ValueError, match="access must be one of"):
        restrict_access(digits_mlp, "grey-box")


def test_probe_fingerprint_of_a_black_box_follows_its_answers(digits_mlp: TorchClassifier) -> None:
    """A model advml cannot read is keyed by its answers on a fixed probe."""
    seen = restrict_access(digits_mlp, "scores")
    assert seen.fingerprint() == restrict_access(digits_mlp, "scores").fingerprint()
    assert seen.fingerprint() != restrict_access(digits_mlp, "labels").fingerprint()
    other = copy.deepcopy(digits_mlp)
    with torch.no_grad():
        for p in other.module.parameters():
            p.mul_(0.5)
    assert restrict_access(other, "scores").fingerprint() != seen.fingerprint()
