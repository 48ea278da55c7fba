"""What every training defence shares: ``fit(model, x, y) -> TrainedModel``.

A training defence holds settings only (the threat model it trains against and the
optimisation recipe). :class:`TrainingDefence` holds the optimisation settings every
training defence has, robust or private, and the checks its ``fit`` starts with.
:class:`RobustTraining` adds the settings of the robust methods and their one ``fit``:
it copies the caller's network, trains the copy with the one shared loop
(:func:`advml.models.training.train`) on a loss the subclass supplies, and returns the
new model with its training history. The caller's model is never changed unless
``inplace=True`` is asked for. A method holds only what is its own: its settings and
its loss.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
from torch import Tensor
from torch.nn import functional as F

from advml.base import Component
from advml.models.torch import TorchClassifier, reinitialise, require_torch
from advml.models.training import History, LossFn, train
from advml.validation import check_bool, check_choice, check_in_bounds, check_number

__all__ = [
    "Init",
    "Optimizer",
    "PrivateTrainedModel",
    "PrivateTraining",
    "RobustTraining",
    "TrainedModel",
    "TrainingDefence",
    "with_training_parameters",
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


@dataclass(frozen=True)
class PrivateTrainedModel(TrainedModel):
    """A model trained with a privacy defence, with its privacy guarantee."""

    epsilon: float = math.inf
    """ε of the (ε, δ)-DP guarantee reached (``inf``: no formal guarantee)."""
    delta: float = 0.0
    """δ of the guarantee."""
    noise_multiplier: float = 0.0
    """σ: noise standard deviation relative to the clipping norm."""

    def summary(self) -> dict[str, object]:
        out = dict(super().summary())
        out.update(epsilon=self.epsilon, delta=self.delta, noise_multiplier=self.noise_multiplier)
        return out


def with_training_parameters(
    doc: str | None,
    *,
    seed: str,
    warmup_epochs: str = "ε rises linearly to ``eps`` over the first ``warmup_epochs`` epochs "
    "(0: none).",
) -> str:
    """``doc`` (a robust-training method's docstring) with the entries of the settings
    every such method shares added to the end of its ``Parameters`` section.

    A method's docstring lists only its own settings; ``registry.schema`` and
    ``advml adversarial-train --list`` read each setting's description from the
    docstring, so the shared ones are written once, here. ``seed`` and ``warmup_epochs``
    are the method's own words for those two (what randomness the seed drives, how its
    ε warms up); a line break in them starts a continuation line.
    """

    def described(text: str) -> str:
        return "    " + text.replace("\n", "\n    ")

    entries = "\n".join(
        [
            "epochs : int",
            described("Passes over the training data."),
            "batch_size : int",
            described("Samples per optimiser step."),
            "lr : float",
            described("Learning rate."),
            'optimizer : {"adam", "sgd"}',
            described("Adam, or SGD with momentum 0.9."),
            "weight_decay : float",
            described("L2 penalty."),
            "warmup_epochs : int",
            described(warmup_epochs),
            'init : {"scratch", "model"}',
            described(
                "Fresh seeded weights of the given architecture, or the given weights.\n"
                '``"model"`` starts from the given network\'s weights (fine-tuning).'
            ),
            "seed : int",
            described(seed),
        ]
    )
    # cleandoc first, so the entries line up with the method's own whatever its indent;
    # they end the Parameters section, before an Examples section if there is one.
    head, examples, tail = inspect.cleandoc(doc or "").partition("\n\nExamples\n--------\n")
    if "\nParameters\n----------\n" not in head:
        head += "\n\nParameters\n----------"
    return f"{head}\n{entries}" + (f"{examples}{tail}" if examples else "\n")


class TrainingDefence(Component):
    """Base of every training defence, robust or private: the optimisation settings
    they all have and the checks their ``fit`` starts with.

    Takes ``epochs``, ``batch_size``, ``lr``, ``optimizer`` and ``seed``, validates and
    stores them; a subclass takes these among its own settings and passes them on to
    ``super().__init__`` (its own defaults and docstring say what they mean for it).
    """

    epochs: int
    batch_size: int
    lr: float
    optimizer: Optimizer
    seed: int

    def __init__(
        self, *, epochs: int, batch_size: int, lr: float, optimizer: Optimizer, seed: int
    ) -> None:
        check_number("epochs", epochs, low=1, integer=True)
        check_number("batch_size", batch_size, low=1, integer=True)
        check_number("lr", lr, low=0, low_inclusive=False)
        check_choice("optimizer", optimizer, ("adam", "sgd"))
        check_number("seed", seed, low=0, integer=True)
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.seed = seed

    def _training_inputs(
        self, model: TorchClassifier, x: np.ndarray | Tensor, *, show_progress: bool
    ) -> Tensor:
        """``x`` as a tensor on ``model``'s device, once ``model`` is known to be a
        PyTorch network (else :class:`UnsupportedModelError`) and ``x`` within its
        bounds."""
        require_torch(model, type(self).__name__, "training its network")
        check_bool("show_progress", show_progress)
        xt = model.as_tensor(x, name="x")
        check_in_bounds("x", xt, model.bounds)
        return xt

    def _train(
        self,
        target: TorchClassifier,
        x: Tensor,
        y: np.ndarray | Tensor,
        loss_fn: LossFn,
        *,
        weight_decay: float,
        show_progress: bool,
        desc: str,
        val_fraction: float = 0.0,
        patience: int | None = None,
        on_epoch: Callable[[int], None] | None = None,
    ) -> History:
        """Train ``target`` in place with the shared loop and these settings."""
        return train(
            target,
            x,
            y,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            optimizer=self.optimizer,
            weight_decay=weight_decay,
            val_fraction=val_fraction,
            patience=patience,
            loss_fn=loss_fn,
            seed=self.seed,
            show_progress=show_progress,
            desc=desc,
            on_epoch=on_epoch,
        )


class RobustTraining(TrainingDefence):
    """Base of the robust-training defences: settings in, ``fit`` trains a copy of a network.

    Subclasses implement :meth:`_loss`, the loss of one training batch at the current
    ε. Settings every subclass has, validated and stored here: ``epochs``,
    ``batch_size``, ``lr``, ``optimizer``, ``weight_decay``, ``warmup_epochs``, ``init``
    and ``seed``; a subclass with settings of its own (norm-bounded ones: ``eps`` and
    ``norm``) takes these too, passes them on to ``super().__init__`` and documents
    them with :func:`with_training_parameters`.
    """

    family: ClassVar[str] = "robust_training"

    weight_decay: float
    warmup_epochs: int
    init: Init

    def __init__(
        self,
        *,
        epochs: int = 20,
        batch_size: int = 64,
        lr: float = 1e-3,
        optimizer: Optimizer = "adam",
        weight_decay: float = 0.0,
        warmup_epochs: int = 0,
        init: Init = "scratch",
        seed: int = 0,
    ) -> None:
        super().__init__(
            epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, seed=seed
        )
        check_number("weight_decay", weight_decay, low=0)
        check_number("warmup_epochs", warmup_epochs, low=0, integer=True)
        if warmup_epochs > epochs:
            raise ValueError(
                f"warmup_epochs must be <= epochs ({epochs}), got {warmup_epochs}: the full ε "
                f"would never be trained against"
            )
        check_choice("init", init, ("scratch", "model"))
        self.weight_decay = weight_decay
        self.warmup_epochs = warmup_epochs
        self.init = init

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
        xt = self._training_inputs(model, x, show_progress=show_progress)
        check_bool("inplace", inplace)
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
            history = self._train(
                target,
                xt,
                y,
                loss_fn,
                weight_decay=self.weight_decay,
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


class PrivateTraining(TrainingDefence):
    """Base of the privacy defences of training: ``fit`` trains a fresh, seeded copy of
    a network and reports the privacy guarantee it reached.

    Subclasses implement :meth:`_fit` on inputs already checked here.
    """

    family: ClassVar[str] = "private_training"

    def fit(
        self,
        model: TorchClassifier,
        x: np.ndarray | Tensor,
        y: np.ndarray | Tensor,
        *,
        show_progress: bool = True,
    ) -> PrivateTrainedModel:
        """Train a fresh copy of ``model``'s network on ``(x, y)`` with this defence.

        Parameters
        ----------
        model : TorchClassifier
            Gives the architecture, bounds and normalisation; its weights are not used
            and it is not changed.
        x : array of shape (n, *model.input_shape)
            Training inputs within ``model.bounds``.
        y : array of shape (n,)
            Their labels.
        show_progress : bool
            A progress bar over epochs.

        Returns
        -------
        PrivateTrainedModel
            The trained model, its history, and the ε (at ``delta``) it guarantees:
            ``inf`` for a defence without a formal guarantee (``"regularised"``).

        Raises
        ------
        UnsupportedModelError
            If ``model`` is not a TorchClassifier, or (DP-SGD) its network has layers
            opacus cannot train privately (e.g. batch normalisation); the message says
            which.
        """
        xt = self._training_inputs(model, x, show_progress=show_progress)
        return self._fit(model, xt, y, show_progress=show_progress)

    def _fit(
        self, model: TorchClassifier, xt: Tensor, y: np.ndarray | Tensor, *, show_progress: bool
    ) -> PrivateTrainedModel:
        """Train on the checked inputs ``xt`` (a tensor on ``model``'s device)."""
        raise NotImplementedError
