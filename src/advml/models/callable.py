"""Any Python function as a black-box model: the adapter for a remote prediction API."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from advml.models.base import BaseClassifier, Bounds, Classifier, wrapped_queries_left
from advml.validation import check_choice

__all__ = ["CallableClassifier"]

_PROBA_FLOOR = 1e-12
# Rows whose sum is this close to 1 are taken as they are (float32 softmax noise).
_SUM_TOLERANCE = 1e-4
# Entries may exceed [0, 1] by this much before they are called "not probabilities".
_RANGE_TOLERANCE = 1e-6


class CallableClassifier(BaseClassifier):
    """A function from a batch of inputs to scores or labels, as a black-box model.

    Use it for a remote prediction API, a model in another framework, or anything else
    advml can only query. Every call of ``fn`` is one batch; each input counts as one
    query and ``query_budget`` is enforced before ``fn`` is called. The output is checked
    on every call, so a misbehaving API fails loudly instead of corrupting an attack.

    Parameters
    ----------
    fn : callable
        Takes a float32 batch of shape ``(n, *input_shape)`` (a numpy array, or a tensor
        on ``device`` when ``accepts='torch'``) and returns, as a numpy array, tensor or
        nested list, ``(n, n_classes)`` probabilities or logits, or ``(n,)`` labels.
    input_shape : tuple of int
        Shape of one input, e.g. ``(1, 28, 28)``.
    n_classes : int
        Number of classes (>= 2).
    bounds : (float, float)
        Minimum and maximum valid input value.
    returns : {"probs", "logits", "labels"}
        What ``fn`` returns; default ``"probs"``. Probabilities that do not sum to 1
        (rounded, or only the top-k given) are accepted with a warning, clamped to
        ``>= 1e-12`` and renormalised; the logits are then ``log(p)``. ``"labels"`` makes
        the model label-only (``has_scores=False``).
    accepts : {"numpy", "torch"}
        What ``fn`` takes; default ``"numpy"``.
    device : torch.device or str, optional
        Device of the tensors returned by :meth:`logits`; CPU by default.
    query_budget : int, optional
        Maximum number of inputs ``fn`` may be asked about; ``None`` means unlimited.
    batch_size : int
        Inputs per call of ``fn`` in ``predict``/``predict_proba``; default 256.
    wraps : Classifier, optional
        The advml model ``fn`` asks, once per input asked here (an API put in front of
        it). Its query budget is then this model's too: ``queries_left`` is the smaller
        of both, and a call it cannot pay for is refused before ``fn`` is called.

    Raises
    ------
    ValueError
        When ``fn`` returns the wrong shape, NaN or infinite values, values that are not
        probabilities, or labels outside ``[0, n_classes)`` (on the call that returns them).

    Examples
    --------
    >>> import numpy as np
    >>> from advml.models import CallableClassifier
    >>> def api(x):
    ...     p = np.stack([x.mean(axis=1), 1 - x.mean(axis=1)], axis=1)
    ...     return p.round(2)
    >>> model = CallableClassifier(api, input_shape=(3,), n_classes=2, bounds=(0, 1))
    >>> model.predict(np.array([[0.9, 0.8, 0.7]], dtype=np.float32))
    array([0])
    >>> model.query_count
    1
    """

    has_gradients = False

    def __init__(
        self,
        fn: Callable[[Any], Any],
        *,
        input_shape: tuple[int, ...],
        n_classes: int,
        bounds: Bounds,
        returns: Literal["probs", "logits", "labels"] = "probs",
        accepts: Literal["numpy", "torch"] = "numpy",
        device: torch.device | str | None = None,
        query_budget: int | None = None,
        batch_size: int = 256,
        wraps: Classifier | None = None,
        name: str | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        check_choice("returns", returns, ("probs", "logits", "labels"))
        check_choice("accepts", accepts, ("numpy", "torch"))
        if wraps is not None and not isinstance(wraps, Classifier):
            raise TypeError(
                f"wraps must be an advml Classifier or None, got {type(wraps).__name__}"
            )
        super().__init__(
            input_shape=input_shape,
            n_classes=n_classes,
            bounds=bounds,
            device=device,
            query_budget=query_budget,
            batch_size=batch_size,
        )
        self.fn = fn
        self.wraps = wraps
        self.returns = returns
        self.accepts = accepts
        self.has_scores = returns != "labels"
        self._warned_sums = False
        self.name = name

    def _inner_queries_left(self) -> int | None:
        return None if self.wraps is None else wrapped_queries_left(self.wraps)

    def describe(self) -> str:
        """One line for reports: the function and what it reveals."""
        reveals = {"probs": "probabilities", "logits": "logits", "labels": "labels only"}
        if self.name is not None:
            return f"{self.name}, black-box ({reveals[self.returns]})"
        name = getattr(self.fn, "__qualname__", type(self.fn).__name__)
        return f"callable {name}, black-box ({reveals[self.returns]})"

    # -- calling fn --------------------------------------------------------------------
    def _call(self, x: Tensor) -> np.ndarray:
        arg: Any = x.detach() if self.accepts == "torch" else x.detach().cpu().numpy()
        out = self.fn(arg)
        if isinstance(out, Tensor):
            out = out.detach().cpu().numpy()
        try:
            arr = np.asarray(out)
        except (TypeError, ValueError) as e:
            raise ValueError(f"fn returned {type(out).__name__}, not an array: {e}") from None
        if arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
        ):
            raise ValueError(
                f"fn returned an array of dtype {arr.dtype}; it must return numbers "
                f"({self.returns})"
            )
        return arr

    def _logits(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        out = self._call(x).astype(np.float64)
        if out.shape != (n, self.n_classes):
            raise ValueError(
                f"fn returned shape {out.shape} for a batch of {n} inputs; with "
                f"returns={self.returns!r} it must return ({n}, {self.n_classes}) "
                f"(n_classes={self.n_classes})"
                + ("; if fn returns labels, pass returns='labels'" if out.shape == (n,) else "")
            )
        if not np.isfinite(out).all():
            bad = int((~np.isfinite(out)).any(axis=1).sum())
            raise ValueError(
                f"fn returned NaN or infinite {self.returns} for {bad} of {n} inputs; "
                f"fix the model or the API before attacking it"
            )
        if self.returns == "probs":
            out = self._normalised(out)
            out = np.log(np.maximum(out, _PROBA_FLOOR))
        return torch.as_tensor(out, dtype=torch.float32, device=self.device)

    def _normalised(self, p: np.ndarray) -> np.ndarray:
        low, high = float(p.min()), float(p.max())
        if low < -_RANGE_TOLERANCE or high > 1 + _RANGE_TOLERANCE:
            raise ValueError(
                f"fn returned values in [{low:g}, {high:g}], which are not probabilities; "
                f"if fn returns raw scores pass returns='logits'"
            )
        p = np.clip(p, 0.0, 1.0)
        sums = p.sum(axis=1, keepdims=True)
        if (sums <= 0).any():
            raise ValueError(
                f"fn returned all-zero probabilities for {int((sums <= 0).sum())} inputs; "
                f"a row must give at least one class a positive probability"
            )
        off = np.abs(sums - 1.0) > _SUM_TOLERANCE
        if off.any() and not self._warned_sums:
            # Rounded or top-k outputs are what real APIs return; renormalise them.
            warnings.warn(
                f"fn returned probabilities whose rows sum to "
                f"[{float(sums.min()):.4g}, {float(sums.max()):.4g}] instead of 1 "
                f"(rounded or top-k output?); they are clamped and renormalised. "
                f"This warning is shown once per model",
                UserWarning,
                stacklevel=2,
            )
            self._warned_sums = True
        return p / sums

    def _labels(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        out = self._call(x)
        if out.ndim == 2 and out.shape[1] == 1:
            out = out[:, 0]
        if out.shape != (n,):
            raise ValueError(
                f"fn returned shape {out.shape} for a batch of {n} inputs; with "
                f"returns='labels' it must return ({n},) class indices"
                + (
                    "; if fn returns scores, pass returns='probs' or 'logits'"
                    if out.shape == (n, self.n_classes)
                    else ""
                )
            )
        if np.issubdtype(out.dtype, np.floating) and (
            not np.isfinite(out).all() or bool(np.any(np.mod(out, 1) != 0))
        ):
            raise ValueError("fn returned non-integer labels; it must return class indices")
        labels = out.astype(np.int64)
        if labels.min() < 0 or labels.max() >= self.n_classes:
            raise ValueError(
                f"fn returned labels in [{int(labels.min())}, {int(labels.max())}], outside "
                f"[0, {self.n_classes}) for n_classes={self.n_classes}; map the API's labels "
                f"to 0..{self.n_classes - 1}"
            )
        return torch.as_tensor(labels, device=self.device)
