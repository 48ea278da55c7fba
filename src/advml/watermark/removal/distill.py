"""Distillation removal: a fresh model trained on the watermarked model's labels."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from advml import registry
from advml.models.architectures import build as build_architecture
from advml.models.base import Classifier, WhiteBox
from advml.models.torch import TorchClassifier
from advml.validation import check_choice
from advml.watermark.removal.base import RemovalAttack

__all__ = ["Distill"]


@registry.register("watermark_removal", "distill")
class Distill(RemovalAttack):
    """Extraction: train a fresh model on the attacked model's labels for the attacker's inputs.

    The attacker queries the model once per input (black-box access suffices, labels
    only are enough), then trains a network of the same architecture (rebuilt from the
    recorded architecture, or the same module with every parameter re-initialised) from
    a fresh initialisation on those labels. Watermarks the model learned off the data's
    distribution are rarely asked about, so they rarely survive (Adi et al. 2018, §5;
    Lukas et al. 2022).

    Parameters
    ----------
    epochs : int
        Training epochs of the fresh model; default 20.
    lr : float
        Adam learning rate; default 1e-3.
    batch_size : int
        Samples per step; default 64.
    seed : int
        Seeds the fresh initialisation and the shuffling; default 0.
    architecture : {"same", "mlp", "cnn"}
        Architecture of the fresh model: the attacked model's own, or a reference one;
        default "same" (which needs a white-box model; a black-box model gets "mlp").
    """

    needs_labels = False
    needs_white_box = False

    def __init__(
        self,
        *,
        epochs: int = 20,
        lr: float = 1e-3,
        batch_size: int = 64,
        seed: int = 0,
        architecture: Literal["same", "mlp", "cnn"] = "same",
    ) -> None:
        self._set_tuning(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
        check_choice("architecture", architecture, ("same", "mlp", "cnn"))
        self.architecture = architecture

    def _fresh(self, model: Classifier) -> TorchClassifier:
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)
            if self.architecture == "same" and isinstance(model, WhiteBox):
                recorded = model.module.__dict__.get("advml_architecture")
                if recorded is not None:
                    module = build_architecture(recorded[0], **recorded[1])
                else:
                    module = model.reinitialised(self.seed).module
                preprocessing = model.preprocessing
            else:
                arch = "mlp" if self.architecture == "same" else self.architecture
                module = build_architecture(
                    arch, input_shape=model.input_shape, n_classes=model.n_classes
                )
                preprocessing = None
        return TorchClassifier(
            module,
            input_shape=model.input_shape,
            n_classes=model.n_classes,
            bounds=model.bounds,
            preprocessing=preprocessing,
            device=model.device,
        )

    def _run(self, model: Classifier, x: Tensor, y: Tensor | None) -> Classifier:
        labels = torch.as_tensor(model.predict(x))
        student = self._fresh(model)
        self._fine_tune(student, x, labels)
        return student
