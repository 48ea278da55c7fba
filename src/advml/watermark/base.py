"""The watermark family: ``embed(model, x, y, key=...)`` and ``verify(model, key)``.

:class:`WatermarkScheme` holds the public verbs. A scheme implements three hooks:
``_make_key`` (derive the key material from the owner's secret), ``_loss`` (the training
loss that embeds it, given to the shared training loop) and ``observe`` (per-item matches
of a suspect model). :class:`TriggerSetScheme` adds what every black-box trigger-set
scheme shares: mixing the triggers into each training batch and checking the labels a
model gives them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from advml.base import Component
from advml.errors import UnsupportedModelError
from advml.models.base import Classifier, WhiteBox, check_classifier
from advml.models.torch import TorchClassifier, require_torch
from advml.models.training import History, LossFn, train
from advml.validation import check_choice, check_labels, check_number
from advml.watermark.key import WatermarkKey, derive_rng, derive_seed, normalise_secret
from advml.watermark.verify import (
    DEFAULT_ALPHA,
    Verification,
    decide,
    not_checked,
)

__all__ = [
    "TriggerSetScheme",
    "WatermarkScheme",
    "WatermarkedModel",
    "last_layer",
]


@dataclass(frozen=True)
class WatermarkedModel:
    """What :meth:`WatermarkScheme.embed` produced."""

    model: TorchClassifier
    """The watermarked copy; the caller's model is left unchanged."""
    key: WatermarkKey
    """What the owner keeps (save it with :func:`~advml.watermark.save_key`)."""
    verification: Verification
    """The watermarked model checked against its own key."""
    history: History
    seconds: float
    scheme: str
    params: Mapping[str, Any] = field(default_factory=dict)


def last_layer(model: TorchClassifier) -> str:
    """Name of the last layer with weights (the classification layer)."""
    names = [
        name
        for name, m in model.module.named_modules()
        if name and isinstance(getattr(m, "weight", None), torch.nn.Parameter)
    ]
    if not names:
        raise UnsupportedModelError("the model has no layer with weights")
    return names[-1]


class WatermarkScheme(Component):
    """Base of the watermark schemes.

    Subclasses implement :meth:`_make_key`, :meth:`_loss`, :meth:`observe` and
    :meth:`null_rate`, and have the settings ``epochs``, ``lr``, ``batch_size`` and
    ``schedule``.
    """

    family: ClassVar[str] = "watermark"
    white_box_verification: ClassVar[bool] = False

    epochs: int
    lr: float
    batch_size: int
    schedule: Literal["constant", "cosine"]

    # -- the public verbs ----------------------------------------------------------------
    def embed(
        self,
        model: TorchClassifier,
        x: np.ndarray | Tensor,
        y: np.ndarray | Tensor,
        *,
        key: int | str | None = None,
        show_progress: bool = False,
    ) -> WatermarkedModel:
        """Embed a watermark derived from ``key`` into a copy of ``model`` by fine-tuning.

        Parameters
        ----------
        model : TorchClassifier
            The owner's model (trained, or fresh to embed while training from scratch).
            Not modified.
        x, y : arrays
            The owner's training data ``(n, *input_shape)`` and labels ``(n,)``.
        key : int, str or None
            The owner's secret; the same secret and settings give the same watermark and
            the same weights. ``None`` draws a fresh 128-bit secret (kept in the key).
        show_progress : bool
            Show a progress bar over the fine-tuning epochs.

        Returns
        -------
        WatermarkedModel
        """
        model = require_torch(model, f"embedding a {self.name!r} watermark", "its training")
        secret = normalise_secret(key)
        xt = model.as_tensor(x, name="x")
        y_arr = y if isinstance(y, np.ndarray | Tensor) else np.asarray(y)
        check_labels("y", y_arr, model.n_classes, xt.shape[0])
        yt = torch.as_tensor(np.asarray(y_arr) if isinstance(y_arr, np.ndarray) else y_arr)
        yt = yt.to(device=model.device, dtype=torch.long)
        start = time.perf_counter()
        marked = model.clone()
        wm_key = self._make_key(marked, xt, yt, secret)
        history = train(
            marked,
            xt,
            yt,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            val_fraction=0.0,
            patience=None,
            loss_fn=self._loss(marked, wm_key),
            schedule=self.schedule,
            seed=derive_seed(secret, "training") % 2**31,
            show_progress=show_progress,
            desc=f"embedding {self.name} watermark",
        )
        marked.reset_queries()
        verification = self.verify(marked, wm_key)
        marked.reset_queries()
        return WatermarkedModel(
            model=marked,
            key=wm_key,
            verification=verification,
            history=history,
            seconds=time.perf_counter() - start,
            scheme=self.name,
            params=self.get_params(),
        )

    def verify(
        self, model: Classifier, key: WatermarkKey, *, alpha: float = DEFAULT_ALPHA
    ) -> Verification:
        """Check ``model`` against ``key``; see :func:`advml.watermark.verify`."""
        check_number("alpha", alpha, low=0, high=1, low_inclusive=False, high_inclusive=False)
        if not isinstance(key, WatermarkKey):
            raise TypeError(f"key must be a WatermarkKey, got {type(key).__name__}")
        if key.scheme != self.name:
            raise ValueError(
                f"key was made by the {key.scheme!r} scheme, not {self.name!r}; verify it with "
                f"advml.watermark.verify(model, key)"
            )
        check_classifier("model", model)
        reason = self.unsupported_reason(model, key)
        if reason is not None:
            # Someone else's model that does not fit the key: "not verified", with the
            # reason, never an exception (the verifier asked a fair question).
            return not_checked(
                key=key,
                reason=reason,
                expected=self.expected(key),
                null_rate=self.null_rate(key),
                alpha=alpha,
                applicable=not (self.white_box_verification and not isinstance(model, WhiteBox)),
            )
        observed, extracted, queries = self.observe(model, key)
        return decide(
            key=key,
            observed=observed,
            extracted=extracted,
            expected=self.expected(key),
            null_rate=self.null_rate(key),
            queries=queries,
            alpha=alpha,
        )

    # -- hooks ---------------------------------------------------------------------------
    def unsupported_reason(self, model: Classifier, key: WatermarkKey) -> str | None:
        """Why ``model`` cannot be checked against ``key``, or None when it can.

        :meth:`verify` answers such a model "not verified" with this reason; the
        schemes say what their check reads (a layer's weights, answers to the key's
        inputs) and refuse a model that cannot give it.
        """
        return None

    def _make_key(self, model: TorchClassifier, x: Tensor, y: Tensor, secret: str) -> WatermarkKey:
        raise NotImplementedError

    def _loss(self, model: TorchClassifier, key: WatermarkKey) -> LossFn:
        raise NotImplementedError

    def observe(self, model: Classifier, key: WatermarkKey) -> tuple[np.ndarray, np.ndarray, int]:
        """Per-item matches of ``model``, what was read from it, and the queries spent."""
        raise NotImplementedError

    def expected(self, key: WatermarkKey) -> np.ndarray:
        raise NotImplementedError

    def null_rate(self, key: WatermarkKey) -> float:
        raise NotImplementedError


