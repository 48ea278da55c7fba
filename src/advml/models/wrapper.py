"""A Classifier in front of another one (a defence, a prediction API's output rules).

:class:`WrappingClassifier` takes the inner model's input shape, classes, bounds, device
and batch size, and uses the inner model's inference mode; a subclass says what it does
to the queries (:meth:`~advml.models.base.BaseClassifier._logits` /
:meth:`~advml.models.base.BaseClassifier._labels`). Queries are counted by the wrapper
and again by the inner model, and the wrapper spends no more than the inner model's
budget has left (``queries_left`` is the smaller of the two).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from advml.models.base import BaseClassifier, Classifier, full_bounds, wrapped_queries_left

__all__ = ["WrappingClassifier"]


class WrappingClassifier(BaseClassifier):
    """Base of classifiers that answer through an inner ``model``.

    Parameters
    ----------
    model : Classifier
        The inner model; not modified (its query count grows with the wrapper's).
    query_budget : int, optional
        Maximum number of inputs the wrapper answers; ``None`` means unlimited.

    Attributes
    ----------
    model : Classifier
        The inner model.
    """

    def __init__(self, model: Classifier, *, query_budget: int | None = None) -> None:
        super().__init__(
            input_shape=model.input_shape,
            n_classes=model.n_classes,
            bounds=full_bounds(model),  # per-feature arrays kept
            device=model.device,
            query_budget=query_budget,
            batch_size=int(getattr(model, "batch_size", 256)),
        )
        self.model = model

    def _inner_queries_left(self) -> int | None:
        # Each query here is one of the inner model's (a subclass that spends more says so).
        return wrapped_queries_left(self.model)

    def attack_chunk_size(self) -> int | None:
        """The inner model's default attack chunk on a GPU (sized from its free memory;
        a defence in front adds little per input), None elsewhere. Measured through the
        inner model's uncounted forward pass, so no query of either is spent."""
        inner = getattr(self.model, "attack_chunk_size", None)
        return inner() if callable(inner) else None

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        """The inner model's inference mode."""
        with self.model.evaluating():
            yield
