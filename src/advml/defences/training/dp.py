"""DP-SGD training through opacus (Abadi, Chu, Goodfellow, McMahan, Mironov, Talwar &
Zhang, "Deep Learning with Differential Privacy", CCS 2016).

Each example's gradient is clipped to ``max_grad_norm`` and Gaussian noise of standard
deviation ``noise_multiplier * max_grad_norm`` is added to their sum (Abadi et al.,
Algorithm 1); batches are drawn by Poisson sampling so that the privacy accountant's
analysis holds. opacus (Yousefpour et al. 2021) does the per-example gradients, the
noise and the accounting; the (ε, δ) it reports is what the trained model guarantees for
every training record. This module only wires it to advml's models.
"""

from __future__ import annotations

import time
import warnings
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from advml import registry
from advml.defences.training.base import PrivateTrainedModel, PrivateTraining
from advml.errors import UnsupportedModelError
from advml.models.torch import TorchClassifier
from advml.models.training import History
from advml.runtime.progress import progress
from advml.validation import check_choice, check_labels, check_number

if TYPE_CHECKING:  # opacus is imported when training starts (it is slow to import)
    from opacus.optimizers import DPOptimizer

__all__ = ["DPSGD", "PrivateTrainedModel"]


@registry.register("private_training", "dp_sgd")
class DPSGD(PrivateTraining):
    """Differentially private SGD through opacus: clip per-example gradients, add noise.

    Give ``noise_multiplier`` (σ) and the ε reached is reported, or give
    ``target_epsilon`` and opacus picks σ so that ``epochs`` epochs reach it.

    Parameters
    ----------
    noise_multiplier : float
        σ, the noise standard deviation in units of ``max_grad_norm`` (> 0); default 1.0.
        Ignored when ``target_epsilon`` is given.
    target_epsilon : float, optional
        The ε to reach after ``epochs`` epochs; σ is calibrated by opacus.
    delta : float
        δ of the guarantee (0 < δ < 1); use less than 1 / (number of training records).
    max_grad_norm : float
        Per-example gradient clipping norm C (> 0); default 1.0.
    epochs : int
        Passes over the data (>= 1); default 20.
    batch_size : int
        Expected batch size of the Poisson sampling (>= 1); default 64.
    lr : float
        Learning rate (> 0); default 0.1 with SGD.
    optimizer : {"sgd", "adam"}
        SGD with momentum 0.9 or Adam, made private by opacus.
    accountant : {"rdp", "prv", "gdp"}
        opacus's privacy accountant; RDP (Mironov 2017) by default.
    seed : int
        Seeds the initial weights, the sampling and the noise (not cryptographically
        secure: for experiments, not deployment).

    Examples
    --------
    >>> from advml.defences.training import DPSGD
    >>> trained = DPSGD(target_epsilon=3.0, epochs=10).fit(model, x, y)  # doctest: +SKIP
    >>> trained.epsilon, trained.model  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        noise_multiplier: float = 1.0,
        target_epsilon: float | None = None,
        delta: float = 1e-5,
        max_grad_norm: float = 1.0,
        epochs: int = 20,
        batch_size: int = 64,
        lr: float = 0.1,
        optimizer: Literal["sgd", "adam"] = "sgd",
        accountant: Literal["rdp", "prv", "gdp"] = "rdp",
        seed: int = 0,
    ) -> None:
        super().__init__(
            epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, seed=seed
        )
        check_number("noise_multiplier", noise_multiplier, low=0, low_inclusive=False)
        if target_epsilon is not None:
            check_number("target_epsilon", target_epsilon, low=0, low_inclusive=False)
        check_number("delta", delta, low=0, high=1, low_inclusive=False, high_inclusive=False)
        check_number("max_grad_norm", max_grad_norm, low=0, low_inclusive=False)
        check_choice("accountant", accountant, ("rdp", "prv", "gdp"))
        self.noise_multiplier = noise_multiplier
        self.target_epsilon = target_epsilon
        self.delta = delta
        self.max_grad_norm = max_grad_norm
        self.accountant = accountant

    def _fit(
        self, model: TorchClassifier, xt: Tensor, y: np.ndarray | Tensor, *, show_progress: bool
    ) -> PrivateTrainedModel:
        # opacus refuses networks with layers it cannot train privately (batch
        # normalisation): _private_copy raises UnsupportedModelError naming them.
        yt = _labels(model, xt, y)
        target = _private_copy(model, self.seed)
        start = time.perf_counter()
        with torch.random.fork_rng(devices=[] if model.device.type == "cpu" else [model.device]):
            torch.manual_seed(self.seed)
            with warnings.catch_warnings():
                # opacus warns about secure RNG and about full-backward hooks on every call.
                warnings.simplefilter("ignore", UserWarning)
                engine, private, opt, loader = self._make_private(target, xt, yt)
                sigma = float(opt.noise_multiplier)
                runner = TorchClassifier(
                    private,
                    input_shape=model.input_shape,
                    n_classes=model.n_classes,
                    bounds=model.bounds,
                    preprocessing=model.preprocessing,
                    device=model.device,
                )
                losses, accs = self._train_epochs(runner, opt, loader, xt, yt, show_progress)
                epsilon = float(engine.get_epsilon(self.delta))
            opt.zero_grad(set_to_none=True)
        target.module = _unwrapped(private, target.module)
        seconds = time.perf_counter() - start
        history = History(
            train_loss=tuple(losses),
            train_accuracy=tuple(accs),
            val_loss=(),
            val_accuracy=(),
            best_epoch=self.epochs,
            stopped_early=False,
            seconds=seconds,
        )
        return PrivateTrainedModel(
            model=target,
            history=history,
            seconds=seconds,
            method=self.name,
            params=self.get_params(),
            epsilon=epsilon,
            delta=self.delta,
            noise_multiplier=sigma,
        )

    def _make_private(
        self, target: TorchClassifier, xt: Tensor, yt: Tensor
    ) -> tuple[Any, torch.nn.Module, DPOptimizer, Any]:
        """opacus's engine, the wrapped network, the private optimiser and the Poisson
        data loader for ``target`` (in training mode), seeded by ``self.seed``."""
        from opacus import PrivacyEngine

        loader_gen = torch.Generator().manual_seed(self.seed)
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(xt, yt),
            batch_size=self.batch_size,
            shuffle=True,
            generator=loader_gen,
        )
        module = target.module
        module.train()
        params = [p for p in module.parameters() if p.requires_grad]
        opt: torch.optim.Optimizer
        if self.optimizer == "sgd":
            opt = torch.optim.SGD(params, lr=self.lr, momentum=0.9)
        else:
            opt = torch.optim.Adam(params, lr=self.lr)
        noise_gen = torch.Generator(device=target.device).manual_seed(self.seed + 1)
        engine = PrivacyEngine(accountant=self.accountant)
        # What both of opacus's entry points take; they differ in how σ is given.
        common: dict[str, Any] = {
            "module": module,
            "optimizer": opt,
            "data_loader": loader,
            "max_grad_norm": self.max_grad_norm,
            "noise_generator": noise_gen,
        }
        if self.target_epsilon is not None:
            private, opt, loader = engine.make_private_with_epsilon(
                **common,
                target_epsilon=self.target_epsilon,
                target_delta=self.delta,
                epochs=self.epochs,
            )
        else:
            private, opt, loader = engine.make_private(
                **common, noise_multiplier=self.noise_multiplier
            )
        return engine, private, opt, loader

    def _train_epochs(
        self,
        runner: TorchClassifier,
        opt: torch.optim.Optimizer,
        loader: Any,
        xt: Tensor,
        yt: Tensor,
        show_progress: bool,
    ) -> tuple[list[float], list[float]]:
        """``self.epochs`` passes of DP-SGD steps; the mean loss and the training
        accuracy after each."""
        private = runner.module
        losses: list[float] = []
        accs: list[float] = []
        bar = progress(range(self.epochs), desc="DP-SGD", enabled=show_progress, total=self.epochs)
        for _ in bar:
            private.train()
            total, count = 0.0, 0
            for xb, yb in loader:
                if xb.shape[0] == 0:  # Poisson sampling can draw an empty batch
                    continue
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(runner.forward(xb), yb)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * xb.shape[0]
                count += xb.shape[0]
            losses.append(total / max(count, 1))
            private.eval()
            with torch.no_grad():
                pred = runner.forward(xt).argmax(1)
            accs.append(float((pred == yt).float().mean()))
            bar.set_postfix(loss=f"{losses[-1]:.3f}", acc=f"{accs[-1]:.3f}")
        return losses, accs


def _labels(model: TorchClassifier, xt: Tensor, y: np.ndarray | Tensor) -> Tensor:
    """The labels ``y`` of ``xt`` validated against ``model``, as a tensor on its device."""
    y_arr = y if isinstance(y, np.ndarray | Tensor) else np.asarray(y)
    check_labels("y", y_arr, model.n_classes, xt.shape[0])
    yt = torch.as_tensor(np.asarray(y_arr) if isinstance(y_arr, np.ndarray) else y_arr)
    return yt.to(device=model.device, dtype=torch.long)


def _private_copy(model: TorchClassifier, seed: int) -> TorchClassifier:
    """A re-initialised copy of ``model`` that opacus can train, in training mode; else
    :class:`UnsupportedModelError` naming the layers it cannot (batch normalisation)."""
    try:
        from opacus.validators import ModuleValidator
    except ImportError as e:  # pragma: no cover - opacus is a declared dependency
        raise ImportError("DP-SGD needs opacus: pip install 'opacus>=1.5'") from e
    target = model.reinitialised(seed)
    # opacus validates a module in training mode; the caller's may be in eval mode.
    target.module.train()
    problems = ModuleValidator.validate(target.module, strict=False)
    if problems:
        text = "; ".join(str(p) for p in problems)
        hint = (
            ". Replace batch normalisation by group normalisation "
            "(opacus.validators.ModuleValidator.fix does this)"
            if "BatchNorm" in text
            else ""
        )
        raise UnsupportedModelError(f"opacus cannot train this network privately: {text}{hint}")
    return target


def _unwrapped(private: torch.nn.Module, module: torch.nn.Module) -> torch.nn.Module:
    """The plain trained network: opacus wraps it and leaves per-sample gradient hooks
    and buffers on it; hand back the network with its weights and no gradients."""
    plain: torch.nn.Module = getattr(private, "_module", module)
    close = getattr(private, "_close", None)
    if callable(close):
        close()
    for p in plain.parameters():
        p.grad = None
        for attr in ("grad_sample", "summed_grad"):
            if hasattr(p, attr):
                delattr(p, attr)
    plain.eval()
    return plain
