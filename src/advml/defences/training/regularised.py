"""Regularised training: the non-private baselines DP-SGD is compared with.

Overfitting is what membership inference exploits (Yeom, Giacomelli, Fredrikson & Jha,
CSF 2018, §3-4: the loss attack's advantage grows with the generalisation gap), so the
ordinary cures of overfitting are the first defences to try and the baseline any formal
defence must beat on the privacy-utility curve (Shokri et al., S&P 2017, §VIII;
Carlini et al., S&P 2022, §VI). Three are offered, alone or together:

- **weight decay**: an L2 penalty on the weights (through the optimiser);
- **label smoothing** (Szegedy et al., CVPR 2016, §7): the target is
  ``(1 - α) · one_hot(y) + α / K``, so the model is not pushed to ever more confident
  answers on its training points;
- **early stopping**: training stops when the loss on a held-out part of the training
  data stops falling, and the best weights are kept.

None gives a formal guarantee: the result reports ε = ∞.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from torch import Tensor
from torch.nn import functional as F

from advml import registry
from advml.base import Component
from advml.defences.training.dp import PrivateTrainedModel
from advml.models.torch import TorchClassifier, require_torch
from advml.models.training import train
from advml.validation import check_bool, check_choice, check_in_bounds, check_number

__all__ = ["Regularised"]


@registry.register("private_training", "regularised")
class Regularised(Component):
    """Standard training with weight decay, label smoothing and early stopping.

    Parameters
    ----------
    weight_decay : float
        L2 penalty (>= 0); default 5e-4. 0 switches it off.
    label_smoothing : float
        α in [0, 1): the share of the target spread evenly over all classes; default 0.1.
        0 switches it off.
    early_stopping : bool
        Hold out ``val_fraction`` of the training data and stop when its loss has not
        fallen for ``patience`` epochs, keeping the best weights. Default True.
    patience : int
        Epochs without improvement before stopping (>= 1); default 3.
    val_fraction : float
        Share of the training data held out for early stopping, in (0, 1); default 0.1.
        The held-out records are not trained on.
    epochs : int
        Maximum passes over the data (>= 1); default 20.
    batch_size : int
        Samples per optimiser step (>= 1); default 64.
    lr : float
        Learning rate (> 0); default 1e-3.
    optimizer : {"adam", "sgd"}
        Adam, or SGD with momentum 0.9.
    seed : int
        Seeds the initial weights, the held-out split and the shuffling.

    Examples
    --------
    >>> from advml.defences.training import Regularised
    >>> trained = Regularised(label_smoothing=0.2).fit(model, x, y)  # doctest: +SKIP
    """

    family: ClassVar[str] = "private_training"

    def __init__(
        self,
        *,
        weight_decay: float = 5e-4,
        label_smoothing: float = 0.1,
        early_stopping: bool = True,
        patience: int = 3,
        val_fraction: float = 0.1,
        epochs: int = 20,
        batch_size: int = 64,
        lr: float = 1e-3,
        optimizer: Literal["adam", "sgd"] = "adam",
        seed: int = 0,
    ) -> None:
        check_number("weight_decay", weight_decay, low=0)
        check_number("label_smoothing", label_smoothing, low=0, high=1, high_inclusive=False)
        check_bool("early_stopping", early_stopping)
        check_number("patience", patience, low=1, integer=True)
        check_number(
            "val_fraction", val_fraction, low=0, high=1, low_inclusive=False, high_inclusive=False
        )
        check_number("epochs", epochs, low=1, integer=True)
        check_number("batch_size", batch_size, low=1, integer=True)
        check_number("lr", lr, low=0, low_inclusive=False)
        check_choice("optimizer", optimizer, ("adam", "sgd"))
        check_number("seed", seed, low=0, integer=True)
        self.weight_decay = weight_decay
        self.label_smoothing = label_smoothing
        self.early_stopping = early_stopping
        self.patience = patience
        self.val_fraction = val_fraction
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.seed = seed

    def fit(
        self,
        model: TorchClassifier,
        x: np.ndarray | Tensor,
        y: np.ndarray | Tensor,
        *,
        show_progress: bool = True,
    ) -> PrivateTrainedModel:
        """Train a fresh copy of ``model``'s network on ``(x, y)`` with the regularisers.

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
            The trained model and its history; ``epsilon`` is ``inf`` (no guarantee).
        """
        require_torch(model, "Regularised", "training its network")
        check_bool("show_progress", show_progress)
        xt = model.as_tensor(x, name="x")
        check_in_bounds("x", xt, model.bounds)
        target = model.reinitialised(self.seed)
        target.query_budget = None
        alpha = float(self.label_smoothing)

        def loss_fn(net: TorchClassifier, xb: Tensor, yb: Tensor) -> Tensor:
            return F.cross_entropy(net.forward(xb), yb, label_smoothing=alpha)

        history = train(
            target,
            xt,
            y,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            optimizer=self.optimizer,
            weight_decay=self.weight_decay,
            val_fraction=self.val_fraction if self.early_stopping else 0.0,
            patience=self.patience if self.early_stopping else None,
            loss_fn=loss_fn,
            seed=self.seed,
            show_progress=show_progress,
            desc="regularised",
        )
        target.reset_queries()
        return PrivateTrainedModel(
            model=target,
            history=history,
            seconds=history.seconds,
            method=self.name,
            params=self.get_params(),
        )
