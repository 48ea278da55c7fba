"""The one training loop every part of advml that trains a network uses.

Seeded (same seed, same weights), with a validation split, early stopping on the
validation loss (the best weights are restored), a progress bar and a returned history.
Robust training (adversarial, TRADES), fine-tuning, watermark embedding and
fine-pruning plug in through ``loss_fn``.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from advml.models.torch import TorchClassifier
from advml.runtime.progress import counter
from advml.validation import check_choice, check_labels, check_number

__all__ = ["History", "LossFn", "TrainingRecipe", "train", "validation_split"]

LossFn = Callable[[TorchClassifier, Tensor, Tensor], Tensor]
"""``loss_fn(model, x_batch, y_batch) -> scalar loss``; the model is in training mode."""


@dataclass(frozen=True)
class History:
    """What happened during :func:`train`, one entry per epoch run."""

    train_loss: tuple[float, ...]
    train_accuracy: tuple[float, ...]
    val_loss: tuple[float, ...]
    val_accuracy: tuple[float, ...]
    best_epoch: int
    """Epoch (1-based) whose weights were kept; the last epoch without validation data."""
    stopped_early: bool
    seconds: float

    @property
    def epochs_run(self) -> int:
        return len(self.train_loss)


def cross_entropy(model: TorchClassifier, x: Tensor, y: Tensor) -> Tensor:
    """The default loss: mean cross-entropy of the model's logits."""
    return F.cross_entropy(model.forward(x), y)


