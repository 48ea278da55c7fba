"""The label-only attack: members keep their label under small changes
(Choquette-Choo, Tramèr, Carlini & Papernot, "Label-Only Membership Inference Attacks",
ICML 2021)."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import torch
from torch import Tensor

from advml import registry
from advml.imaging import random_shift
from advml.models.base import Classifier
from advml.privacy.membership._threshold import Calibration, ThresholdAttack, threshold_doc
from advml.privacy.membership.base import ShadowArchitecture, predicted_labels
from advml.runtime.seeding import make_generator
from advml.validation import check_choice, check_number

__all__ = ["LabelOnly"]

Perturbation = Literal["noise", "shift"]


@registry.register("membership", "label_only")
class LabelOnly(ThresholdAttack):
    __doc__ = threshold_doc(
        """Member when the predicted label survives perturbations (Choquette-Choo et al. 2021).

    A model fits its training points with a margin, so their label is robust to small
    changes. Score: the fraction of ``n_perturbations`` perturbed copies of the record,
    plus the record itself, that the target labels ``y`` (§4: data augmentation and
    random noise as the perturbations). Needs only labels: it works on a label-only API,
    at ``n_perturbations + 1`` queries per record.""",
        """n_perturbations : int
        Perturbed copies queried per record (>= 1); default 30.
    perturbation : {"noise", "shift"}
        Gaussian noise, or (images only) random translations of up to ``max_shift``
        pixels with edge padding.
    noise : float
        Standard deviation of the noise as a fraction of the bounds' range; default 0.1.
    max_shift : int
        Largest translation in pixels for ``perturbation="shift"`` (>= 1); default 1.""",
    )

    needs_scores: ClassVar[bool] = False

    def __init__(
        self,
        *,
        n_perturbations: int = 30,
        perturbation: Perturbation = "noise",
        noise: float = 0.1,
        max_shift: int = 1,
        calibration: Calibration = "shadow",
        population_fpr: float = 0.05,
        shadow_architecture: ShadowArchitecture = "same",
        shadow_epochs: int = 30,
        shadow_lr: float = 1e-3,
        shadow_batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        check_number("n_perturbations", n_perturbations, low=1, integer=True)
        check_choice("perturbation", perturbation, ("noise", "shift"))
        check_number("noise", noise, low=0, low_inclusive=False)
        check_number("max_shift", max_shift, low=1, integer=True)
        self.n_perturbations = n_perturbations
        self.perturbation = perturbation
        self.noise = noise
        self.max_shift = max_shift
        super().__init__(
            calibration=calibration,
            population_fpr=population_fpr,
            shadow_architecture=shadow_architecture,
            shadow_epochs=shadow_epochs,
            shadow_lr=shadow_lr,
            shadow_batch_size=shadow_batch_size,
            seed=seed,
        )

    def record_scores(self, model: Classifier, x: Tensor, y: Tensor) -> np.ndarray:
        if self.perturbation == "shift" and len(model.input_shape) != 3:
            raise ValueError(
                f"perturbation='shift' needs image inputs (C, H, W); the model takes "
                f"{model.input_shape}. Use perturbation='noise'"
            )
        gen = make_generator(self.seed, x.device)
        hits = (predicted_labels(model, x) == y).double()
        low, high = model.bounds
        for _ in range(self.n_perturbations):
            if self.perturbation == "noise":
                z = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
                xp = (x + z * self.noise * (high - low)).clamp(low, high)
            else:
                xp = random_shift(x, self.max_shift, gen)
            hits += (predicted_labels(model, xp) == y).double()
        return (hits / (self.n_perturbations + 1)).cpu().numpy()
