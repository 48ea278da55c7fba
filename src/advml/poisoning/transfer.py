"""The supply-chain scenario: a victim fine-tunes a backdoored "pre-trained" model.

Gu et al. (BadNets, 2017, §5) trained a backdoored U.S. traffic-sign network, handed it
to a victim who retrained it on Swedish signs, and found the backdoor still lowered the
accuracy on triggered inputs by about 25%. :func:`fine_tune` plays the victim (fine-tune
only the last layer, or the whole network, on the victim's own clean data, optionally
with a new label set and so a new output layer) and :func:`transfer_backdoor` measures
what is left of the backdoor.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from advml.metrics.backdoor import backdoor_success_rate
from advml.models.torch import TorchClassifier
from advml.models.training import train
from advml.poisoning.base import PoisonedData
from advml.validation import check_choice, check_number

__all__ = ["TransferResult", "fine_tune", "last_linear_layer", "transfer_backdoor"]

Layers = Literal["last", "all"]


def last_linear_layer(model: TorchClassifier) -> str:
    """Name of the last ``nn.Linear`` of the model (its output layer)."""
    names = [n for n, m in model.module.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise ValueError("the model has no nn.Linear layer to replace or fine-tune")
    return names[-1]


def fine_tune(
    model: TorchClassifier,
    x: np.ndarray | Tensor,
    y: np.ndarray | Tensor,
    *,
    layers: Layers = "last",
    n_classes: int | None = None,
    epochs: int = 10,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
    show_progress: bool = False,
) -> TorchClassifier:
    """A fine-tuned copy of ``model`` (the model itself is not changed).

    Parameters
    ----------
    model : TorchClassifier
        The pre-trained (possibly backdoored) model.
    x, y : arrays
        The victim's own training data (labels in ``[0, n_classes)``).
    layers : {"last", "all"}
        Train only the output layer (the usual transfer-learning recipe) or every layer.
    n_classes : int, optional
        Number of classes of the new task; when it differs from the model's, the output
        layer is replaced by a freshly initialised one (seeded).
    epochs, lr, batch_size : training settings
        Passed to :func:`advml.models.train` (10 % of ``x`` is held out for early stopping).
    seed : int
        Seeds the new layer and the training.
    """
    check_choice("layers", layers, ("last", "all"))
    k = model.n_classes if n_classes is None else int(n_classes)
    check_number("n_classes", k, low=2, integer=True)
    out_name = last_linear_layer(model)
    module = copy.deepcopy(model.module)
    if k != model.n_classes:
        parent_name, _, child = out_name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        old = getattr(parent, child)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            setattr(parent, child, nn.Linear(old.in_features, k).to(old.weight.device))
    victim = TorchClassifier(
        module,
        input_shape=model.input_shape,
        n_classes=k,
        bounds=model.bounds,
        preprocessing=model.preprocessing,
        device=model.device,
    )
    params = list(module.get_submodule(out_name).parameters()) if layers == "last" else None
    train(
        victim,
        x,
        y,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        params=params,
        seed=seed,
        show_progress=show_progress,
        desc=f"fine-tuning ({layers})",
    )
    return victim


@dataclass(frozen=True)
class TransferResult:
    """What is left of a backdoor after the victim's fine-tuning."""

    layers: str
    clean_accuracy: float
    """The fine-tuned model's accuracy on the new task's clean test inputs."""
    triggered_accuracy: float
    """Its accuracy on the same inputs with the trigger (against their true labels)."""
    attack_success: float
    """Attack success rate when the label set is unchanged; ``nan`` for a new label set."""

    @property
    def accuracy_drop(self) -> float:
        """Clean minus triggered accuracy: Gu et al.'s measure for a new label set."""
        return self.clean_accuracy - self.triggered_accuracy

    def summary(self) -> dict[str, Any]:
        return {
            "layers": self.layers,
            "clean_accuracy": self.clean_accuracy,
            "triggered_accuracy": self.triggered_accuracy,
            "attack_success": self.attack_success,
            "accuracy_drop": self.accuracy_drop,
        }


def transfer_backdoor(
    model: TorchClassifier,
    poisoned: PoisonedData,
    x_victim: np.ndarray,
    y_victim: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    layers: Layers = "last",
    n_classes: int | None = None,
    epochs: int = 10,
    lr: float = 1e-3,
    seed: int = 0,
) -> TransferResult:
    """Fine-tune ``model`` on the victim's clean data and measure the backdoor.

    With the same label set, the attack success rate uses ``poisoned``'s target rule;
    with a new label set (``n_classes`` different), only the accuracy drop on
    triggered inputs is meaningful.
    """
    tuned = fine_tune(
        model,
        x_victim,
        y_victim,
        layers=layers,
        n_classes=n_classes,
        epochs=epochs,
        lr=lr,
        seed=seed,
    )
    x = np.asarray(x_test)
    y = np.asarray(y_test)
    pred = np.asarray(tuned.predict(x))
    pred_trig = np.asarray(tuned.predict(np.asarray(poisoned.apply_trigger(x)).clip(*tuned.bounds)))
    same = tuned.n_classes == poisoned.n_classes
    asr = backdoor_success_rate(y, poisoned.backdoor_labels(y), pred_trig) if same else float("nan")
    return TransferResult(
        layers=layers,
        clean_accuracy=float((pred == y).mean()),
        triggered_accuracy=float((pred_trig == y).mean()),
        attack_success=asr,
    )