def validation_split(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``(fit, validation)`` indices that :func:`train` draws from ``n`` records.

    ``train(..., val_fraction=f, seed=s)`` without ``x_val`` holds out these
    ``max(1, round(f * n))`` records for early stopping and fits on the rest, so this
    says exactly which records a model trained that way has seen (membership audits
    need it).
    """
    check_number("n", n, low=2, integer=True)
    check_number("val_fraction", val_fraction, low=0, high=1, low_inclusive=False)
    fit_idx, val_idx = _split(n, val_fraction, torch.Generator().manual_seed(int(seed)))
    return fit_idx.numpy(), val_idx.numpy()


def _split(n: int, val_fraction: float, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    perm = torch.randperm(n, generator=gen)
    n_val = max(1, round(val_fraction * n))
    if n_val >= n:
        raise ValueError(f"val_fraction={val_fraction} leaves no training data")
    return perm[n_val:], perm[:n_val]


@dataclass(frozen=True)
class TrainingRecipe:
    """How :func:`train` trains: the hyperparameters, validated, as one value.

    ``train(model, x, y, recipe=r)`` and ``train(model, x, y, epochs=..., lr=...)`` are
    the same call; a recipe can be kept, compared and passed on (reference models,
    shadow models and watermark references are trained with one).

    Attributes
    ----------
    epochs : int
        Maximum number of passes over the training data.
    batch_size : int
        Samples per optimiser step.
    lr : float
        Learning rate.
    optimizer : {"adam", "sgd"}
        Adam, or SGD with ``momentum``.
    momentum : float
        SGD momentum (ignored by Adam).
    weight_decay : float
        L2 penalty.
    val_fraction : float
        Fraction held out for validation when no ``x_val`` is given (0 trains on
        everything, without early stopping).
    patience : int or None
        Stop after this many epochs without a lower validation loss; the best weights
        are restored. ``None`` always runs ``epochs`` epochs.
    schedule : {"constant", "cosine"}
        Learning rate over the run: constant, or cosine decay from ``lr`` towards 0 at the
        last step of ``epochs`` (Loshchilov & Hutter, ICLR 2017, eq. 5, without restarts):
        ``lr_t = lr · (1 + cos(π t / T)) / 2``, ``t`` the step, ``T`` the steps of all epochs.
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: Literal["adam", "sgd"] = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    val_fraction: float = 0.1
    patience: int | None = 3
    schedule: Literal["constant", "cosine"] = "constant"

    def __post_init__(self) -> None:
        check_number("epochs", self.epochs, low=1, integer=True)
        check_number("batch_size", self.batch_size, low=1, integer=True)
        check_number("lr", self.lr, low=0, low_inclusive=False)
        check_choice("optimizer", self.optimizer, ("adam", "sgd"))
        check_choice("schedule", self.schedule, ("constant", "cosine"))
        check_number("val_fraction", self.val_fraction, low=0, high=1, high_inclusive=False)
        if self.patience is not None:
            check_number("patience", self.patience, low=1, integer=True)

    def lr_at(self, step: int, total_steps: int) -> float:
        """The learning rate of optimiser step ``step`` (0-based) of ``total_steps``."""
        if self.schedule == "cosine":
            # Loshchilov & Hutter 2017, eq. 5 (one cycle, eta_min = 0).
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
        return self.lr


_DEFAULT_RECIPE = TrainingRecipe()


def train(
    model: TorchClassifier,
    x: np.ndarray | Tensor,
    y: np.ndarray | Tensor,
    *,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 1e-3,
    optimizer: Literal["adam", "sgd"] = "adam",
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    val_fraction: float = 0.1,
    x_val: np.ndarray | Tensor | None = None,
    y_val: np.ndarray | Tensor | None = None,
    patience: int | None = 3,
    loss_fn: LossFn | None = None,
    params: list[torch.nn.Parameter] | None = None,
    seed: int = 0,
    show_progress: bool = True,
    desc: str = "training",
    on_epoch: Callable[[int], None] | None = None,
    schedule: Literal["constant", "cosine"] = "constant",
    recipe: TrainingRecipe | None = None,
) -> History:
    """Train ``model.module`` in place on ``(x, y)`` and return the history.

    Parameters
    ----------
    model : TorchClassifier
        The network to train; its normalisation is applied as in inference.
    x, y : arrays
        Inputs ``(n, *input_shape)`` within the model's bounds, labels ``(n,)``.
    epochs, batch_size, lr, optimizer, momentum, weight_decay, val_fraction, patience, \
schedule
        The hyperparameters, as described by :class:`TrainingRecipe`; or give them all
        at once as ``recipe``.
    x_val, y_val : arrays, optional
        Explicit validation data.
    loss_fn : callable, optional
        ``loss_fn(model, xb, yb) -> loss``; default cross-entropy. Adversarial training
        passes a loss on attacked batches here.
    params : list of parameters, optional
        Parameters to optimise (e.g. the last layer only); default all of them.
    seed : int
        Seeds the split, the shuffling, the initial dropout state; same seed, same result
        (with the same thread count and torch version: docs/audit.md, Reproducibility).
    show_progress : bool
        Show a progress bar over the training batches (with the epoch and an ETA).
    desc : str
        Label of the progress bar.
    on_epoch : callable, optional
        Called with the epoch number (1-based) before each epoch: a schedule (e.g. the
        ε warm-up of adversarial training) updates its state there.
    recipe : TrainingRecipe, optional
        All hyperparameters at once; then none of them may be given as a keyword.

    Returns
    -------
    History
        Losses and accuracies per epoch, the kept epoch, whether it stopped early.

    Notes
    -----
    The module is left in eval mode with the best weights.
    """
    keywords = TrainingRecipe(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        optimizer=optimizer,
        momentum=momentum,
        weight_decay=weight_decay,
        val_fraction=val_fraction,
        patience=patience,
        schedule=schedule,
    )
    if recipe is None:
        recipe = keywords
    elif keywords != _DEFAULT_RECIPE:
        raise ValueError(
            "give the hyperparameters either as recipe=TrainingRecipe(...) or as keywords, not both"
        )
    gen = torch.Generator().manual_seed(seed)
    xt, yt, xv, yv = _fit_and_validation(model, x, y, x_val, y_val, recipe.val_fraction, gen)
    module = model.module
    trainable = (
        params if params is not None else [p for p in module.parameters() if p.requires_grad]
    )
    opt = _optimizer(trainable, recipe)
    total_steps = recipe.epochs * -(-xt.shape[0] // recipe.batch_size)
    step = 0
    history: dict[str, list[float]] = {k: [] for k in ("tl", "ta", "vl", "va")}
    stopping = _EarlyStopping(recipe.patience)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[] if model.device.type == "cpu" else [model.device]):
        torch.manual_seed(seed)
        # One tick per batch, not per epoch: an epoch of adversarial training takes
        # minutes on a CPU, and the ETA must show after the first batch, not the first epoch.
        bar = counter(total_steps, desc=desc, unit="batch", enabled=show_progress)
        for epoch in range(1, recipe.epochs + 1):
            bar.set_description(f"{desc} epoch {epoch}/{recipe.epochs}")
            if on_epoch is not None:
                on_epoch(epoch)
            order = torch.randperm(xt.shape[0], generator=gen).to(model.device)
            loss, step = _epoch(
                model,
                (xt, yt, order),
                opt,
                loss_fn or cross_entropy,
                trainable,
                recipe=recipe,
                step=step,
                total_steps=total_steps,
                on_batch=bar.update,
            )
            history["tl"].append(loss)
            history["ta"].append(_accuracy(model, xt, yt, batch_size=1024))
            if xv is None or yv is None:
                stopping.best_epoch = epoch
                bar.set_postfix(loss=f"{loss:.3f}")
                continue
            vl, va = _evaluate(model, xv, yv)
            history["vl"].append(vl)
            history["va"].append(va)
            bar.set_postfix(loss=f"{loss:.3f}", val_acc=f"{va:.3f}")
            if stopping.should_stop(epoch, vl, module):
                stopping.stopped = epoch < recipe.epochs
                break
        bar.close()
    if stopping.best_state is not None:
        module.load_state_dict(stopping.best_state)
    module.eval()
    return History(
        train_loss=tuple(history["tl"]),
        train_accuracy=tuple(history["ta"]),
        val_loss=tuple(history["vl"]),
        val_accuracy=tuple(history["va"]),
        best_epoch=stopping.best_epoch,
        stopped_early=stopping.stopped,
        seconds=time.perf_counter() - start,
    )


def _fit_and_validation(
    model: TorchClassifier,
    x: np.ndarray | Tensor,
    y: np.ndarray | Tensor,
    x_val: np.ndarray | Tensor | None,
    y_val: np.ndarray | Tensor | None,
    val_fraction: float,
    gen: torch.Generator,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """The data to fit and to validate on: the explicit validation data, or a seeded
    held-out part of ``(x, y)`` (:func:`validation_split`), or none."""
    xt = model.as_tensor(x, name="x")
    yt = _labels(y, model.n_classes, xt.shape[0], "y", model.device)
    if x_val is not None or y_val is not None:
        if x_val is None or y_val is None:
            raise ValueError("give both x_val and y_val, or neither")
        xv = model.as_tensor(x_val, name="x_val")
        return xt, yt, xv, _labels(y_val, model.n_classes, xv.shape[0], "y_val", model.device)
    if val_fraction > 0:
        fit_idx, val_idx = _split(xt.shape[0], val_fraction, gen)
        fit_idx, val_idx = fit_idx.to(model.device), val_idx.to(model.device)
        return xt[fit_idx], yt[fit_idx], xt[val_idx], yt[val_idx]
    return xt, yt, None, None


def _optimizer(params: list[torch.nn.Parameter], recipe: TrainingRecipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    return torch.optim.SGD(
        params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay
    )


def _epoch(
    model: TorchClassifier,
    data: tuple[Tensor, Tensor, Tensor],
    opt: torch.optim.Optimizer,
    loss_fn: LossFn,
    trainable: list[torch.nn.Parameter],
    *,
    recipe: TrainingRecipe,
    step: int,
    total_steps: int,
    on_batch: Callable[[int], object] | None = None,
) -> tuple[float, int]:
    """One pass over ``data = (x, y, order)`` in the shuffled ``order``, in training
    mode; the mean loss and the optimiser steps taken so far. The module is left in eval
    mode."""
    x, y, order = data
    model.module.train()
    total_loss = 0.0
    for i in range(0, x.shape[0], recipe.batch_size):
        idx = order[i : i + recipe.batch_size]
        xb, yb = x[idx], y[idx]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model, xb, yb)
        loss.backward(inputs=trainable)
        if recipe.schedule != "constant":
            for group in opt.param_groups:
                group["lr"] = recipe.lr_at(step, total_steps)
        step += 1
        opt.step()
        total_loss += float(loss.detach()) * xb.shape[0]
        if on_batch is not None:
            on_batch(1)
    model.module.eval()
    return total_loss / x.shape[0], step


class _EarlyStopping:
    """Keeps the weights of the epoch with the lowest validation loss and says when
    ``patience`` epochs have passed without a lower one."""

    def __init__(self, patience: int | None) -> None:
        self.patience = patience
        self.best_loss = float("inf")
        self.best_epoch = 0
        self.best_state: dict[str, Tensor] | None = None
        self.waited = 0
        self.stopped = False

    def should_stop(self, epoch: int, val_loss: float, module: torch.nn.Module) -> bool:
        if val_loss < self.best_loss - 1e-6:
            self.best_loss, self.best_epoch, self.waited = val_loss, epoch, 0
            self.best_state = copy.deepcopy(module.state_dict())
            return False
        self.waited += 1
        return self.patience is not None and self.waited >= self.patience


def _labels(
    y: np.ndarray | Tensor, n_classes: int, n: int, name: str, device: torch.device
) -> Tensor:
    if not isinstance(y, np.ndarray | Tensor):
        y = np.asarray(y)
    check_labels(name, y, n_classes, n)
    t = torch.as_tensor(y) if isinstance(y, np.ndarray) else y.detach()
    return t.to(device=device, dtype=torch.long)


@torch.no_grad()
def _evaluate(
    model: TorchClassifier, x: Tensor, y: Tensor, batch_size: int = 1024
) -> tuple[float, float]:
    loss, correct = 0.0, 0
    for i in range(0, x.shape[0], batch_size):
        out = model.forward(x[i : i + batch_size])
        loss += float(F.cross_entropy(out, y[i : i + batch_size], reduction="sum"))
        correct += int((out.argmax(1) == y[i : i + batch_size]).sum())
    return loss / x.shape[0], correct / x.shape[0]


def _accuracy(model: TorchClassifier, x: Tensor, y: Tensor, batch_size: int) -> float:
    return _evaluate(model, x, y, batch_size)[1]
