"""Scikit-learn adapter: a fitted classifier as an advml model.

Linear models and kernel SVMs are white-box: their decision function is rebuilt once,
exactly, from the fitted parameters as torch tensors, so gradient attacks apply to them
as to any network. Every other classifier (trees, ensembles, nearest neighbours, ...) is
a black box answered through ``predict_proba`` or, failing that, ``predict``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, overload

import numpy as np
import torch
from torch import Tensor

from advml.errors import UnsupportedModelError
from advml.models.base import BaseClassifier, Bounds, same_kind_as

__all__ = ["SklearnClassifier"]

_KERNELS = ("linear", "rbf", "poly", "sigmoid")
_PROBA_FLOOR = 1e-12


@dataclass(frozen=True)
class _Exact:
    """A torch twin of a fitted estimator's decision function.

    ``raw`` maps flattened float inputs to the model's internal scores (one column per
    class, per one-vs-one pair, or a single column for binary models); ``decision``,
    ``logits`` and ``labels`` map those scores to what scikit-learn's
    ``decision_function``, the adapter's logits and ``predict`` return.
    """

    detail: str
    raw: Callable[[Tensor], Tensor]
    decision: Callable[[Tensor], Tensor]
    logits: Callable[[Tensor], Tensor]
    labels: Callable[[Tensor], Tensor]


class SklearnClassifier(BaseClassifier):
    """A fitted scikit-learn classifier as a :class:`~advml.models.Classifier`.

    White-box (``has_gradients=True``) for linear classifiers (``LogisticRegression``,
    ``LinearSVC``, ``SGDClassifier``, ``RidgeClassifier``, ... and ``OneVsRestClassifier``
    over them) and for ``SVC``/``NuSVC`` with a linear, RBF, polynomial or sigmoid
    kernel, optionally behind ``StandardScaler``/``MinMaxScaler``/``MaxAbsScaler`` steps
    of a ``Pipeline``. The decision function is rebuilt exactly as torch tensors (float64
    inside, float32 logits out) and checked against the estimator once at construction;
    predictions equal ``estimator.predict``.

    The logits are the decision scores:

    * ``LogisticRegression``: binary ``[0, d]``, multinomial ``W x + b``, one-vs-rest
      ``log sigmoid(d_k)``, so that ``predict_proba`` equals the estimator's;
    * other linear models: binary ``[0, d]``, multiclass the one-vs-rest scores ``d``;
    * SVMs: binary ``[0, d]``; multiclass the one-vs-one decisions turned into
      one-vs-rest scores as scikit-learn does (votes plus confidences scaled into
      ``(-1/3, 1/3)``), whatever ``decision_function_shape`` says.

    For SVMs and non-logistic linear models ``predict_proba`` is ``softmax(logits)``, a
    monotone score, *not* the Platt-calibrated ``SVC(probability=True).predict_proba``.
    :meth:`decision_function` returns exactly what the estimator's does.

    Any other estimator is black-box (``has_gradients=False``): with ``predict_proba``
    the logits are ``log(max(p, 1e-12))``; with ``predict`` only the model is label-only
    (``has_scores=False``). Each call passes the whole batch to the estimator once, on
    the CPU.

    Parameters
    ----------
    estimator : sklearn classifier
        A fitted classifier whose ``classes_`` are ``0, 1, ..., k-1``.
    bounds : (float, float)
        Minimum and maximum valid input value (e.g. ``(0.0, 1.0)``).
    input_shape : tuple of int, optional
        Shape of one input; default ``(estimator.n_features_in_,)``. When given (e.g.
        ``(1, 8, 8)`` for images) inputs are flattened before the estimator sees them.
    device : torch.device or str, optional
        Device of the white-box tensors; CPU by default.
    query_budget : int, optional
        Maximum number of inputs the model may evaluate; ``None`` means unlimited.
    batch_size : int
        Inputs per evaluation in ``predict``/``predict_proba``; default 256.

    Attributes
    ----------
    estimator : sklearn classifier
        The wrapped estimator (never modified).
    white_box : bool
        True when the decision function runs as an exact torch equivalent.

    Raises
    ------
    ValueError
        If the estimator is not fitted, its classes are not ``0..k-1``, or
        ``input_shape`` does not hold ``n_features_in_`` values.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from advml.models import SklearnClassifier
    >>> x = np.random.default_rng(0).random((40, 4))
    >>> est = LogisticRegression().fit(x, (x[:, 0] > 0.5).astype(int))
    >>> model = SklearnClassifier(est, bounds=(0.0, 1.0))
    >>> model.white_box, bool((model.predict(x) == est.predict(x)).all())
    (True, True)
    """

    def __init__(
        self,
        estimator: Any,
        *,
        bounds: Bounds,
        input_shape: tuple[int, ...] | None = None,
        device: torch.device | str | None = None,
        query_budget: int | None = None,
        batch_size: int = 256,
    ) -> None:
        if not callable(getattr(estimator, "predict", None)):
            raise UnsupportedModelError(
                f"estimator must be a fitted scikit-learn classifier with predict(); got "
                f"{type(estimator).__name__}. For any other function use CallableClassifier"
            )
        classes = getattr(estimator, "classes_", None)
        if classes is None:
            raise ValueError(
                f"estimator {type(estimator).__name__} has no classes_: fit it before "
                f"wrapping it in SklearnClassifier"
            )
        classes = np.asarray(classes)
        n_classes = len(classes)
        if classes.ndim != 1 or not np.array_equal(classes, np.arange(n_classes)):
            shown = ", ".join(map(repr, classes.ravel()[:6].tolist()))
            raise ValueError(
                f"estimator.classes_ must be 0, 1, ..., k-1; got [{shown}"
                f"{', ...' if classes.size > 6 else ''}]. Encode the labels as 0..k-1 "
                f"(e.g. with sklearn.preprocessing.LabelEncoder) and refit"
            )
        n_features = getattr(estimator, "n_features_in_", None)
        if input_shape is None:
            if n_features is None:
                raise ValueError(
                    f"estimator {type(estimator).__name__} has no n_features_in_; pass "
                    f"input_shape= (the shape of one input)"
                )
            input_shape = (int(n_features),)
        super().__init__(
            input_shape=input_shape,
            n_classes=n_classes,
            bounds=bounds,
            device=device,
            query_budget=query_budget,
            batch_size=batch_size,
        )
        self.n_features = int(np.prod(self.input_shape))
        if n_features is not None and int(n_features) != self.n_features:
            raise ValueError(
                f"input_shape={self.input_shape} holds {self.n_features} values but the "
                f"estimator expects n_features_in_={int(n_features)}; give an input_shape "
                f"whose product is {int(n_features)}"
            )
        self.estimator = estimator
        # MPS has no float64; elsewhere float64 keeps the twin exact.
        self._dtype = torch.float32 if self.device.type == "mps" else torch.float64
        self._exact = _build_exact(estimator, self.n_classes, self.device, self._dtype)
        if self._exact is not None and not self._matches_estimator(self._exact):
            warnings.warn(
                f"{_name(estimator)}'s decision_function differs from what its fitted "
                f"parameters give (a subclass with its own rule?); treating it as a black box",
                UserWarning,
                stacklevel=2,
            )
            self._exact = None
        self.white_box = self._exact is not None
        self.has_gradients = self.white_box
        self.has_scores = self.white_box or callable(getattr(estimator, "predict_proba", None))

    # -- description -----------------------------------------------------------------
    def describe(self) -> str:
        """One line for reports: the estimator and how advml reaches it.

        For example ``"LogisticRegression (multinomial, 10 classes), white-box through an
        exact torch equivalent"`` or ``"RandomForestClassifier, black-box (scores from
        predict_proba)"``.
        """
        name = _name(self.estimator)
        if self._exact is not None:
            return f"{name} ({self._exact.detail}), white-box through an exact torch equivalent"
        if self.has_scores:
            return f"{name}, black-box (scores from predict_proba)"
        return f"{name}, black-box (labels only)"

    def __repr__(self) -> str:
        return (
            f"SklearnClassifier({_name(self.estimator)}, input_shape={self.input_shape}, "
            f"n_classes={self.n_classes}, bounds={self.bounds}, white_box={self.white_box})"
        )

    # -- evaluation ------------------------------------------------------------------
    def _flat(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], self.n_features).to(dtype=self._dtype)

    def _numpy(self, x: Tensor) -> np.ndarray:
        # The one host copy of a black-box call: the whole batch at once.
        out = x.detach().reshape(x.shape[0], self.n_features).cpu().numpy().astype(np.float64)
        return out

    def _logits(self, x: Tensor) -> Tensor:
        if self._exact is not None:
            return self._exact.logits(self._exact.raw(self._flat(x))).to(torch.float32)
        proba = np.asarray(self.estimator.predict_proba(self._numpy(x)), dtype=np.float64)
        if proba.shape != (x.shape[0], self.n_classes):
            raise UnsupportedModelError(
                f"{_name(self.estimator)}.predict_proba returned shape {proba.shape}, "
                f"expected ({x.shape[0]}, {self.n_classes})"
            )
        p = torch.as_tensor(proba).clamp_min(_PROBA_FLOOR).log()
        return p.to(device=self.device, dtype=torch.float32)

    def _labels(self, x: Tensor) -> Tensor:
        if self._exact is not None:
            return self._exact.labels(self._exact.raw(self._flat(x)))
        labels = np.asarray(self.estimator.predict(self._numpy(x)))
        if labels.shape != (x.shape[0],):
            raise UnsupportedModelError(
                f"{_name(self.estimator)}.predict returned shape {labels.shape}, expected "
                f"({x.shape[0]},)"
            )
        return torch.as_tensor(labels.astype(np.int64), device=self.device)

    def predict_labels(self, x: Tensor) -> Tensor:
        """Predicted labels for a tensor batch (counted as queries).

        Always the estimator's own decision rule: the exact twin's rule (float64,
        scikit-learn's tie-breaking) for white-box models, ``estimator.predict`` for
        black-box ones.
        """
        self._count(x.shape[0])
        with torch.no_grad():
            return self._labels(x)

    @overload
    def decision_function(self, x: np.ndarray, *, batch_size: int | None = None) -> np.ndarray: ...
    @overload
    def decision_function(self, x: Tensor, *, batch_size: int | None = None) -> Tensor: ...
    def decision_function(
        self, x: np.ndarray | Tensor, *, batch_size: int | None = None
    ) -> np.ndarray | Tensor:
        """What ``estimator.decision_function`` returns, in float64 (counted as queries).

        Shape ``(n,)`` for binary models, ``(n, n_classes)`` for one-vs-rest scores and
        ``(n, k(k-1)/2)`` for SVMs with ``decision_function_shape='ovo'``.

        Raises
        ------
        UnsupportedModelError
            If the estimator has no ``decision_function``.
        """
        has_df = callable(getattr(self.estimator, "decision_function", None))
        if self._exact is None and not has_df:
            raise UnsupportedModelError(
                f"{_name(self.estimator)} has no decision_function; use predict_proba() "
                f"or predict()"
            )
        exact = self._exact

        def run(batch: Tensor) -> Tensor:
            self._count(batch.shape[0])
            if exact is not None:
                return exact.decision(exact.raw(self._flat(batch))).to(torch.float64)
            out = np.asarray(self.estimator.decision_function(self._numpy(batch)))
            return torch.as_tensor(out, dtype=torch.float64, device=self.device)

        return same_kind_as(self._batched(self.as_tensor(x), run, batch_size), x)

    # -- the check that the twin is exact ----------------------------------------------
    def _matches_estimator(self, exact: _Exact) -> bool:
        """Compare the twin with ``estimator.decision_function`` on points in bounds.

        A mismatch (an estimator subclass that changes the decision rule) makes the model
        a black box rather than a wrong white box; this call is not a query.
        """
        low, high = self.bounds
        rng = np.random.default_rng(0)
        probe = rng.uniform(low, high, size=(8, self.n_features))
        probe[0] = low
        try:
            reference = np.asarray(self.estimator.decision_function(probe), dtype=np.float64)
        except Exception:  # any failure: the twin cannot be trusted
            return False
        with torch.no_grad():
            t = torch.as_tensor(probe, dtype=self._dtype, device=self.device)
            ours = exact.decision(exact.raw(t)).double().cpu().numpy()
        tol = 1e-6 if self._dtype == torch.float64 else 1e-3
        return ours.shape == reference.shape and bool(
            np.allclose(ours, reference, rtol=tol, atol=tol)
        )


# -- building the twins -------------------------------------------------------------------
def _name(estimator: Any) -> str:
    return type(estimator).__name__


def _dense(value: Any) -> np.ndarray:
    if hasattr(value, "toarray"):  # scipy sparse (sparsified coef_, sparse support vectors)
        value = value.toarray()
    return np.asarray(value, dtype=np.float64)


def _array(value: Any, device: torch.device, dtype: torch.dtype) -> Tensor:
    return torch.as_tensor(_dense(value), device=device).to(dtype)


def _build_exact(
    estimator: Any, n_classes: int, device: torch.device, dtype: torch.dtype
) -> _Exact | None:
    """The exact twin of ``estimator``, or None when advml has none for it."""
    from sklearn.pipeline import Pipeline

    if isinstance(estimator, Pipeline):
        return _pipeline(estimator, n_classes, device, dtype)
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.svm._base import BaseSVC

    if isinstance(estimator, BaseSVC):
        return _svm(estimator, n_classes, device, dtype)
    if isinstance(estimator, OneVsRestClassifier):
        return _one_vs_rest(estimator, n_classes, device, dtype)
    return _linear(estimator, n_classes, device, dtype)


def _linear(
    estimator: Any, n_classes: int, device: torch.device, dtype: torch.dtype
) -> _Exact | None:
    from sklearn.linear_model import LogisticRegression, SGDClassifier
    from sklearn.linear_model._base import LinearClassifierMixin

    if not isinstance(estimator, LinearClassifierMixin):
        return None
    coef = getattr(estimator, "coef_", None)
    intercept = getattr(estimator, "intercept_", None)
    if coef is None or intercept is None:
        return None
    w = _array(coef, device, dtype)
    if w.ndim == 1:  # RidgeClassifier keeps a 1-d coef_ for two classes
        w = w[None, :]
    if w.ndim != 2 or w.shape[0] not in (1, n_classes) or (w.shape[0] == 1) != (n_classes == 2):
        return None
    b = _array(np.ravel(intercept) * np.ones(w.shape[0]), device, dtype)

    binary_logits: Callable[[Tensor], Tensor] = _zero_d
    multi_logits: Callable[[Tensor], Tensor] = _identity
    detail = "binary" if n_classes == 2 else f"one-vs-rest, {n_classes} classes"
    if isinstance(estimator, LogisticRegression):
        ovr, binary_softmax = _logistic_scheme(estimator, n_classes)
        if n_classes == 2:
            # sklearn < 1.5 with multi_class='multinomial': softmax([-d, d]).
            binary_logits = _minus_d_d if binary_softmax else _zero_d
        elif ovr:
            # Normalised one-vs-rest probabilities sigmoid(d_k) / sum_j sigmoid(d_j) are
            # softmax(log sigmoid(d)).
            multi_logits = torch.nn.functional.logsigmoid
        else:
            detail = f"multinomial, {n_classes} classes"
    elif isinstance(estimator, SGDClassifier) and estimator.loss == "log_loss" and n_classes > 2:
        multi_logits = torch.nn.functional.logsigmoid

    def raw(x: Tensor) -> Tensor:
        return x @ w.T + b

    return _Exact(
        detail=detail,
        raw=raw,
        decision=_binary_column if n_classes == 2 else _identity,
        logits=(lambda d: binary_logits(d[:, 0])) if n_classes == 2 else multi_logits,
        labels=_binary_linear_labels if n_classes == 2 else _argmax,
    )


def _logistic_scheme(estimator: Any, n_classes: int) -> tuple[bool, bool]:
    """(one-vs-rest?, binary softmax over [-d, d]?) for a LogisticRegression.

    scikit-learn >= 1.8 has no ``multi_class``: binary models use a sigmoid, multiclass
    models a softmax. Older versions chose per ``multi_class`` and the solver.
    """
    multi_class = getattr(estimator, "multi_class", "deprecated")
    if multi_class in ("ovr", "warn"):
        return True, False
    if multi_class in ("auto", "deprecated"):
        return n_classes <= 2 or getattr(estimator, "solver", "") == "liblinear", False
    return False, n_classes == 2  # explicit 'multinomial'


def _one_vs_rest(
    estimator: Any, n_classes: int, device: torch.device, dtype: torch.dtype
) -> _Exact | None:
    from sklearn.linear_model import LogisticRegression

    if getattr(estimator, "multilabel_", False):
        return None
    subs = [_linear(e, 2, device, dtype) for e in estimator.estimators_]
    if any(s is None for s in subs) or len(subs) != (1 if n_classes == 2 else n_classes):
        return None
    parts = [s for s in subs if s is not None]
    logistic = all(isinstance(e, LogisticRegression) for e in estimator.estimators_)
    inner = _name(estimator.estimators_[0])

    def raw(x: Tensor) -> Tensor:
        return torch.cat([p.raw(x) for p in parts], dim=1)

    if n_classes == 2:
        return _Exact(
            detail=f"{inner}, binary",
            raw=raw,
            decision=_binary_column,
            logits=lambda d: _zero_d(d[:, 0]),
            labels=_binary_linear_labels,
        )
    return _Exact(
        detail=f"{inner}, one-vs-rest, {n_classes} classes",
        raw=raw,
        decision=_identity,
        logits=torch.nn.functional.logsigmoid if logistic else _identity,
        labels=_argmax,
    )


def _svm(estimator: Any, n_classes: int, device: torch.device, dtype: torch.dtype) -> _Exact | None:
    kernel_name = estimator.kernel
    if not isinstance(kernel_name, str) or kernel_name not in _KERNELS:
        return None
    sv = _array(estimator.support_vectors_, device, dtype)
    dual = _array(estimator.dual_coef_, device, dtype)
    intercept = _array(estimator.intercept_, device, dtype)
    gamma = float(estimator._gamma)
    coef0 = float(estimator.coef0)
    degree = int(estimator.degree)
    sv_sq = (sv * sv).sum(dim=1)

    def kernel(x: Tensor) -> Tensor:
        dot = x @ sv.T
        if kernel_name == "linear":
            return dot
        if kernel_name == "rbf":
            dist = ((x * x).sum(dim=1, keepdim=True) + sv_sq - 2.0 * dot).clamp_min(0.0)
            return torch.exp(-gamma * dist)
        if kernel_name == "poly":
            return (gamma * dot + coef0) ** degree
        return torch.tanh(gamma * dot + coef0)

    detail = f"{kernel_name} kernel"
    if n_classes == 2:
        # sklearn flips libsvm's signs for two classes, so d > 0 means class 1.
        def raw_binary(x: Tensor) -> Tensor:
            return kernel(x) @ dual.T + intercept

        return _Exact(
            detail=f"{detail}, binary",
            raw=raw_binary,
            decision=_binary_column,
            logits=lambda d: _zero_d(d[:, 0]),
            labels=lambda d: (d[:, 0] >= 0).long(),
        )

    # One-vs-one (libsvm): for the pair (i, j), support vectors of class i weigh with
    # dual_coef_[j - 1], those of class j with dual_coef_[i]; d > 0 votes for i.
    counts = np.asarray(estimator.n_support_, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)])
    pairs = [(i, j) for i in range(n_classes) for j in range(i + 1, n_classes)]
    dual_np = _dense(estimator.dual_coef_)
    weights = np.zeros((sv.shape[0], len(pairs)))
    # signs[p] is +1 at class i and -1 at class j of pair p: a pair's vote or confidence
    # counts for i and against j.
    signs = np.zeros((len(pairs), n_classes))
    for p, (i, j) in enumerate(pairs):
        si, sj = slice(starts[i], starts[i + 1]), slice(starts[j], starts[j + 1])
        weights[si, p] = dual_np[j - 1, si]
        weights[sj, p] = dual_np[i, sj]
        signs[p, i], signs[p, j] = 1.0, -1.0
    coef = torch.as_tensor(weights, device=device).to(dtype)
    sign = torch.as_tensor(signs, device=device).to(dtype)
    # Votes class j gets when it wins every pair it is the second member of.
    j_wins = torch.as_tensor((signs < 0).sum(axis=0), device=device).to(dtype)

    def raw_ovo(x: Tensor) -> Tensor:
        return kernel(x) @ coef + intercept

    def ovr(d: Tensor) -> Tensor:
        # sklearn.utils.multiclass._ovr_decision_function: votes plus the summed
        # confidences mapped monotonically into (-1/3, 1/3), so a confidence never
        # outweighs one vote. d >= 0 votes for i there.
        votes = (d >= 0).to(d.dtype) @ sign + j_wins
        conf = d @ sign
        return votes + conf / (3.0 * (conf.abs() + 1.0))

    def vote(d: Tensor) -> Tensor:
        # libsvm's rule: d > 0 votes for i, the first class with most votes wins.
        return ((d > 0).to(d.dtype) @ sign + j_wins).argmax(dim=1)

    shape = estimator.decision_function_shape
    break_ties = bool(getattr(estimator, "break_ties", False)) and shape == "ovr"
    return _Exact(
        detail=f"{detail}, one-vs-one, {n_classes} classes, decision_function_shape={shape!r}",
        raw=raw_ovo,
        decision=ovr if shape == "ovr" else _identity,
        logits=ovr,
        labels=(lambda d: ovr(d).argmax(dim=1)) if break_ties else vote,
    )


def _pipeline(
    estimator: Any, n_classes: int, device: torch.device, dtype: torch.dtype
) -> _Exact | None:
    from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler

    steps: list[Callable[[Tensor], Tensor]] = []
    names: list[str] = []
    for _, step in estimator.steps[:-1]:
        if step is None or step == "passthrough":
            continue
        if isinstance(step, StandardScaler):
            # mean_ exists even with with_mean=False; transform uses the flags.
            mean = _array(step.mean_, device, dtype) if step.with_mean else None
            scale = _array(step.scale_, device, dtype) if step.with_std else None
            steps.append(_affine(shift=mean, divide=scale))
        elif isinstance(step, MaxAbsScaler):
            steps.append(_affine(divide=_array(step.scale_, device, dtype)))
        elif isinstance(step, MinMaxScaler):
            steps.append(
                _affine(
                    multiply=_array(step.scale_, device, dtype),
                    add=_array(step.min_, device, dtype),
                    clip=tuple(step.feature_range) if step.clip else None,
                )
            )
        else:
            return None
        names.append(_name(step))
    final = estimator.steps[-1][1]
    inner = _build_exact(final, n_classes, device, dtype)
    if inner is None:
        return None

    def raw(x: Tensor) -> Tensor:
        for step_fn in steps:
            x = step_fn(x)
        return inner.raw(x)

    chain = " -> ".join([*names, _name(final)])
    return _Exact(
        detail=f"{chain}: {inner.detail}",
        raw=raw,
        decision=inner.decision,
        logits=inner.logits,
        labels=inner.labels,
    )


def _affine(
    *,
    shift: Tensor | None = None,
    divide: Tensor | None = None,
    multiply: Tensor | None = None,
    add: Tensor | None = None,
    clip: tuple[float, float] | None = None,
) -> Callable[[Tensor], Tensor]:
    def apply(x: Tensor) -> Tensor:
        if shift is not None:
            x = x - shift
        if divide is not None:
            x = x / divide
        if multiply is not None:
            x = x * multiply
        if add is not None:
            x = x + add
        if clip is not None:
            x = x.clamp(clip[0], clip[1])
        return x

    return apply


def _identity(d: Tensor) -> Tensor:
    return d


def _argmax(d: Tensor) -> Tensor:
    return d.argmax(dim=1)


def _binary_column(d: Tensor) -> Tensor:
    return d[:, 0]


def _zero_d(d: Tensor) -> Tensor:
    return torch.stack([torch.zeros_like(d), d], dim=1)


def _minus_d_d(d: Tensor) -> Tensor:
    return torch.stack([-d, d], dim=1)


def _binary_linear_labels(d: Tensor) -> Tensor:
    # LinearClassifierMixin.predict: class 1 where the score is > 0.
    return (d[:, 0] > 0).long()
