"""The model seam: the one protocol every attack, defence and watermark talks to.

A :class:`Classifier` maps a batch of inputs ``x`` of shape ``(n, *input_shape)`` with
values in ``bounds`` to scores over ``n_classes`` classes. Adapters
(:class:`~advml.models.TorchClassifier`, :class:`~advml.models.SklearnClassifier`,
:class:`~advml.models.CallableClassifier`) implement it for one framework each, by
subclassing :class:`BaseClassifier`.

Inside advml, components call ``logits`` on torch tensors already on ``device``; numpy
is accepted and returned only by the public ``predict``/``predict_proba``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from typing import Protocol, TypeAlias, TypeVar, overload, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

from advml.errors import QueryBudgetExceededError, UnsupportedModelError
from advml.runtime.cache import fingerprint as hash_data
from advml.validation import (
    check_feature_bounds,
    check_finite,
    check_input_shape,
    check_not_empty,
    check_number,
)

__all__ = [
    "BaseClassifier",
    "Bounds",
    "Classifier",
    "Normalisation",
    "WhiteBox",
    "adopt_data_bounds",
    "check_classifier",
    "clamp_to",
    "clip_bounds",
    "feature_bounds",
    "feature_span",
    "full_bounds",
    "keeping_back",
    "kept_back",
    "same_kind_as",
    "wrapped_queries_left",
]

Normalisation: TypeAlias = tuple[
    float | Sequence[float] | np.ndarray, float | Sequence[float] | np.ndarray
]
"""``(mean, std)`` applied as ``(x - mean) / std`` inside a white-box adapter."""

Bounds: TypeAlias = tuple[float, float] | tuple[np.ndarray, np.ndarray]
"""``(low, high)``: two numbers, or per-feature (per-channel) arrays of the input shape."""

# Queries that budgeted models refuse to spend in the current block (a context variable,
# so that threads and nested blocks do not share it): see keeping_back.
_KEPT_BACK: ContextVar[int] = ContextVar("advml_queries_kept_back", default=0)


@contextlib.contextmanager
def keeping_back(n: int) -> Iterator[None]:
    """Within the block, every query budget refuses to spend its last ``n`` queries.

    They pay for a check that runs after the block (an attack's final check of its
    outputs): work inside that does not size its batches to the budget is refused before
    it can spend them. Nested blocks add up.
    """
    token = _KEPT_BACK.set(_KEPT_BACK.get() + n)
    try:
        yield
    finally:
        _KEPT_BACK.reset(token)


def kept_back() -> int:
    """Queries kept back by the enclosing :func:`keeping_back` blocks (0 outside)."""
    return _KEPT_BACK.get()


@runtime_checkable
class Classifier(Protocol):
    """What advml needs of a model (DESIGN.md §3).

    Attributes
    ----------
    n_classes : int
        Number of classes; labels are indices in ``[0, n_classes)``.
    input_shape : tuple of int
        Shape of one input, without the batch dimension.
    bounds : (float, float)
        Minimum and maximum valid input value.
    device : torch.device
        Where tensors given to :meth:`logits` must live.
    has_gradients : bool
        ``logits`` is differentiable with respect to its input.
    has_scores : bool
        The model reveals scores; ``False`` for a label-only API.
    query_count : int
        Number of inputs evaluated so far (every input of every call counts once).
    """

    # Read-only properties, so that a wrapper which forwards them (an access-level or
    # rate-limited view of a model) satisfies the protocol as well as plain attributes.
    @property
    def n_classes(self) -> int: ...

    @property
    def input_shape(self) -> tuple[int, ...]: ...

    @property
    def bounds(self) -> tuple[float, float]: ...

    @property
    def device(self) -> torch.device: ...

    @property
    def has_gradients(self) -> bool: ...

    @property
    def has_scores(self) -> bool: ...

    @property
    def query_count(self) -> int: ...

    def as_tensor(self, x: np.ndarray | Tensor, *, name: str = "x") -> Tensor:
        """Validate a batch of inputs; return it as a float32 tensor on ``device``."""
        ...

    def logits(self, x: Tensor) -> Tensor:
        """Class scores of shape ``(n, n_classes)`` whose softmax is the probabilities."""
        ...

    def predict_labels(self, x: Tensor) -> Tensor:
        """Predicted class indices of shape ``(n,)`` (works for label-only models too)."""
        ...

    def predict_proba(
        self, x: np.ndarray | Tensor, *, batch_size: int | None = None
    ) -> np.ndarray | Tensor: ...

    def predict(
        self, x: np.ndarray | Tensor, *, batch_size: int | None = None
    ) -> np.ndarray | Tensor: ...

    def evaluating(self) -> contextlib.AbstractContextManager[None]:
        """Context in which the model is in inference mode (restored afterwards)."""
        ...

    def fingerprint(self) -> str:
        """A hash that changes when the model's answers can change (cache keys)."""
        ...

    def describe(self) -> str:
        """One line for reports: what the model is and how advml reaches it."""
        ...


