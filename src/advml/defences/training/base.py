"""What every robust-training defence shares: ``fit(model, x, y) -> TrainedModel``.

A training defence holds settings only (the threat model it trains against and the
optimisation recipe). :meth:`RobustTraining.fit` copies the caller's network, trains
the copy with the one shared loop (:func:`advml.models.training.train`) on a loss the
subclass supplies, and returns the new model with its training history. The caller's
model is never changed unless ``inplace=True`` is asked for.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
from torch import Tensor
from torch.nn import functional as F

from advml.base import Component
from advml.models.torch import TorchClassifier, reinitialise, require_torch
from advml.models.training import History, train
from advml.validation import check_bool, check_choice, check_in_bounds, check_number

__all__ = [
    "Init",
    "Optimizer",
    "RobustTraining",
    "TrainedModel",
    "check_training_settings",
]

Init = Literal["scratch", "model"]
Optimizer = Literal["adam", "sgd"]


@dataclass(frozen=True)
class TrainedModel:
    """A network trained by a training defence, with what happened during training."""

    model: TorchClassifier
    """The trained network (a new object unless ``inplace=True`` was asked for)."""
    history: History
    """Loss and accuracy on the (adversarial) training batches, per epoch."""
    seconds: float
    """Wall-clock training time."""
    method: str
    """Registered name of the defence (``"pgd_training"``)."""
    params: Mapping[str, Any] = field(default_factory=dict)
    """The defence's settings."""
    eps_schedule: tuple[float, ...] = ()
    """The ε trained against in each epoch (rises during a warm-up); empty without ε."""

    def summary(self) -> dict[str, Any]:
        """Plain numbers for reports."""
        return {
            "method": self.method,
            "epochs": self.history.epochs_run,
            "seconds": self.seconds,
            "final_train_loss": self.history.train_loss[-1] if self.history.train_loss else None,
            "eps_schedule": list(self.eps_schedule),
        }


def check_training_settings(
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    optimizer: str,
    weight_decay: float,
    warmup_epochs: int,
    init: str,
    seed: int,
) -> None:
    """Validate the optimisation settings every training defence shares."""
    check_number("epochs", epochs, low=1, integer=True)
    check_number("batch_size", batch_size, low=1, integer=True)
    check_number("lr", lr, low=0, low_inclusive=False)
    check_choice("optimizer", optimizer, ("adam", "sgd"))
    check_number("weight_decay", weight_decay, low=0)
    check_number("warmup_epochs", warmup_epochs, low=0, integer=True)
    if warmup_epochs > epochs:
        raise ValueError(
            f"warmup_epochs must be <= epochs ({epochs}), got {warmup_epochs}: the full ε "
            f"would never be trained against"
        )
    check_choice("init", init, ("scratch", "model"))
    check_number("seed", seed, low=0, integer=True)


