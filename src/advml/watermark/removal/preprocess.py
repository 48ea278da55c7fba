"""Input-preprocessing removal: the model is left as it is, its inputs are transformed.

The transformations are the input-cleansing operations of :mod:`advml.imaging` (the
same median filter, noise and bit-depth reduction as the defences of
:mod:`advml.defences.preprocess`), applied in front of the stolen model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from advml import registry
from advml.errors import UnsupportedModelError
from advml.imaging import add_gaussian_noise, median_filter, reduce_bit_depth
from advml.models.base import Classifier
from advml.models.callable import CallableClassifier
from advml.validation import check_choice, check_number
from advml.watermark._images import is_image
from advml.watermark.removal.base import RemovalAttack

__all__ = ["Preprocess"]


@registry.register("watermark_removal", "preprocess")
class Preprocess(RemovalAttack):
    """Transform every input before the model sees it (the model is left as it is).

    The result is a black-box model (a ``CallableClassifier``) that applies the
    transform and then asks the attacked model; white-box verification reads the
    weights, which this attack does not change.

    Parameters
    ----------
    kind : {"median", "noise", "squeeze"}
        Median filter over ``size`` x ``size`` pixels (images only), Gaussian noise of
        standard deviation ``std`` (fraction of the bounds' width), or bit-depth
        reduction to ``bits`` bits; default "median".
    size : int
        Odd median window; default 3.
    std : float
        Noise standard deviation relative to the bounds' width (> 0); default 0.1.
    bits : int
        Bit depth kept by "squeeze", 1 to 8; default 3.
    seed : int
        Seeds the noise; default 0.
    """

    needs_labels = False
    needs_white_box = False

    def __init__(
        self,
        *,
        kind: Literal["median", "noise", "squeeze"] = "median",
        size: int = 3,
        std: float = 0.1,
        bits: int = 3,
        seed: int = 0,
    ) -> None:
        check_choice("kind", kind, ("median", "noise", "squeeze"))
        check_number("size", size, low=1, integer=True)
        if int(size) % 2 == 0:
            raise ValueError(f"size must be odd, got {size}")
        check_number("std", std, low=0, low_inclusive=False)
        check_number("bits", bits, low=1, high=8, integer=True)
        check_number("seed", seed, low=0, integer=True)
        self.kind = kind
        self.size = size
        self.std = std
        self.bits = bits
        self.seed = seed

    def _run(self, model: Classifier, x: Tensor, y: Tensor | None) -> Classifier:
        if self.kind == "median" and not is_image(model.input_shape):
            raise UnsupportedModelError(
                f"a median filter needs image inputs; this model takes {model.input_shape}. "
                f"Use kind='noise' or 'squeeze'"
            )
        generator = torch.Generator(device=model.device).manual_seed(self.seed)
        transform = self._transform(*model.bounds, generator)
        scores = model.has_scores

        def answer(batch: Tensor) -> Tensor:
            with torch.no_grad(), model.evaluating():
                cleaned = transform(batch.to(model.device))
                return model.logits(cleaned) if scores else model.predict_labels(cleaned)

        return CallableClassifier(
            answer,
            input_shape=model.input_shape,
            n_classes=model.n_classes,
            bounds=model.bounds,
            returns="logits" if scores else "labels",
            accepts="torch",
            device=model.device,
        )

    def _transform(
        self, low: float, high: float, generator: torch.Generator
    ) -> Callable[[Tensor], Tensor]:
        bounds = (low, high)
        if self.kind == "noise":
            # One generator for the wrapper's life: each query draws fresh noise.
            return lambda x: add_gaussian_noise(x, float(self.std), bounds, generator)
        if self.kind == "squeeze":
            return lambda x: reduce_bit_depth(x, int(self.bits), bounds)
        return lambda x: median_filter(x, int(self.size))