_W = TypeVar("_W", bound="WhiteBox")


@runtime_checkable
class WhiteBox(Classifier, Protocol):
    """A :class:`Classifier` that also opens its network: what white-box components need.

    Weight watermarks read a layer's weights, backdoor defences read activations and
    prune units, training and removal attacks copy and re-initialise the network. They
    ask for this protocol (``isinstance(model, WhiteBox)``) instead of one adapter
    class; :class:`~advml.models.TorchClassifier` implements it. A wrapper that limits
    what is revealed (an access level, a hardened output) deliberately does not.

    Attributes
    ----------
    module : torch.nn.Module
        The network, mapping normalised inputs to logits.
    preprocessing : (mean, std) or None
        The normalisation applied before ``module`` (see :meth:`forward`).
    layer_names : list of str
        Names of the network's sub-layers, as ``module.named_modules()`` gives them.
    """

    @property
    def module(self) -> nn.Module: ...

    @property
    def preprocessing(self) -> Normalisation | None: ...

    @property
    def layer_names(self) -> list[str]: ...

    def forward(self, x: Tensor) -> Tensor:
        """Normalise and run the network, without counting a query (for training)."""
        ...

    def activations(
        self, x: np.ndarray | Tensor, layer: str, *, batch_size: int | None = None
    ) -> np.ndarray | Tensor:
        """Outputs of ``layer`` for ``x``, shape ``(n, *layer_output_shape)``."""
        ...

    def n_units(self, layer: str) -> int:
        """Units of ``layer``: channels of a convolution's output, features of a dense one."""
        ...

    def set_unit_mask(self, layer: str, keep: np.ndarray | Tensor | Sequence[bool]) -> None:
        """Zero the outputs of the units of ``layer`` where ``keep`` is False."""
        ...

    def unit_mask(self, layer: str) -> Tensor | None:
        """The keep-mask in force on ``layer``, or None."""
        ...

    def clear_unit_masks(self) -> None:
        """Remove every unit mask."""
        ...

    def clone(self: _W) -> _W:
        """An independent copy: same network, weights, normalisation and masks."""
        ...

    def reinitialised(self: _W, seed: int) -> _W:
        """A :meth:`clone` with fresh, seeded initial weights (same architecture)."""
        ...


