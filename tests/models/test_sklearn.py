"""SklearnClassifier: exact white-box twins of linear models and SVMs, black boxes otherwise."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, RidgeClassifier, SGDClassifier
from sklearn.multiclass import OneVsRestClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.svm import SVC, LinearSVC, NuSVC
from sklearn.tree import DecisionTreeClassifier

from advml.errors import QueryBudgetExceededError, UnsupportedModelError
from advml.models import SklearnClassifier


@functools.cache
def _data(name: str) -> tuple[np.ndarray, np.ndarray]:
    """float64 features that are exact in float32 (the adapter's input dtype), int labels."""
    if name == "cancer":
        x, y = load_breast_cancer(return_X_y=True)
        x = MinMaxScaler().fit_transform(x)
    else:
        # 600 of the 1797 digits (every class ~60 times) keep the SVM fits fast.
        x, y = load_digits(return_X_y=True)
        x, y = x[:600] / 16.0, y[:600]
    return x.astype(np.float32).astype(np.float64), y.astype(np.int64)


# name -> (dataset, estimator factory, what the scores are compared with)
CASES: dict[str, tuple[str, Callable[[], Any], str]] = {
    "logreg-binary": ("cancer", lambda: LogisticRegression(max_iter=1000), "proba"),
    "logreg-multinomial": ("digits", lambda: LogisticRegression(max_iter=1000), "proba"),
    "logreg-ovr-liblinear": (
        "digits",
        lambda: OneVsRestClassifier(LogisticRegression(solver="liblinear")),
        "proba",
    ),
    "linearsvc-binary": ("cancer", lambda: LinearSVC(), "decision"),
    "linearsvc-multiclass": ("digits", lambda: LinearSVC(), "decision"),
    "ridge-multiclass": ("digits", lambda: RidgeClassifier(), "decision"),
    "sgd-log-multiclass": (
        "digits",
        lambda: SGDClassifier(loss="log_loss", random_state=0),
        "proba",
    ),
    "svc-linear-binary": ("cancer", lambda: SVC(kernel="linear"), "decision"),
    "svc-rbf-binary": ("cancer", lambda: SVC(kernel="rbf"), "decision"),
    "svc-linear-ovr": ("digits", lambda: SVC(kernel="linear"), "decision"),
    "svc-rbf-ovr": ("digits", lambda: SVC(kernel="rbf"), "decision"),
    "svc-rbf-ovo": ("digits", lambda: SVC(decision_function_shape="ovo"), "decision"),
    "svc-rbf-break-ties": ("digits", lambda: SVC(break_ties=True), "decision"),
    "svc-poly-ovr": ("digits", lambda: SVC(kernel="poly", degree=2), "decision"),
    "nusvc-rbf-binary": ("cancer", lambda: NuSVC(nu=0.2), "decision"),
    "nusvc-rbf-ovr": ("digits", lambda: NuSVC(nu=0.1), "decision"),
    "pipeline-scaler-svc": (
        "digits",
        lambda: make_pipeline(StandardScaler(), SVC(kernel="rbf")),
        "decision",
    ),
}


@functools.cache
def _fitted(case: str) -> Any:
    dataset, factory, _ = CASES[case]
    x, y = _data(dataset)
    return factory().fit(x, y)


@pytest.mark.parametrize("case", list(CASES))
def test_white_box_twin_is_exact(case: str) -> None:
    dataset, _, scores = CASES[case]
    x, _ = _data(dataset)
    est = _fitted(case)
    model = SklearnClassifier(est, bounds=(0.0, 1.0))

    assert model.white_box and model.has_gradients and model.has_scores
    assert "white-box" in model.describe()
    np.testing.assert_array_equal(model.predict(x.astype(np.float32)), est.predict(x))
    if scores == "proba":
        np.testing.assert_allclose(
            model.predict_proba(x.astype(np.float32)), est.predict_proba(x), atol=1e-5
        )
    np.testing.assert_allclose(
        model.decision_function(x.astype(np.float32)), est.decision_function(x), atol=1e-5
    )


@pytest.mark.parametrize("case", ["svc-rbf-ovr", "svc-rbf-ovo"])
def test_multiclass_svm_logits_are_sklearns_ovr_scores(case: str) -> None:
    # Whatever decision_function_shape says, the logits are the one-vs-rest scores.
    x, _ = _data("digits")
    model = SklearnClassifier(_fitted(case), bounds=(0.0, 1.0))
    reference = SklearnClassifier(_fitted("svc-rbf-ovr"), bounds=(0.0, 1.0))
    logits = model.logits(torch.as_tensor(x[:50], dtype=torch.float32))
    assert logits.dtype == torch.float32 and logits.shape == (50, 10)
    np.testing.assert_allclose(
        logits.numpy(), reference.decision_function(x[:50].astype(np.float32)), atol=1e-5
    )


def test_binary_logits_are_zero_and_the_decision_value() -> None:
    x, _ = _data("cancer")
    est = _fitted("svc-rbf-binary")
    logits = SklearnClassifier(est, bounds=(0.0, 1.0)).logits(
        torch.as_tensor(x[:40], dtype=torch.float32)
    )
    np.testing.assert_array_equal(logits[:, 0].numpy(), 0.0)
    np.testing.assert_allclose(logits[:, 1].numpy(), est.decision_function(x[:40]), atol=1e-5)


@pytest.mark.parametrize(
    "case", ["logreg-binary", "logreg-multinomial", "svc-linear-binary", "svc-rbf-ovr"]
)
def test_gradients_exist_and_point_uphill(case: str) -> None:
    dataset, _, _ = CASES[case]
    x_np, y_np = _data(dataset)
    model = SklearnClassifier(_fitted(case), bounds=(0.0, 1.0))
    x = torch.as_tensor(x_np[:32], dtype=torch.float32).requires_grad_(True)
    y = torch.as_tensor(y_np[:32])
    # The log-probability of the true class: what a cross-entropy attack differentiates.
    score = torch.log_softmax(model.logits(x), dim=1).gather(1, y[:, None]).sum()
    (grad,) = torch.autograd.grad(score, x)

    assert grad.shape == x.shape and grad.dtype == torch.float32
    assert torch.isfinite(grad).all()
    assert (grad.abs().sum(dim=1) > 0).all()
    if case.startswith("logreg"):
        # Log-probabilities are concave in x: a small step along the gradient raises them.
        before = torch.log_softmax(model.logits(x.detach()), dim=1).gather(1, y[:, None])
        after = torch.log_softmax(model.logits(x.detach() + 1e-3 * grad), dim=1)
        assert (after.gather(1, y[:, None]) > before).all()


def test_image_input_shape_is_flattened() -> None:
    x, _ = _data("digits")
    est = _fitted("logreg-multinomial")
    model = SklearnClassifier(est, bounds=(0.0, 1.0), input_shape=(1, 8, 8))
    images = x.reshape(-1, 1, 8, 8).astype(np.float32)
    np.testing.assert_array_equal(model.predict(images), est.predict(x))
    assert model.input_shape == (1, 8, 8)


def test_input_shape_must_hold_the_estimators_features() -> None:
    with pytest.raises(ValueError, match=r"input_shape.*n_features_in_=64"):
        SklearnClassifier(_fitted("logreg-multinomial"), bounds=(0, 1), input_shape=(1, 7, 7))


def test_labels_must_be_encoded_as_indices() -> None:
    x, y = _data("cancer")
    est = LogisticRegression(max_iter=500).fit(x, np.where(y == 1, "benign", "malignant"))
    with pytest.raises(ValueError, match=r"classes_ must be 0, 1, \.\.\., k-1.*LabelEncoder"):
        SklearnClassifier(est, bounds=(0, 1))
    shifted = LogisticRegression(max_iter=500).fit(x, y + 1)
    with pytest.raises(ValueError, match=r"0\.\.k-1"):
        SklearnClassifier(shifted, bounds=(0, 1))


def test_unfitted_estimator_is_refused() -> None:
    with pytest.raises(ValueError, match="fit it"):
        SklearnClassifier(LogisticRegression(), bounds=(0, 1))


def test_describe_names_the_scheme() -> None:
    model = SklearnClassifier(_fitted("logreg-multinomial"), bounds=(0, 1))
    assert model.describe().startswith("LogisticRegression (multinomial")
    assert "exact torch equivalent" in model.describe()
    svc = SklearnClassifier(_fitted("svc-rbf-ovo"), bounds=(0, 1))
    assert "rbf kernel" in svc.describe() and "'ovo'" in svc.describe()


@pytest.mark.parametrize(
    "factory",
    [
        lambda: DecisionTreeClassifier(random_state=0),
        lambda: RandomForestClassifier(n_estimators=20, random_state=0),
        lambda: KNeighborsClassifier(),
        lambda: make_pipeline(PCA(n_components=20, random_state=0), LogisticRegression()),
    ],
    ids=["tree", "forest", "knn", "pipeline-pca"],
)
def test_other_estimators_are_black_boxes_with_scores(factory: Callable[[], Any]) -> None:
    x, y = _data("digits")
    est = factory().fit(x, y)
    model = SklearnClassifier(est, bounds=(0.0, 1.0))

    assert not model.white_box and not model.has_gradients and model.has_scores
    assert "black-box" in model.describe()
    x32 = x.astype(np.float32)
    np.testing.assert_array_equal(model.predict(x32), est.predict(x))
    np.testing.assert_allclose(model.predict_proba(x32), est.predict_proba(x), rtol=1e-5, atol=1e-6)
    logits = model.logits(torch.as_tensor(x32[:5]))
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()


class _LabelOnly:
    """An estimator that answers labels only, like a hardened prediction service."""

    def __init__(self, inner: Any, *, with_n_features: bool = True) -> None:
        self.inner = inner
        self.classes_ = inner.classes_
        if with_n_features:
            self.n_features_in_ = inner.n_features_in_
        self.calls = 0

    def predict(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        out: np.ndarray = self.inner.predict(x)
        return out


def test_predict_only_estimator_is_label_only() -> None:
    x, y = _data("digits")
    est = _LabelOnly(DecisionTreeClassifier(random_state=0).fit(x, y))
    model = SklearnClassifier(est, bounds=(0.0, 1.0))

    assert not model.has_scores and not model.has_gradients
    assert model.describe().endswith("black-box (labels only)")
    np.testing.assert_array_equal(model.predict(x.astype(np.float32)), est.inner.predict(x))
    with pytest.raises(UnsupportedModelError, match="labels only"):
        model.logits(torch.as_tensor(x[:3], dtype=torch.float32))
    with pytest.raises(UnsupportedModelError):
        model.predict_proba(x[:3].astype(np.float32))
    with pytest.raises(UnsupportedModelError, match="decision_function"):
        model.decision_function(x[:3].astype(np.float32))


def test_estimator_without_n_features_needs_input_shape() -> None:
    x, y = _data("digits")
    est = _LabelOnly(DecisionTreeClassifier(random_state=0).fit(x, y), with_n_features=False)
    with pytest.raises(ValueError, match="input_shape="):
        SklearnClassifier(est, bounds=(0, 1))
    model = SklearnClassifier(est, bounds=(0, 1), input_shape=(1, 8, 8))
    assert model.predict(x[:4].reshape(-1, 1, 8, 8).astype(np.float32)).shape == (4,)


def test_black_box_batch_reaches_the_estimator_once_per_batch() -> None:
    x, y = _data("digits")
    est = _LabelOnly(DecisionTreeClassifier(random_state=0).fit(x, y))
    model = SklearnClassifier(est, bounds=(0.0, 1.0), batch_size=100)
    model.predict(x[:250].astype(np.float32))
    assert est.calls == 3


@pytest.mark.parametrize("white_box", [True, False])
def test_queries_are_counted_and_the_budget_enforced(white_box: bool) -> None:
    x, y = _data("digits")
    x32 = x.astype(np.float32)
    if white_box:
        est: Any = _fitted("logreg-multinomial")
    else:
        est = _LabelOnly(DecisionTreeClassifier(random_state=0).fit(x, y))
    model = SklearnClassifier(est, bounds=(0.0, 1.0), query_budget=100)

    model.predict(x32[:60])
    assert model.query_count == 60
    if white_box:
        model.predict_proba(x32[:30], batch_size=7)
    else:
        model.predict(x32[:30], batch_size=7)
    assert model.query_count == 90
    calls = getattr(est, "calls", None)
    with pytest.raises(QueryBudgetExceededError, match="query_budget=100"):
        model.predict(x32[:20])
    assert model.query_count == 90
    assert getattr(est, "calls", None) == calls  # the refused call never reached the model
    model.reset_queries()
    model.predict(x32[:20])
    assert model.query_count == 20


def test_estimator_whose_rule_differs_from_its_parameters_falls_back_to_black_box() -> None:
    class Shifted(LogisticRegression):
        """A subclass whose decision function is not what coef_ and intercept_ say."""

        def decision_function(self, X: Any) -> np.ndarray:
            out: np.ndarray = super().decision_function(X) + 5.0
            return out

    x, y = _data("cancer")
    est = Shifted(max_iter=500).fit(x, y)
    with pytest.warns(UserWarning, match="black box"):
        model = SklearnClassifier(est, bounds=(0.0, 1.0))
    assert not model.white_box and not model.has_gradients
    np.testing.assert_array_equal(model.predict(x.astype(np.float32)), est.predict(x))
