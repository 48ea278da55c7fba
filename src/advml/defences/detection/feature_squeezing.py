"""Feature-squeezing detection (Xu, Evans & Qi, NDSS 2018)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from advml import registry
from advml.defences.detection.base import Detector, check_fpr
from advml.errors import UnsupportedModelError
from advml.imaging import median_filter, reduce_bit_depth
from advml.models.base import Classifier
from advml.validation import check_number

__all__ = ["FeatureSqueezingDetector"]


@registry.register("detection", "feature_squeezing")
class FeatureSqueezingDetector(Detector):
    """Flag inputs whose prediction moves when the input is squeezed.

    A clean input is classified about the same before and after squeezing; an
    adversarial perturbation, tuned to the unsqueezed model, mostly is not. The score is
    ``max_i ||p(x) - p(squeeze_i(x))||_1`` over the squeezers (Xu et al. 2018, §4,
    "joint detection"); the threshold is set on clean data for the false-positive rate
    ``fpr`` (Xu et al. use 5%).

    Parameters
    ----------
    bit_depth : int, optional
        Bit-depth squeezer (1 to 16 bits; Xu et al. use 1 on MNIST); ``None`` for none.
    median_size : int, optional
        Median-smoothing squeezer's window (>= 2 pixels; 2 on MNIST), applied to images
        only; ``None`` for none.
    fpr : float
        False-positive rate on clean data the threshold is chosen for (0 < fpr < 1).
    batch_size : int
        Inputs per forward pass.

    Examples
    --------
    >>> from advml.defences.detection import FeatureSqueezingDetector
    >>> det = FeatureSqueezingDetector(fpr=0.05).fit(model, x_val)  # doctest: +SKIP
    >>> det.detect(model, x_adv).detection_rate  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        bit_depth: int | None = 1,
        median_size: int | None = 2,
        fpr: float = 0.05,
        batch_size: int = 256,
    ) -> None:
        if bit_depth is not None:
            check_number("bit_depth", bit_depth, low=1, high=16, integer=True)
        if median_size is not None:
            check_number("median_size", median_size, low=2, integer=True)
        if bit_depth is None and median_size is None:
            raise ValueError("bit_depth and median_size are both None: give at least one squeezer")
        check_fpr(fpr)
        check_number("batch_size", batch_size, low=1, integer=True)
        self.bit_depth = bit_depth
        self.median_size = median_size
        self.fpr = fpr
        self.batch_size = batch_size

    def score(self, model: Classifier, x: np.ndarray | Tensor) -> np.ndarray:
        """``max_i ||p(x) - p(squeeze_i(x))||_1`` for each input, shape (n,)."""
        if not model.has_scores:
            raise UnsupportedModelError(
                "feature-squeezing detection compares probabilities; this model answers labels only"
            )
        xt = model.as_tensor(x)
        image = len(model.input_shape) == 3
        parts = []
        with torch.no_grad(), model.evaluating():
            for i in range(0, xt.shape[0], int(self.batch_size)):
                xb = xt[i : i + int(self.batch_size)]
                p = torch.softmax(model.logits(xb), dim=1)
                best = torch.zeros(xb.shape[0], device=xb.device)
                for squeezed in self._squeeze(xb, model.bounds, image):
                    q = torch.softmax(model.logits(squeezed), dim=1)
                    best = torch.maximum(best, (p - q).abs().sum(1))
                parts.append(best)
        return torch.cat(parts).cpu().numpy()

    def _squeeze(self, x: Tensor, bounds: tuple[float, float], image: bool) -> list[Tensor]:
        out = []
        if self.bit_depth is not None:
            out.append(reduce_bit_depth(x, int(self.bit_depth), bounds))
        if self.median_size is not None and image:
            out.append(median_filter(x, int(self.median_size)))
        if not out:
            raise ValueError(
                "median_size applies to images only and bit_depth is None: no squeezer "
                "applies to these inputs; set bit_depth"
            )
        return out
