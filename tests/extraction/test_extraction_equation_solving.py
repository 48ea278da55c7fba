"""Equation solving recovers linear and logistic models exactly from d + 1 queries."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, RidgeClassifier

from advml.data import load_dataset
from advml.defences.output import LabelsOnly, Rounding, TopK
from advml.errors import UnsupportedModelError
from advml.extraction import EquationSolving
from advml.models import CallableClassifier, SklearnClassifier


@pytest.fixture(scope="module")
def breast_cancer() -> Any:
    return load_dataset("breast-cancer")


@pytest.fixture(scope="module")
def binary_victim(breast_cancer: Any) -> LogisticRegression:
    return LogisticRegression(max_iter=5000).fit(breast_cancer.x_train, breast_cancer.y_train)


@pytest.fixture(scope="module")
def digits_victim(digits_data: Any) -> SklearnClassifier:
    x = digits_data.x_train.reshape(len(digits_data.x_train), -1)
    est = LogisticRegression(max_iter=2000).fit(x, digits_data.y_train)
    return SklearnClassifier(est, bounds=(0.0, 1.0), input_shape=(1, 8, 8))


@pytest.mark.parametrize("design", ["axes", "random"])
def test_binary_logistic_exact_with_d_plus_1_queries(
    breast_cancer: Any, binary_victim: LogisticRegression, design: str
) -> None:
    # Through a black-box API that returns probabilities, as Tramèr et al. attack it.
    api = CallableClassifier(
        binary_victim.predict_proba, input_shape=(30,), n_classes=2, bounds=(0, 1)
    )
    result = EquationSolving(design=design).extract(  # type: ignore[arg-type]
        api, x_eval=breast_cancer.x_test, y_eval=breast_cancer.y_test
    )
    assert result.queries == 31 == result.details["minimum_queries"]
    assert result.fidelity == 1.0 and result.fidelity_random == 1.0 and result.n_random == 10_000
    assert result.accuracy == result.victim_accuracy
    # The parameters themselves: w and b of the victim, class 0's row fixed at 0.
    layer = result.stolen.module.out  # type: ignore[attr-defined]
    np.testing.assert_allclose(
        layer.weight[1].detach().numpy(), binary_victim.coef_[0], rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(
        float(layer.bias[1].detach()), binary_victim.intercept_[0], rtol=1e-4, atol=1e-4
    )


def test_softmax_regression_exact_with_d_plus_1_queries(
    digits_victim: SklearnClassifier, digits_data: Any
) -> None:
    result = EquationSolving().extract(digits_victim, x_eval=digits_data.x_test)
    assert result.queries == 65  # d + 1 for all ten classes at once
    assert result.fidelity == 1.0 and result.fidelity_random == 1.0
    assert result.details["rank"] == result.details["unknowns"] == 9 * 65
    # Logit differences match the victim's everywhere (the shared offset is unrecoverable).
    x = np.random.default_rng(0).random((200, 1, 8, 8)).astype(np.float32)
    z_victim = np.log(digits_victim.predict_proba(x))
    z_stolen = np.log(result.stolen.predict_proba(x))
    np.testing.assert_allclose(
        z_stolen - z_stolen[:, :1], z_victim - z_victim[:, :1], rtol=1e-3, atol=1e-3
    )


def test_linear_model_returning_raw_scores(digits_data: Any) -> None:
    x = digits_data.x_train.reshape(len(digits_data.x_train), -1)
    est = RidgeClassifier().fit(x, digits_data.y_train)
    api = CallableClassifier(
        lambda b: est.decision_function(b.reshape(len(b), -1)),
        input_shape=(1, 8, 8),
        n_classes=10,
        bounds=(0, 1),
        returns="logits",
    )
    result = EquationSolving().extract(api, x_eval=digits_data.x_test)
    assert result.queries == 65 and result.fidelity == 1.0 and result.fidelity_random == 1.0


def test_fewer_than_d_plus_1_queries_raises(digits_victim: SklearnClassifier) -> None:
    with pytest.raises(ValueError, match=r"queries=64 .* queries >= 65"):
        EquationSolving(queries=64).extract(digits_victim)


def test_labels_only_makes_it_impossible(digits_victim: SklearnClassifier) -> None:
    api = LabelsOnly().wrap(digits_victim)
    with pytest.raises(UnsupportedModelError, match=r"impossible.*labels only"):
        EquationSolving().extract(api)
    assert api.query_count == 0


def test_rounded_answers_with_more_queries(
    digits_victim: SklearnClassifier, digits_data: Any
) -> None:
    api = Rounding(decimals=2).wrap(digits_victim)
    result = EquationSolving(queries=300).extract(api, x_eval=digits_data.x_test, n_random=2000)
    assert result.queries == 300 and result.details["max_residual"] > 1e-3
    assert result.fidelity >= 0.95


def test_hidden_answers_are_dropped_or_refused(digits_victim: SklearnClassifier) -> None:
    with pytest.raises(ValueError, match=r"determine only .* Raise queries"):
        EquationSolving().extract(TopK(k=2).wrap(digits_victim))


def test_top_k_of_a_binary_model_keeps_everything(binary_victim: LogisticRegression) -> None:
    model = SklearnClassifier(binary_victim, bounds=(0.0, 1.0))
    result = EquationSolving().extract(TopK(k=2).wrap(model), n_random=1000)
    assert result.fidelity_random == 1.0