def check_training(*, epochs: int, lr: float, batch_size: int, schedule: str) -> None:
    check_number("epochs", epochs, low=1, integer=True)
    check_choice("schedule", schedule, ("constant", "cosine"))
    check_number("lr", lr, low=0, low_inclusive=False)
    check_number("batch_size", batch_size, low=1, integer=True)


TRIGGER_SET_PARAMETERS = """trigger_batch : int
        Triggers added to each training batch of ``batch_size``; default 64.
    epochs : int
        Fine-tuning epochs; default 15.
    lr : float
        Adam learning rate; default 1e-3 (the reference models' training rate).
    batch_size : int
        Training samples per step (before the triggers are added); default 64.
    schedule : {"constant", "cosine"}
        Learning rate of the fine-tuning: constant, or cosine decay from ``lr`` to 0
        (see :func:`advml.models.training.train`); default constant.
    """
"""The settings every trigger-set scheme shares, in the NumPy ``Parameters`` format: a
scheme's docstring lists its own settings and ends with these (``registry.schema`` and
``advml watermark list`` read the descriptions from the docstring)."""


class TriggerSetScheme(WatermarkScheme):
    """A black-box watermark: inputs whose labels only the owner's training assigned.

    Subclasses implement :meth:`_triggers` (the trigger inputs and, for schemes that
    start from training images, their source classes). Labels are drawn from the key
    uniformly at random, per trigger, among the classes other than the source class,
    so that a model not trained on the key matches each trigger with probability at
    most ``1/(K-1)`` (``1/K`` without source classes) whatever it predicts: the
    binomial null is exact.

    Embedding fine-tunes on the owner's data with ``trigger_batch`` triggers added to
    every batch of ``batch_size`` training samples (Adi et al. 2018, §4; Zhang et al. 2018,
    §3). A scheme with settings of its own takes these too and passes them on to
    ``super().__init__``.

    Parameters
    ----------
    n_triggers : int
        Size of the trigger set; default 100.
    """

    __doc__ = (__doc__ or "") + TRIGGER_SET_PARAMETERS

    def __init__(
        self,
        *,
        n_triggers: int = 100,
        trigger_batch: int = 64,
        epochs: int = 15,
        lr: float = 1e-3,
        batch_size: int = 64,
        schedule: Literal["constant", "cosine"] = "constant",
    ) -> None:
        check_number("n_triggers", n_triggers, low=1, integer=True)
        check_number("trigger_batch", trigger_batch, low=1, integer=True)
        check_training(epochs=epochs, lr=lr, batch_size=batch_size, schedule=schedule)
        self.n_triggers = n_triggers
        self.trigger_batch = trigger_batch
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.schedule = schedule

    def _triggers(
        self, model: TorchClassifier, x: Tensor, y: Tensor, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray | None, dict[str, np.ndarray]]:
        """Trigger inputs ``(n, *input_shape)``, their source classes or None, extra arrays."""
        raise NotImplementedError

    def _make_key(self, model: TorchClassifier, x: Tensor, y: Tensor, secret: str) -> WatermarkKey:
        rng = derive_rng(secret, f"{self.name}:triggers")
        xs, source, extra = self._triggers(model, x, y, rng)
        low, high = model.bounds
        xs = np.clip(xs, low, high).astype(np.float32)
        k = model.n_classes
        label_rng = derive_rng(secret, f"{self.name}:labels")
        if source is None:
            labels = label_rng.integers(0, k, size=xs.shape[0])
            rate = 1.0 / k
        else:
            # Uniform over the K-1 classes other than the source: add 1..K-1 modulo K.
            labels = (source + label_rng.integers(1, k, size=xs.shape[0])) % k
            rate = 1.0 / (k - 1)
        arrays = {"x": xs, "labels": labels.astype(np.int64), **extra}
        if source is not None:
            arrays["source"] = source.astype(np.int64)
        return self._key(model, secret, arrays, null_rate=rate)

    def _key(
        self,
        model: TorchClassifier,
        secret: str,
        arrays: dict[str, np.ndarray],
        *,
        null_rate: float,
        **meta: Any,
    ) -> WatermarkKey:
        """The key of the triggers ``arrays["x"]`` and their ``arrays["labels"]`` for
        ``model``: this scheme's settings, the chance rate and what a verifier checks a
        suspect model against (its classes, input shape and bounds), plus ``meta``."""
        return WatermarkKey(
            scheme=self.name,
            secret=secret,
            settings=self.get_params(),
            arrays=arrays,
            meta={
                "null_rate": null_rate,
                **meta,
                "n_classes": model.n_classes,
                "input_shape": list(model.input_shape),
                "bounds": list(model.bounds),
            },
        )

    def _loss(self, model: TorchClassifier, key: WatermarkKey) -> LossFn:
        xs = torch.as_tensor(key.arrays["x"], device=model.device)
        ys = torch.as_tensor(key.arrays["labels"], device=model.device)
        gen = torch.Generator().manual_seed(derive_seed(key.secret, "mixing") % 2**63)
        k = min(self.trigger_batch, xs.shape[0])

        def loss(m: TorchClassifier, xb: Tensor, yb: Tensor) -> Tensor:
            idx = torch.randperm(xs.shape[0], generator=gen)[:k].to(xs.device)
            return F.cross_entropy(m.forward(torch.cat([xb, xs[idx]])), torch.cat([yb, ys[idx]]))

        return loss

    def unsupported_reason(self, model: Classifier, key: WatermarkKey) -> str | None:
        """The model must take the triggers' shape, have the key's classes and the queries."""
        shape = tuple(key.arrays["x"].shape[1:])
        if shape != tuple(model.input_shape):
            return (
                f"the key's triggers have shape {shape} but this model takes inputs of shape "
                f"{tuple(model.input_shape)}: the key is for another model"
            )
        n_classes = int(key.meta.get("n_classes", model.n_classes))
        if n_classes != model.n_classes:
            return (
                f"the key is for a model with {n_classes} classes; this one has "
                f"{model.n_classes}: the key is for another model"
            )
        # queries_left, not query_budget: a wrapper's budget includes the inner model's.
        left = getattr(model, "queries_left", None)
        if left is not None and left < key.size:
            budget = getattr(model, "query_budget", None)
            return (
                f"verifying asks the model about the key's {key.size} inputs, and its query "
                f"budget has {left} left (query_budget={budget}); raise query_budget by at "
                f"least {key.size - left}"
            )
        return None

    def observe(self, model: Classifier, key: WatermarkKey) -> tuple[np.ndarray, np.ndarray, int]:
        reason = self.unsupported_reason(model, key)
        if reason is not None:
            raise ValueError(reason)
        xs = key.arrays["x"]
        before = model.query_count
        predicted = np.asarray(model.predict(xs))
        queries = model.query_count - before
        return predicted == key.arrays["labels"], predicted, queries

    def expected(self, key: WatermarkKey) -> np.ndarray:
        return np.asarray(key.arrays["labels"])

    def null_rate(self, key: WatermarkKey) -> float:
        return float(key.meta["null_rate"])
