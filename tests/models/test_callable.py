"""CallableClassifier: any function as a black-box model, its output checked on every call."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch

from advml.errors import QueryBudgetExceededError, UnsupportedModelError
from advml.models import CallableClassifier

_W = np.random.default_rng(0).normal(size=(4, 3))


def _scores(x: np.ndarray) -> np.ndarray:
    """A fixed linear 'remote model' on 4 features with 3 classes."""
    out: np.ndarray = x.reshape(len(x), -1) @ _W
    return out


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


class _Api:
    """A recording stand-in for a prediction API."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.batches: list[tuple[type, tuple[int, ...], Any]] = []

    def __call__(self, x: Any) -> Any:
        self.batches.append((type(x), tuple(x.shape), x.dtype))
        return self.answer(x)


@pytest.fixture
def x() -> np.ndarray:
    return np.random.default_rng(1).random((10, 4)).astype(np.float32)


def _model(fn: Any, **kwargs: Any) -> CallableClassifier:
    return CallableClassifier(fn, input_shape=(4,), n_classes=3, bounds=(0.0, 1.0), **kwargs)


def test_probabilities(x: np.ndarray) -> None:
    api = _Api(lambda b: _softmax(_scores(b)))
    model = _model(api)

    assert model.has_scores and not model.has_gradients
    np.testing.assert_allclose(model.predict_proba(x), _softmax(_scores(x)), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(model.predict(x), _scores(x).argmax(axis=1))
    # fn got the whole float32 batch, as numpy, in the model's input shape.
    assert api.batches[0] == (np.ndarray, (10, 4), np.dtype(np.float32))
    assert "probabilities" in model.describe()


def test_logits(x: np.ndarray) -> None:
    model = _model(_scores, returns="logits")
    logits = model.logits(torch.as_tensor(x))
    assert logits.dtype == torch.float32
    np.testing.assert_allclose(logits.numpy(), _scores(x), atol=1e-5)
    np.testing.assert_allclose(model.predict_proba(x), _softmax(_scores(x)), rtol=1e-5, atol=1e-6)


def test_labels_make_a_label_only_model(x: np.ndarray) -> None:
    model = _model(lambda b: _scores(b).argmax(axis=1), returns="labels")

    assert not model.has_scores and not model.has_gradients
    np.testing.assert_array_equal(model.predict(x), _scores(x).argmax(axis=1))
    with pytest.raises(UnsupportedModelError, match="labels only"):
        model.logits(torch.as_tensor(x))
    with pytest.raises(UnsupportedModelError):
        model.predict_proba(x)


def test_torch_function(x: np.ndarray) -> None:
    w = torch.as_tensor(_W, dtype=torch.float32)
    api = _Api(lambda b: torch.softmax(b @ w, dim=1))
    model = _model(api, accepts="torch")
    np.testing.assert_array_equal(model.predict(x), _scores(x).argmax(axis=1))
    assert api.batches[0][0] is torch.Tensor and api.batches[0][2] == torch.float32


def test_rounded_probabilities_are_renormalised_with_one_warning(x: np.ndarray) -> None:
    # An API that shows one decimal, cut off: rows sum to less than 1.
    model = _model(lambda b: np.floor(_softmax(_scores(b)) * 10) / 10)
    with pytest.warns(UserWarning, match="rounded or top-k"):
        proba = model.predict_proba(x)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    rounded = np.floor(_softmax(_scores(x)) * 10) / 10
    np.testing.assert_allclose(
        proba, rounded / rounded.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-6
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per model, not on every query
        model.predict(x)


def test_top1_output_is_accepted(x: np.ndarray) -> None:
    def top1(b: np.ndarray) -> np.ndarray:
        p = _softmax(_scores(b))
        out = np.zeros_like(p)
        best = p.argmax(axis=1)
        out[np.arange(len(p)), best] = p[np.arange(len(p)), best]
        return out

    model = _model(top1)
    with pytest.warns(UserWarning, match="renormalised"):
        labels = model.predict(x)
    np.testing.assert_array_equal(labels, _scores(x).argmax(axis=1))


def test_wrong_output_shape_names_fn_and_the_shape(x: np.ndarray) -> None:
    model = _model(lambda b: _softmax(_scores(b))[:, :2])
    with pytest.raises(ValueError, match=r"fn returned shape \(10, 2\).*\(10, 3\)"):
        model.predict(x)
    labels_as_probs = _model(lambda b: _scores(b).argmax(axis=1))
    with pytest.raises(ValueError, match=r"fn returned shape \(10,\).*returns='labels'"):
        labels_as_probs.predict(x)
    probs_as_labels = _model(lambda b: _softmax(_scores(b)), returns="labels")
    with pytest.raises(ValueError, match=r"fn returned shape \(10, 3\)"):
        probs_as_labels.predict(x)


def test_nan_output_is_an_error(x: np.ndarray) -> None:
    def broken(b: np.ndarray) -> np.ndarray:
        p = _softmax(_scores(b))
        p[3, 1] = np.nan
        return p

    with pytest.raises(ValueError, match="fn returned NaN or infinite probs for 1 of 10"):
        _model(broken).predict_proba(x)


def test_values_that_are_not_probabilities(x: np.ndarray) -> None:
    with pytest.raises(ValueError, match="returns='logits'"):
        _model(_scores).predict(x)
    with pytest.raises(ValueError, match="all-zero"):
        _model(lambda b: np.zeros((len(b), 3))).predict(x)


def test_labels_out_of_range_or_fractional(x: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"labels in \[1, 3\], outside \[0, 3\)"):
        _model(lambda b: _scores(b).argmax(axis=1) + 1, returns="labels").predict(x)
    with pytest.raises(ValueError, match="non-integer labels"):
        _model(lambda b: np.full(len(b), 0.5), returns="labels").predict(x)
    with pytest.raises(ValueError, match="dtype"):
        _model(lambda b: np.array(["cat"] * len(b)), returns="labels").predict(x)


def test_queries_are_counted_and_the_budget_is_enforced_before_fn(x: np.ndarray) -> None:
    api = _Api(lambda b: _softmax(_scores(b)))
    model = _model(api, query_budget=25, batch_size=4)

    model.predict(x)
    assert model.query_count == 10
    assert [shape for _, shape, _ in api.batches] == [(4, 4), (4, 4), (2, 4)]
    model.predict_proba(x)
    assert model.query_count == 20
    with pytest.raises(QueryBudgetExceededError, match="query_budget=25"):
        model.predict(x[:6], batch_size=6)
    assert model.query_count == 20
    assert len(api.batches) == 6  # the refused batch never reached the API
    # The model says what is left, so an attack can shrink its last batch to it.
    assert model.queries_left == 5
    model.predict(x[:5])
    assert model.queries_left == 0 and model.query_count == 25
    model.reset_queries()
    assert model.queries_left == 25
    assert _model(api).queries_left is None  # no budget: unlimited


def test_settings_are_validated() -> None:
    with pytest.raises(TypeError, match="fn must be callable"):
        CallableClassifier("model", input_shape=(4,), n_classes=3, bounds=(0, 1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="returns"):
        _model(_scores, returns="scores")
    with pytest.raises(ValueError, match="accepts"):
        _model(_scores, accepts="jax")
    with pytest.raises(ValueError, match="n_classes"):
        CallableClassifier(_scores, input_shape=(4,), n_classes=1, bounds=(0, 1))