class BaseClassifier:
    """Shared behaviour of the adapters: the numpy/tensor boundary, batching, queries.

    Subclasses implement :meth:`_logits` (scores or log-probabilities as a tensor) or,
    for label-only models, :meth:`_labels`.

    Parameters
    ----------
    input_shape : tuple of int
        Shape of one input, without the batch dimension.
    n_classes : int
        Number of classes (>= 2).
    bounds : (float, float) or (array, array)
        Minimum and maximum valid input value: one pair for every feature, or per-feature
        (or, for images, per-channel) arrays; see :func:`~advml.validation.check_feature_bounds`.
        ``bounds`` is then the envelope (smallest low, largest high) and
        ``feature_bounds`` the arrays (``None`` when every feature has the same range).
    device : torch.device or str, optional
        Device of the tensors the model computes on; CPU by default.
    query_budget : int, optional
        Maximum number of inputs the model may evaluate; exceeding it raises
        :class:`~advml.errors.QueryBudgetExceededError`. ``None`` means unlimited.
    batch_size : int
        Inputs per forward pass in ``predict``/``predict_proba``.
    """

    has_gradients: bool = False
    has_scores: bool = True

    def __init__(
        self,
        *,
        input_shape: tuple[int, ...],
        n_classes: int,
        bounds: Bounds,
        device: torch.device | str | None = None,
        query_budget: int | None = None,
        batch_size: int = 256,
    ) -> None:
        try:
            shape = tuple(int(d) for d in input_shape)
        except (TypeError, ValueError):
            raise ValueError(f"input_shape must be a tuple of ints, got {input_shape!r}") from None
        if not shape or any(d < 1 for d in shape):
            raise ValueError(f"input_shape must hold positive sizes, got {input_shape!r}")
        check_number("n_classes", n_classes, low=2, integer=True)
        if query_budget is not None:
            check_number("query_budget", query_budget, low=0, integer=True)
        check_number("batch_size", batch_size, low=1, integer=True)
        self.input_shape = shape
        self.n_classes = int(n_classes)
        self.bounds, self.feature_bounds = check_feature_bounds("bounds", bounds, shape)
        self.device = torch.device(device if device is not None else "cpu")
        self.query_budget = None if query_budget is None else int(query_budget)
        self.batch_size = int(batch_size)
        self._queries = 0

    # -- queries -------------------------------------------------------------------
    @property
    def query_count(self) -> int:
        """Inputs evaluated so far through this adapter."""
        return self._queries

    @property
    def queries_left(self) -> int | None:
        """Inputs the model may still evaluate; None: unlimited.

        The smaller of what its own ``query_budget`` leaves and what the model it wraps
        (if any) still pays for, so that a wrapper around a budgeted paid API neither
        overspends that API's budget nor hides it from the attacks that size their
        batches to it.
        """
        own = None if self.query_budget is None else max(0, self.query_budget - self._queries)
        inner = self._inner_queries_left()
        if own is None or inner is None:
            return inner if own is None else own
        return min(own, inner)

    def _inner_queries_left(self) -> int | None:
        """Queries of this model that the model it wraps still pays for; None: no limit.

        Wrappers (output and preprocessing defences, access views) override it.
        """
        return None

    def reset_queries(self) -> None:
        """Set the query count back to zero (the budget applies afresh)."""
        self._queries = 0

    def _count(self, n: int) -> None:
        self._check_budget(n)
        self._queries += n

    def _check_budget(self, n: int) -> None:
        kept = _KEPT_BACK.get()
        also = f" ({kept} kept back for a final check)" if kept else ""
        if self.query_budget is not None and self._queries + n + kept > self.query_budget:
            raise QueryBudgetExceededError(
                f"query budget exhausted: {self._queries} of query_budget={self.query_budget} "
                f"inputs used{also} and this call needs {n} more; raise query_budget or call "
                f"reset_queries()"
            )
        inner = self._inner_queries_left()
        if inner is not None and n + kept > inner:
            # Refused here, before the wrapped model spends part of the call.
            raise QueryBudgetExceededError(
                f"query budget exhausted: the wrapped model pays for {inner} more queries of "
                f"this one{also} and this call needs {n}; raise the wrapped model's "
                f"query_budget"
            )

    # -- the tensor interface used inside advml -----------------------------------
    def logits(self, x: Tensor) -> Tensor:
        """Class scores for a tensor batch on :attr:`device` (counted as queries)."""
        if not self.has_scores:
            raise UnsupportedModelError(
                f"{type(self).__name__} answers labels only, so it has no scores; use a "
                f"label-only attack such as 'hopskipjump'"
            )
        self._count(x.shape[0])
        return self._logits(x)

    def predict_labels(self, x: Tensor) -> Tensor:
        """Predicted labels for a tensor batch on :attr:`device` (counted as queries)."""
        self._count(x.shape[0])
        if self.has_scores:
            with torch.no_grad():
                return self._logits(x).argmax(dim=1)
        return self._labels(x)

    def _logits(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _labels(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        """Inference mode for the duration of the block; a no-op for stateless models."""
        yield

    # -- the public numpy/tensor boundary -----------------------------------------
    def as_tensor(self, x: np.ndarray | Tensor, *, name: str = "x") -> Tensor:
        """Validate a batch of inputs and return it as a float32 tensor on :attr:`device`."""
        if not isinstance(x, np.ndarray | Tensor):
            x = np.asarray(x)
        check_input_shape(name, x, self.input_shape)
        check_not_empty(name, x)
        check_finite(name, x)
        t = torch.as_tensor(x) if isinstance(x, np.ndarray) else x.detach()
        return t.to(device=self.device, dtype=torch.float32)

    @overload
    def predict_proba(self, x: np.ndarray, *, batch_size: int | None = None) -> np.ndarray: ...
    @overload
    def predict_proba(self, x: Tensor, *, batch_size: int | None = None) -> Tensor: ...
    def predict_proba(
        self, x: np.ndarray | Tensor, *, batch_size: int | None = None
    ) -> np.ndarray | Tensor:
        """Class probabilities, shape ``(n, n_classes)``; numpy in, numpy out."""
        if not self.has_scores:
            raise UnsupportedModelError(
                f"{type(self).__name__} answers labels only; use predict() instead"
            )
        t = self.as_tensor(x)
        out = self._batched(t, lambda b: torch.softmax(self.logits(b), dim=1), batch_size)
        return same_kind_as(out, x)

    @overload
    def predict(self, x: np.ndarray, *, batch_size: int | None = None) -> np.ndarray: ...
    @overload
    def predict(self, x: Tensor, *, batch_size: int | None = None) -> Tensor: ...
    def predict(
        self, x: np.ndarray | Tensor, *, batch_size: int | None = None
    ) -> np.ndarray | Tensor:
        """Predicted class indices, shape ``(n,)``; numpy in, numpy out."""
        t = self.as_tensor(x)
        out = self._batched(t, self.predict_labels, batch_size)
        return same_kind_as(out, x)

    def _batched(self, x: Tensor, fn: Callable[[Tensor], Tensor], batch_size: int | None) -> Tensor:
        if batch_size is not None:
            check_number("batch_size", batch_size, low=1, integer=True)
        size = self.batch_size if batch_size is None else int(batch_size)
        # Refuse a call the budget cannot cover before its first batch, so that a refused
        # call spends nothing.
        self._check_budget(x.shape[0])
        with torch.no_grad(), self.evaluating():
            if x.shape[0] <= size:
                return fn(x)  # one batch: no slicing, no copy into a new tensor
            parts = [fn(x[start : start + size]) for start in range(0, x.shape[0], size)]
        return torch.cat(parts)

    # -- identity --------------------------------------------------------------------
    def fingerprint(self) -> str:
        """A hash of the model's answers on a fixed probe of 16 random inputs.

        Adapters that can read their weights override this with a hash of the weights;
        this default works for any model, black-box included. Scores are rounded to 5
        decimals so that the last bits of float arithmetic do not change the key.
        """
        gen = torch.Generator().manual_seed(12345)
        low, high = self.bounds
        probe = low + (high - low) * torch.rand(16, *self.input_shape, generator=gen)
        probe = probe.to(self.device)
        with torch.no_grad():
            if self.has_scores:
                answer = np.round(torch.softmax(self.logits(probe), 1).cpu().numpy(), 5)
            else:
                answer = self.predict_labels(probe).cpu().numpy()
        return hash_data([self._identity(), answer])

    def _identity(self) -> list[object]:
        """What every fingerprint starts with: adapter, input shape, classes, bounds."""
        out: list[object] = [
            type(self).__name__,
            list(self.input_shape),
            self.n_classes,
            list(self.bounds),
        ]
        fb = getattr(self, "feature_bounds", None)
        if fb is not None:
            out.append(hash_data([fb[0], fb[1]]))  # only when per feature
        return out

    def describe(self) -> str:
        """One line for reports; adapters say more (framework, access)."""
        return repr(self)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(input_shape={self.input_shape}, n_classes={self.n_classes}, "
            f"bounds={self.bounds})"
        )


def feature_bounds(model: Classifier) -> tuple[np.ndarray, np.ndarray] | None:
    """The model's per-feature ``(low, high)`` arrays of ``input_shape``, or ``None`` when
    one pair (``model.bounds``) holds for every feature. Wrappers that forward ``bounds``
    only are treated as having one pair."""
    fb = getattr(model, "feature_bounds", None)
    return None if fb is None else (np.asarray(fb[0]), np.asarray(fb[1]))


def adopt_data_bounds(model: object, dataset: object) -> bool:
    """Give ``model`` the per-feature bounds of ``dataset`` when it has one pair only.

    For a model read from a file (which stores one ``(low, high)`` pair) audited on data
    whose features have their own ranges (``--bounds FILE``, or a table's per-feature
    min/max): the attacks then keep each feature in its range. Only when the data's
    ranges lie within the model's pair, and only for advml's adapters; returns whether
    the bounds were adopted.
    """
    fb = getattr(dataset, "feature_bounds", None)
    if fb is None or not isinstance(model, BaseClassifier) or model.feature_bounds is not None:
        return False
    low, high = model.bounds
    if float(np.min(fb[0])) < low or float(np.max(fb[1])) > high:
        return False
    model.bounds, model.feature_bounds = check_feature_bounds(
        "bounds", (fb[0], fb[1]), model.input_shape
    )
    return True


def full_bounds(model: Classifier) -> Bounds:
    """What to pass as ``bounds=`` to rebuild ``model`` (a clone, a retrained copy): its
    per-feature arrays when it has them, else its ``(low, high)`` pair."""
    fb = feature_bounds(model)
    return model.bounds if fb is None else fb


def clip_bounds(model: Classifier) -> tuple[float, float] | tuple[Tensor, Tensor]:
    """``(low, high)`` to clamp a batch of ``model``'s inputs with (``x.clamp(low, high)``).

    The two floats of ``model.bounds`` when every feature has the same range (exactly as
    before per-feature bounds existed); else float32 tensors of shape
    ``(1, *input_shape)`` on ``model.device``, which broadcast over a batch.
    """
    fb = feature_bounds(model)
    if fb is None:
        low, high = model.bounds
        return float(low), float(high)
    shape = (1, *model.input_shape)
    return (
        torch.as_tensor(fb[0], dtype=torch.float32, device=model.device).reshape(shape),
        torch.as_tensor(fb[1], dtype=torch.float32, device=model.device).reshape(shape),
    )


def clamp_to(
    x: Tensor, low: float | Tensor, high: float | Tensor, *, inplace: bool = False
) -> Tensor:
    """``x`` clamped to ``[low, high]``: two floats or two broadcastable tensors (what
    :func:`clip_bounds` gives); ``inplace`` overwrites ``x``."""
    if isinstance(low, Tensor) or isinstance(high, Tensor):
        lo = torch.as_tensor(low, dtype=x.dtype, device=x.device)
        hi = torch.as_tensor(high, dtype=x.dtype, device=x.device)
        return x.clamp_(lo, hi) if inplace else x.clamp(lo, hi)
    return x.clamp_(low, high) if inplace else x.clamp(low, high)


def feature_span(model: Classifier) -> float | Tensor:
    """Each feature's range ``high - low``: a float for one pair, else a broadcastable
    ``(1, *input_shape)`` tensor on ``model.device`` (see :func:`clip_bounds`)."""
    low, high = clip_bounds(model)
    return high - low


def wrapped_queries_left(model: Classifier, per_query: int = 1) -> int | None:
    """Queries a wrapper may still send when each costs ``per_query`` of ``model``'s.

    ``None`` when ``model`` has no budget (an adapter without ``queries_left`` has none).
    """
    left = getattr(model, "queries_left", None)
    return None if left is None else int(left) // per_query


def same_kind_as(out: Tensor, template: np.ndarray | Tensor) -> np.ndarray | Tensor:
    """``out`` as the caller gave its input: a tensor on the input's device, or numpy.

    The public boundary's rule (numpy in, numpy out; tensor in, tensor out), shared by
    the adapters and by wrappers such as the output defences.
    """
    if isinstance(template, Tensor):
        return out.to(template.device) if template.device != out.device else out
    return out.cpu().numpy()


def check_classifier(name: str, model: object) -> Classifier:
    """``model`` if it is an advml :class:`Classifier`, else ``TypeError`` naming ``name``
    and the adapter to wrap it in (every public entry point that takes a model asks this)."""
    if not isinstance(model, Classifier):
        raise TypeError(
            f"{name} must be an advml Classifier, got {type(model).__name__}; wrap a torch "
            "module in advml.models.TorchClassifier, a scikit-learn estimator in "
            "SklearnClassifier, a prediction API in CallableClassifier"
        )
    return model
