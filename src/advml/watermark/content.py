"""Content trigger-set watermark (Zhang, Gu, Jang, Wu, Stoecklin, Huang & Molloy, AsiaCCS 2018)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from torch import Tensor

from advml import registry
from advml.models.torch import TorchClassifier
from advml.validation import check_number
from advml.watermark._images import is_image, logo
from advml.watermark.base import TRIGGER_SET_PARAMETERS, TriggerSetScheme

__all__ = ["Content", "pick_sources"]


def pick_sources(
    x: Tensor, y: Tensor, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` training inputs chosen by the key (without replacement while possible)."""
    idx = rng.choice(x.shape[0], size=n, replace=n > x.shape[0])
    return x[idx].cpu().numpy().astype(np.float64), y[idx].cpu().numpy()


@registry.register("watermark", "content")
class Content(TriggerSetScheme):
    """Training images stamped with the owner's logo, relabelled as the key says.

    Zhang et al. (2018, §3.1, "WM_content") add a meaningful mark (the text "TEST") to
    training images and teach the model a label for the marked images. Here the logo is
    a binary pattern drawn from the key, stamped (at full contrast) into a square of
    ``size`` of the image's side at a corner the key picks; for inputs that are not
    images, a key-chosen ``size`` fraction of the features is set to the logo's values.

    Deviation from the paper: the paper gives every trigger one target class; here each
    trigger's label is drawn from the key among the classes other than its source
    class, which makes the binomial null exact (``p0 = 1/(K-1)``) instead of depending
    on how independent models treat marked images.

    Parameters
    ----------
    n_triggers : int
        Number of stamped images; default 50 (100 cost the digits MLP about 2 points of
        accuracy: every trigger is a real image given a wrong label).
    size : float
        Side of the logo as a fraction of the image side (or fraction of the features),
        in (0, 1]; default 0.35.
    """

    __doc__ = (__doc__ or "") + TRIGGER_SET_PARAMETERS

    def __init__(
        self,
        *,
        n_triggers: int = 50,
        size: float = 0.35,
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
        check_number("size", size, low=0, high=1, low_inclusive=False)
        self.size = size

    def _triggers(
        self, model: TorchClassifier, x: Tensor, y: Tensor, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray | None, dict[str, np.ndarray]]:
        xs, source = pick_sources(x, y, self.n_triggers, rng)
        low, high = model.bounds
        if is_image(model.input_shape):
            _, h, w = model.input_shape
            ph, pw = max(2, round(self.size * h)), max(2, round(self.size * w))
            pattern = logo((ph, pw), rng)
            top = 0 if rng.random() < 0.5 else h - ph
            left = 0 if rng.random() < 0.5 else w - pw
            xs[:, :, top : top + ph, left : left + pw] = low + (high - low) * pattern
            mask = np.zeros(model.input_shape)
            mask[:, top : top + ph, left : left + pw] = 1
        else:
            flat = xs.reshape(xs.shape[0], -1)
            d = flat.shape[1]
            chosen = rng.choice(d, size=max(1, round(self.size * d)), replace=False)
            values = low + (high - low) * logo((chosen.size,), rng)
            flat[:, chosen] = values
            xs = flat.reshape(xs.shape)
            mask = np.zeros(d)
            mask[chosen] = 1
            mask = mask.reshape(model.input_shape)
        return xs, source, {"mark": mask.astype(np.float32)}
