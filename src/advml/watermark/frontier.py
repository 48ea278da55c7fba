"""Adversarial-frontier stitching (Le Merrer, Pérez & Trédan, Neural Comput. Appl. 2020)."""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from advml import registry
from advml.models.base import Classifier
from advml.models.torch import TorchClassifier
from advml.validation import check_number
from advml.watermark.base import TRIGGER_SET_PARAMETERS, TriggerSetScheme
from advml.watermark.key import WatermarkKey, derive_rng
from advml.watermark.verify import DEFAULT_ALPHA, Verification

__all__ = ["EPS_GRID", "Frontier"]

EPS_GRID = (0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3)
"""Candidate FGSM sizes, as fractions of the bounds' width, when ``eps`` is not given."""


@registry.register("watermark", "frontier")
class Frontier(TriggerSetScheme):
    """Adversarial examples near the decision boundary, stitched back to their labels.

    Le Merrer et al. (2020, §3, Algorithm 1) perturb correctly classified inputs with the
    fast gradient sign method: *true adversaries* (the owner's model now misclassifies
    them) and *false adversaries* (perturbed the same way but still classified
    correctly), half of each. Fine-tuning on the training data mixed with this key, all
    labelled with their original class, moves the boundary so that every key input is
    classified correctly: the key "stitches" the frontier. Verification queries the key
    through the API only (one query per key input) and counts correct labels.

    Null: the paper takes every key input as a fair coin for a model not derived from the
    owner's (``p0 = 1/2``). Independent models trained on the same data label most false
    adversaries correctly, and the true ones as often as adversarial examples fail to
    transfer, so they can match far more than half: **calibrate the key** with
    :func:`~advml.watermark.calibrate` on a few independently trained models, which
    makes the decision use the larger of the two chance probabilities.

    Parameters
    ----------
    n_triggers : int
        Size of the key (even, half true and half false adversaries); default 100.
    eps : float, optional
        L∞ size of the FGSM perturbation (> 0, in input units). Default: chosen from
        the key's candidates, the value of ``EPS_GRID`` (times the bounds' width) at
        which FGSM fools the owner's model on the fraction closest to ``fooled``.
    fooled : float
        Target fraction of fooled candidates when ``eps`` is chosen, in (0, 1);
        default 0.5. Larger values pick larger perturbations, whose true adversaries
        transfer more often to independent models (fewer chance matches).
    candidates : int
        Training inputs perturbed to find the key's adversaries; default 2000.
    """

    __doc__ = (__doc__ or "") + TRIGGER_SET_PARAMETERS

    def __init__(
        self,
        *,
        n_triggers: int = 100,
        eps: float | None = None,
        fooled: float = 0.5,
        candidates: int = 2000,
        trigger_batch: int = 64,
        epochs: int = 15,
        lr: float = 1e-3,
        batch_size: int = 64,
        schedule: Literal["constant", "cosine"] = "constant",
    ) -> None:
        super().__init__(
            n_triggers=n_triggers,
            trigger_batch=trigger_batch,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            schedule=schedule,
        )
        if n_triggers % 2:
            raise ValueError(
                f"n_triggers must be even (half true, half false adversaries), got {n_triggers}"
            )
        if eps is not None:
            check_number("eps", eps, low=0, low_inclusive=False)
        check_number("fooled", fooled, low=0, high=1, low_inclusive=False, high_inclusive=False)
        check_number("candidates", candidates, low=2, integer=True)
        self.eps = eps
        self.fooled = fooled
        self.candidates = candidates

    def _make_key(self, model: TorchClassifier, x: Tensor, y: Tensor, secret: str) -> WatermarkKey:
        rng = derive_rng(secret, "frontier:candidates")
        pool = rng.permutation(x.shape[0])[: self.candidates]
        xc, yc = x[pool], y[pool]
        with torch.no_grad(), model.evaluating():
            correct = (model.forward(xc).argmax(1) == yc).cpu().numpy()
        xc, yc = xc[correct], yc[correct]
        eps, result = self._adversaries(model, xc, yc)
        adv = torch.as_tensor(result.x_adv).cpu().numpy()
        fooled = np.asarray(result.success, dtype=bool)
        half = self.n_triggers // 2
        true_idx, false_idx = np.flatnonzero(fooled), np.flatnonzero(~fooled)
        if true_idx.size < half or false_idx.size < half:
            raise ValueError(
                f"FGSM with eps={eps:g} fooled the model on {true_idx.size} and missed on "
                f"{false_idx.size} of {fooled.size} candidates; the key needs {half} of each. "
                f"{'Raise' if true_idx.size < half else 'Lower'} eps, or raise candidates"
            )
        chosen = np.concatenate([true_idx[:half], false_idx[:half]])
        kind = np.concatenate([np.ones(half), np.zeros(half)]).astype(np.int64)
        order = derive_rng(secret, "frontier:order").permutation(chosen.size)
        chosen, kind = chosen[order], kind[order]
        model.reset_queries()
        arrays = {
            "x": adv[chosen].astype(np.float32),
            "labels": yc[chosen].cpu().numpy().astype(np.int64),
            "true_adversary": kind,
        }
        return self._key(model, secret, arrays, null_rate=0.5, eps=eps)

    def _adversaries(self, model: TorchClassifier, x: Tensor, y: Tensor) -> tuple[float, Any]:
        """FGSM examples of ``x`` at the given eps, or at the grid's best one."""
        if self.eps is not None:
            fgsm = registry.create("evasion", "fgsm", eps=float(self.eps))
            return float(self.eps), fgsm.generate(model, x, y)
        width = model.bounds[1] - model.bounds[0]
        best: tuple[float, float, Any] | None = None
        for step in EPS_GRID:
            eps = step * width
            fgsm = registry.create("evasion", "fgsm", eps=eps)
            result = fgsm.generate(model, x, y)
            gap = abs(float(np.mean(result.success)) - self.fooled)
            if best is None or gap < best[0]:
                best = (gap, eps, result)
        assert best is not None
        return best[1], best[2]

    def verify(
        self, model: Classifier, key: WatermarkKey, *, alpha: float = DEFAULT_ALPHA
    ) -> Verification:
        if not key.calibrated:
            warnings.warn(
                "this frontier-stitching key is not calibrated: its chance probability "
                "assumes a fair coin per key input, which independent models beat; "
                "calibrate it with advml.watermark.calibrate(key, reference_models)",
                UserWarning,
                stacklevel=2,
            )
        return super().verify(model, key, alpha=alpha)
