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
from advml.runtime.progress import progress
from advml.validation import check_choice, check_labels, check_number

__all__ = ["History", "LossFn", "train", "validation_split"]

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
) -> History:
    """Train ``model.module`` in place on ``(x, y)`` and return the history.

    Parameters
    ----------
    model : TorchClassifier
        The network to train; its normalisation is applied as in inference.
    x, y : arrays
        Inputs ``(n, *input_shape)`` within the model's bounds, labels ``(n,)``.
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
        Fraction of ``(x, y)`` held out for validation when ``x_val`` is not given
        (0 trains on everything, without early stopping).
    x_val, y_val : arrays, optional
        Explicit validation data.
    patience : int or None
        Stop after this many epochs without a lower validation loss; the best weights
        are restored. ``None`` always runs ``epochs`` epochs (the best weights are still
        restored when there is validation data).
    loss_fn : callable, optional
        ``loss_fn(model, xb, yb) -> loss``; default cross-entropy. Adversarial training
        passes a loss on attacked batches here.
    params : list of parameters, optional
        Parameters to optimise (e.g. the last layer only); default all of them.
    seed : int
        Seeds the split, the shuffling, the initial dropout state; same seed, same result.
    show_progress : bool
        Show a progress bar over epochs.
    desc : str
        Label of the progress bar.
    on_epoch : callable, optional
        Called with the epoch number (1-based) before each epoch: a schedule (e.g. the
        ε warm-up of adversarial training) updates its state there.
    schedule : {"constant", "cosine"}
        Learning rate over the run: constant, or cosine decay from ``lr`` towards 0 at the
        last step of ``epochs`` (Loshchilov & Hutter, ICLR 2017, eq. 5, without restarts):
        ``lr_t = lr · (1 + cos(π t / T)) / 2``, ``t`` the step, ``T`` the steps of all epochs.

    Returns
    -------
    History
        Losses and accuracies per epoch, the kept epoch, whether it stopped early.

    Notes
    -----
    The module is left in eval mode with the best weights.
    """
    check_number("epochs", epochs, low=1, integer=True)
    check_number("batch_size", batch_size, low=1, integer=True)
    check_number("lr", lr, low=0, low_inclusive=False)
    check_choice("optimizer", optimizer, ("adam", "sgd"))
    check_choice("schedule", schedule, ("constant", "cosine"))
    check_number("val_fraction", val_fraction, low=0, high=1, high_inclusive=False)
    if patience is not None:
        check_number("patience", patience, low=1, integer=True)
    xt = model.as_tensor(x, name="x")
    yt = _labels(y, model.n_classes, xt.shape[0], "y", model.device)
    gen = torch.Generator().manual_seed(seed)
    xv: Tensor | None
    yv: Tensor | None
    if x_val is not None or y_val is not None:
        if x_val is None or y_val is None:
            raise ValueError("give both x_val and y_val, or neither")
        xv = model.as_tensor(x_val, name="x_val")
        yv = _labels(y_val, model.n_classes, xv.shape[0], "y_val", model.device)
    elif val_fraction > 0:
        fit_idx, val_idx = _split(xt.shape[0], val_fraction, gen)
        fit_idx, val_idx = fit_idx.to(model.device), val_idx.to(model.device)
        xv, yv = xt[val_idx], yt[val_idx]
        xt, yt = xt[fit_idx], yt[fit_idx]
    else:
        xv, yv = None, None
    loss_fn = loss_fn or cross_entropy
    module = model.module
    trainable = (
        params if params is not None else [p for p in module.parameters() if p.requires_grad]
    )
    if optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(trainable, lr=lr, weight_decay=weight_decay)
    else:
        opt = torch.optim.SGD(trainable, lr=lr, momentum=momentum, weight_decay=weight_decay)
    total_steps = epochs * -(-xt.shape[0] // batch_size)
    step = 0

    history: dict[str, list[float]] = {k: [] for k in ("tl", "ta", "vl", "va")}
    best_loss, best_epoch, best_state, waited = float("inf"), 0, None, 0
    stopped = False
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[] if model.device.type == "cpu" else [model.device]):
        torch.manual_seed(seed)
        bar = progress(range(1, epochs + 1), desc=desc, enabled=show_progress, leave=False)
        for epoch in bar:
            if on_epoch is not None:
                on_epoch(epoch)
            module.train()
            order = torch.randperm(xt.shape[0], generator=gen).to(model.device)
            total_loss = 0.0
            for i in range(0, xt.shape[0], batch_size):
                idx = order[i : i + batch_size]
                xb, yb = xt[idx], yt[idx]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model, xb, yb)
                loss.backward(inputs=trainable)
                if schedule == "cosine":
                    # Loshchilov & Hutter 2017, eq. 5 (one cycle, eta_min = 0).
                    for group in opt.param_groups:
                        group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
                step += 1
                opt.step()
                total_loss += float(loss.detach()) * idx.numel()
            history["tl"].append(total_loss / xt.shape[0])
            module.eval()
            history["ta"].append(_accuracy(model, xt, yt, batch_size=1024))
            if xv is not None and yv is not None:
                vl, va = _evaluate(model, xv, yv)
                history["vl"].append(vl)
                history["va"].append(va)
                bar.set_postfix(loss=f"{history['tl'][-1]:.3f}", val_acc=f"{va:.3f}")
                if vl < best_loss - 1e-6:
                    best_loss, best_epoch, waited = vl, epoch, 0
                    best_state = copy.deepcopy(module.state_dict())
                else:
                    waited += 1
                    if patience is not None and waited >= patience:
                        stopped = epoch < epochs
                        break
            else:
                best_epoch = epoch
                bar.set_postfix(loss=f"{history['tl'][-1]:.3f}")
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return History(
        train_loss=tuple(history["tl"]),
        train_accuracy=tuple(history["ta"]),
        val_loss=tuple(history["vl"]),
        val_accuracy=tuple(history["va"]),
        best_epoch=best_epoch,
        stopped_early=stopped,
        seconds=time.perf_counter() - start,
    )


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
