"""Reconstruction-error detection with a denoising autoencoder (MagNet's detector)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from torch import Tensor

from advml import registry
from advml.defences.detection.base import Detector, check_fpr, threshold_for_fpr
from advml.defences.preprocess.autoencoder import Autoencoder
from advml.defences.preprocess.base import STRENGTHS, Strength
from advml.models.base import Classifier
from advml.validation import check_choice, check_number

__all__ = ["AutoencoderDetector"]


@registry.register("detection", "autoencoder")
class AutoencoderDetector(Detector):
    """Flag inputs the autoencoder reconstructs badly (Meng & Chen, CCS 2017, §3.2).

    An autoencoder trained on clean data reconstructs clean inputs well and inputs off
    their manifold badly; the score is the reconstruction error ``||x - AE(x)||_p``
    (mean over features). :meth:`fit` trains the autoencoder on most of ``x_clean`` and
    sets the threshold on the held-out rest, so the false-positive rate is not measured
    on the autoencoder's own training data. The model is not used by the score; it is
    passed for the family's common signature and to check shapes and bounds.

    Parameters
    ----------
    strength : {"low", "medium", "high"}
        Training-noise preset of the autoencoder (see
        :class:`~advml.defences.preprocess.Autoencoder`).
    norm : {"1", "2"}
        Mean absolute or mean squared reconstruction error.
    fpr : float
        False-positive rate on held-out clean data the threshold is chosen for.
    val_fraction : float
        Fraction of ``x_clean`` held out to set the threshold (0 < v < 1).
    epochs : int
        Maximum training epochs of the autoencoder.
    seed : int
        Seeds the autoencoder's training and the split.
    """

    def __init__(
        self,
        *,
        strength: Strength = "medium",
        norm: Literal["1", "2"] = "1",
        fpr: float = 0.05,
        val_fraction: float = 0.2,
        epochs: int = 10,
        seed: int = 0,
    ) -> None:
        check_choice("strength", strength, STRENGTHS)
        check_choice("norm", norm, ("1", "2"))
        check_fpr(fpr)
        check_number(
            "val_fraction", val_fraction, low=0, high=1, low_inclusive=False, high_inclusive=False
        )
        check_number("epochs", epochs, low=1, integer=True)
        check_number("seed", seed, low=0, integer=True)
        self.strength = strength
        self.norm = norm
        self.fpr = fpr
        self.val_fraction = val_fraction
        self.epochs = epochs
        self.seed = seed

    def fit(
        self,
        model: Classifier,
        x_clean: np.ndarray | Tensor,
        *,
        autoencoder: Autoencoder | None = None,
        show_progress: bool = False,
    ) -> AutoencoderDetector:
        """Train the autoencoder (unless a fitted one is given) and set the threshold.

        Parameters
        ----------
        model : Classifier
            The protected model (gives the input shape and bounds).
        x_clean : array of shape (n, *model.input_shape)
            Clean inputs; with ``autoencoder`` given they all set the threshold.
        autoencoder : Autoencoder, optional
            An already fitted reformer to reuse as the detector.
        show_progress : bool
            Show the autoencoder's training progress.
        """
        self._check(model, x_clean, "x_clean")
        x = np.asarray(x_clean.detach().cpu() if isinstance(x_clean, Tensor) else x_clean)
        if autoencoder is None:
            n_val = max(1, round(float(self.val_fraction) * len(x)))
            if len(x) - n_val < 2:
                raise ValueError(
                    f"x_clean has {len(x)} inputs: too few to train an autoencoder and hold "
                    f"out {n_val} for the threshold; give more clean data"
                )
            order = np.random.default_rng(int(self.seed)).permutation(len(x))
            x_fit, x_val = x[order[n_val:]], x[order[:n_val]]
            autoencoder = Autoencoder(
                strength=self.strength, epochs=int(self.epochs), seed=int(self.seed)
            ).fit(x_fit, bounds=model.bounds, show_progress=show_progress)
        else:
            if not autoencoder.is_fitted:
                raise ValueError("autoencoder is not fitted: call its fit(x_train) first")
            x_val = x
        self.autoencoder_ = autoencoder
        scores = self.score(model, x_val)
        self.threshold_ = threshold_for_fpr(scores, float(self.fpr))
        self.clean_scores_ = scores
        return self

    def score(self, model: Classifier, x: np.ndarray | Tensor) -> np.ndarray:
        """Reconstruction error of each input, shape (n,)."""
        if not hasattr(self, "autoencoder_"):
            raise RuntimeError("AutoencoderDetector is not fitted: call fit(model, x_clean)")
        return self.autoencoder_.reconstruction_error(x, norm=self.norm, bounds=model.bounds)
