"""advml's reference networks for a dataset, and the recipe they are trained with.

The audit trains one (once, then reads it back) when the user brings no model; the CLI
commands, the web demo and the audit sections that train copies (poisoned, watermarked,
shadow models) use the same architectures and recipe, so they all live here in the
model seam rather than in the audit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from advml.data import Dataset, advml_home
from advml.models.architectures import build as build_architecture
from advml.models.io import load_model, save_model
from advml.models.torch import TorchClassifier
from advml.models.training import History, TrainingRecipe, train
from advml.validation import check_choice

__all__ = [
    "TRAINING",
    "ReferenceRecipe",
    "default_architecture",
    "reference_model",
    "train_reference",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReferenceRecipe:
    """How a reference architecture is built and trained (by :func:`train`)."""

    epochs: int
    batch_size: int
    lr: float
    patience: int
    arch_kwargs: dict[str, Any]

    def training(self, epochs: int | None = None) -> TrainingRecipe:
        """The :class:`TrainingRecipe` of this reference (``epochs`` overrides its maximum)."""
        return TrainingRecipe(
            epochs=epochs if epochs is not None else self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            patience=self.patience,
        )


TRAINING: dict[str, ReferenceRecipe] = {
    "cnn": ReferenceRecipe(epochs=15, batch_size=64, lr=1e-3, patience=3, arch_kwargs={}),
    "mlp": ReferenceRecipe(epochs=60, batch_size=64, lr=1e-3, patience=5, arch_kwargs={}),
}


def default_architecture(dataset: Dataset) -> str:
    """``cnn`` for images of at least 16x16 pixels, else ``mlp``."""
    if dataset.is_image and min(dataset.input_shape[1:]) >= 16:
        return "cnn"
    return "mlp"


def reference_model(
    dataset: Dataset,
    *,
    architecture: str | None = None,
    seed: int = 0,
    cache_dir: Path | None = None,
    show_progress: bool = True,
) -> tuple[TorchClassifier, dict[str, Any]]:
    """A reference network for ``dataset``, trained with the shared loop or loaded.

    The trained weights are kept under ``$ADVML_HOME/models`` (or ``cache_dir``) and
    reused by later audits with the same dataset, architecture and seed.

    Returns
    -------
    (TorchClassifier, dict)
        The model and a description: architecture, file, whether it was trained now,
        and the training history when it was.
    """
    arch = architecture or default_architecture(dataset)
    folder = cache_dir if cache_dir is not None else advml_home() / "models"
    path = folder / f"reference-{_cache_name(dataset)}-{arch}-seed{seed}.pt"
    info: dict[str, Any] = {"architecture": arch, "file": str(path), "seed": seed}
    if path.exists():
        try:
            model = load_model(path)
        except (ValueError, OSError) as err:
            log.warning("ignoring unreadable cached reference model %s: %s", path, err)
        else:
            if (
                isinstance(model, TorchClassifier)
                and model.input_shape == dataset.input_shape
                and model.n_classes == dataset.n_classes
            ):
                info["trained_now"] = False
                return model, info
    model, history = _train(
        dataset,
        dataset.x_train,
        dataset.y_train,
        architecture=arch,
        seed=seed,
        epochs=None,
        show_progress=show_progress,
        desc=f"training reference {arch} on {dataset.name}",
    )
    folder.mkdir(parents=True, exist_ok=True)
    save_model(model, path)
    info.update(
        trained_now=True,
        epochs_run=history.epochs_run,
        best_epoch=history.best_epoch,
        val_accuracy=history.val_accuracy[history.best_epoch - 1] if history.val_accuracy else None,
        training_seconds=round(history.seconds, 2),
    )
    return model, info


def _standardisation(dataset: Dataset, x: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-feature mean and standard deviation of ``x`` for a table in its raw units
    (features with their own ranges), else None.

    A network trained on raw features whose scales differ by orders of magnitude (the
    wine table: proline ~1,000, hue ~1) learns little: the reference MLP reached 66.7 %
    on raw wine. Standardising inside the model (``TorchClassifier``'s preprocessing)
    keeps the inputs, bounds and attack budgets in the table's own units. Images and
    tables already scaled to one range keep the recipe they had."""
    if dataset.feature_bounds is None or dataset.is_image:
        return None
    flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    mean = flat.mean(axis=0)
    std = flat.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)  # a constant feature: centred, not scaled
    shape = dataset.input_shape
    return mean.reshape(shape).astype(np.float32), std.reshape(shape).astype(np.float32)


def _cache_name(dataset: Dataset) -> str:
    """The dataset's part of a cached reference model's file name: its name and a hash of
    its training split, bounds and class names. A name alone is not enough: the user's
    table or image folder is named by its file (two different ``data.csv``, or a folder
    called ``digits``, share a name) and ``--limit`` keeps the name of the data it
    samples; a model trained on other data must never be read back."""
    from advml.runtime.cache import fingerprint

    fb = dataset.feature_bounds
    content: list[Any] = [dataset.x_train, dataset.y_train, list(dataset.bounds)]
    content.append(list(dataset.class_names))
    if fb is not None:
        # "standardised": the recipe of raw tables changed (models cached before it
        # trained on unscaled features and are not read back).
        content += [fb[0], fb[1], "standardised"]
    return f"{dataset.name}-{fingerprint(content)[:12]}"


def train_reference(
    dataset: Dataset,
    x: np.ndarray,
    y: np.ndarray,
    *,
    architecture: str,
    seed: int = 0,
    epochs: int | None = None,
    show_progress: bool = True,
    desc: str = "training",
    device: torch.device | str | None = None,
) -> TorchClassifier:
    """A fresh reference network trained on ``x, y`` with the reference recipe.

    For sections that need a copy of the audited model trained on other data (a
    poisoned training set, a watermark, shadow models). ``dataset`` gives the input
    shape, classes and bounds; ``epochs`` overrides the recipe's maximum; ``device``
    (default the CPU) is where the network is trained.
    """
    check_choice("architecture", architecture, tuple(TRAINING))
    model, _ = _train(
        dataset,
        x,
        y,
        architecture=architecture,
        seed=seed,
        epochs=epochs,
        show_progress=show_progress,
        desc=desc,
        device=device,
    )
    return model


def _train(
    dataset: Dataset,
    x: np.ndarray,
    y: np.ndarray,
    *,
    architecture: str,
    seed: int,
    epochs: int | None,
    show_progress: bool,
    desc: str,
    device: torch.device | str | None = None,
) -> tuple[TorchClassifier, History]:
    recipe = TRAINING[architecture]
    # Seed the initial weights too, not just the training loop.
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        module = build_architecture(
            architecture,
            input_shape=dataset.input_shape,
            n_classes=dataset.n_classes,
            **recipe.arch_kwargs,
        )
    model = TorchClassifier(
        module,
        input_shape=dataset.input_shape,
        n_classes=dataset.n_classes,
        bounds=dataset.model_bounds,
        preprocessing=_standardisation(dataset, x),
        device=device,
    )
    history = train(
        model,
        x,
        y,
        recipe=recipe.training(epochs),
        seed=seed,
        show_progress=show_progress,
        desc=desc,
    )
    return model, history