class RobustTraining(Component):
    """Base of the training defences: settings in, ``fit`` trains a copy of a network.

    Subclasses implement :meth:`_loss`, the loss of one training batch at the current
    ε. Settings every subclass has: ``epochs``, ``batch_size``, ``lr``, ``optimizer``,
    ``weight_decay``, ``warmup_epochs``, ``init`` and ``seed``; norm-bounded ones also
    ``eps`` and ``norm``.
    """

    family: ClassVar[str] = "robust_training"

    epochs: int
    batch_size: int
    lr: float
    optimizer: Optimizer
    weight_decay: float
    warmup_epochs: int
    init: Init
    seed: int

    def fit(
        self,
        model: TorchClassifier,
        x: np.ndarray | Tensor,
        y: np.ndarray | Tensor,
        *,
        inplace: bool = False,
        show_progress: bool = True,
    ) -> TrainedModel:
        """Train (a copy of) ``model`` on ``(x, y)`` with this defence.

        Parameters
        ----------
        model : TorchClassifier
            The network to train. With ``init="scratch"`` only its architecture,
            bounds and normalisation are used (the weights are drawn afresh, seeded);
            with ``init="model"`` training starts from its weights (adversarial
            fine-tuning).
        x : array of shape (n, *model.input_shape)
            Training inputs within ``model.bounds``.
        y : array of shape (n,)
            Their labels.
        inplace : bool
            Train ``model`` itself instead of a copy. Default False.
        show_progress : bool
            A progress bar over epochs.

        Returns
        -------
        TrainedModel
            The trained model, its history, the training time and the ε schedule.

        Raises
        ------
        UnsupportedModelError
            If ``model`` is not a :class:`~advml.models.TorchClassifier`.
        """
        require_torch(model, type(self).__name__, "training its network")
        check_bool("inplace", inplace)
        check_bool("show_progress", show_progress)
        xt = model.as_tensor(x, name="x")
        check_in_bounds("x", xt, model.bounds)
        target = model if inplace else model.clone()
        if self.init == "scratch":
            missed = reinitialise(target.module, self.seed)
            if missed:
                warnings.warn(
                    f"init='scratch' could not draw new values for {', '.join(missed)} "
                    f"(no reset_parameters()); they start from the given model's values",
                    UserWarning,
                    stacklevel=2,
                )
        budget, target.query_budget = target.query_budget, None
        schedule: list[float] = []
        state = {"eps": self._eps_at(1), "batch": 0}

        def on_epoch(epoch: int) -> None:
            state["eps"] = self._eps_at(epoch)
            schedule.append(state["eps"])

        def loss_fn(net: TorchClassifier, xb: Tensor, yb: Tensor) -> Tensor:
            state["batch"] += 1
            seed = (self.seed * 1_000_003 + int(state["batch"])) % 2**31
            return self._loss(net, xb, yb, float(state["eps"]), seed)

        try:
            history = train(
                target,
                xt,
                y,
                epochs=self.epochs,
                batch_size=self.batch_size,
                lr=self.lr,
                optimizer=self.optimizer,
                weight_decay=self.weight_decay,
                val_fraction=0.0,
                patience=None,
                loss_fn=loss_fn,
                seed=self.seed,
                show_progress=show_progress,
                desc=f"{self.name or type(self).__name__}",
                on_epoch=on_epoch,
            )
        finally:
            target.query_budget = budget
            target.reset_queries()
        return TrainedModel(
            model=target,
            history=history,
            seconds=history.seconds,
            method=self.name,
            params=self.get_params(),
            eps_schedule=tuple(schedule) if getattr(self, "eps", None) is not None else (),
        )

    # -- hooks -----------------------------------------------------------------------
    def _loss(self, model: TorchClassifier, x: Tensor, y: Tensor, eps: float, seed: int) -> Tensor:
        """The loss of one batch ``(x, y)`` trained against radius ``eps``.

        The module is in training mode; ``seed`` is a fresh seed for this batch's
        random starts (so the same ``seed`` setting gives the same model).
        """
        raise NotImplementedError

    def _scaled_step(self, eps: float, *, default: float) -> float:
        """The ``step_size`` setting scaled to the current ε (during the warm-up), or
        ``default`` (already in units of the current ε) when the setting is None."""
        step_size = getattr(self, "step_size", None)
        full = float(getattr(self, "eps", 0.0))
        if step_size is None or full == 0:
            return default
        return float(step_size) * eps / full

    def _eps_at(self, epoch: int) -> float:
        """ε of ``epoch`` (1-based): linear warm-up over ``warmup_epochs``, then ``eps``."""
        eps = float(getattr(self, "eps", 0.0))
        if self.warmup_epochs == 0:
            return eps
        return eps * min(1.0, epoch / self.warmup_epochs)


def cross_entropy(model: TorchClassifier, x: Tensor, y: Tensor) -> Tensor:
    """Mean cross-entropy of ``model`` on ``(x, y)`` (in the module's current mode)."""
    return F.cross_entropy(model.forward(x), y)
