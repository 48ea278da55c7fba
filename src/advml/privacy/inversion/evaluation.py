"""How recognisable are reconstructions? An independent judge and image similarity.

Fredrikson et al. (CCS 2015, §5.3) asked people to pick the reconstructed person out of
a line-up. Here an **evaluation classifier** trained independently of the target (other
data, other architecture) stands in for the people: the share of reconstructions it
assigns to their class is the attack's recognition rate. Beside it, SSIM (Wang, Bovik,
Sheikh & Simoncelli, IEEE TIP 2004, eq. 13) and MSE compare each reconstruction with the
mean of its class's real samples and with those samples one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from advml.errors import QueryBudgetExceededError
from advml.models.base import Classifier, check_classifier
from advml.privacy.inversion.base import InversionAttack, InversionResult
from advml.validation import check_labels

__all__ = [
    "InversionEvaluation",
    "JudgedInversion",
    "evaluate_inversion",
    "invert_and_judge",
    "ssim",
]


def _gaussian_window(size: int, sigma: float) -> Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(a: np.ndarray | Tensor, b: np.ndarray | Tensor, *, data_range: float = 1.0) -> np.ndarray:
    """Structural similarity of image pairs ``a[i]`` and ``b[i]``, shape ``(n, C, H, W)``.

    Wang et al. 2004's SSIM with a Gaussian window (sigma 1.5, 11x11, or the image size
    if smaller, kept odd), ``K1 = 0.01``, ``K2 = 0.03``, averaged over windows and
    channels. Returns ``(n,)`` values in [-1, 1]; 1 means identical.
    """
    ta = torch.as_tensor(np.asarray(a) if not isinstance(a, Tensor) else a).double().cpu()
    tb = torch.as_tensor(np.asarray(b) if not isinstance(b, Tensor) else b).double().cpu()
    if ta.shape != tb.shape or ta.ndim != 4:
        raise ValueError(
            f"a and b must be image batches of one shape (n, C, H, W); got "
            f"{tuple(ta.shape)} and {tuple(tb.shape)}"
        )
    n, c, h, w = ta.shape
    size = min(11, h, w)
    size -= 1 - size % 2
    window = _gaussian_window(size, 1.5).to(ta.dtype)
    x = ta.reshape(n * c, 1, h, w)
    y = tb.reshape(n * c, 1, h, w)
    mu_x, mu_y = F.conv2d(x, window), F.conv2d(y, window)
    var_x = F.conv2d(x * x, window) - mu_x**2
    var_y = F.conv2d(y * y, window) - mu_y**2
    cov = F.conv2d(x * y, window) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    numerator = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    s = numerator / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.reshape(n, -1).mean(1).numpy()


@dataclass(frozen=True)
class InversionEvaluation:
    """Recognition rate and similarity of reconstructions to their classes."""

    recognition_rate: float
    """Share of reconstructions the evaluation classifier assigns to their class."""
    predicted: np.ndarray
    """``(k,)`` the evaluation classifier's label for each reconstruction."""
    evaluator_confidence: np.ndarray
    """``(k,)`` its probability of the reconstructed class (NaN for a label-only judge)."""
    ssim_to_mean: np.ndarray
    """``(k,)`` SSIM between each reconstruction and its class's mean image."""
    mse_to_mean: np.ndarray
    """``(k,)`` mean squared error to the class mean."""
    ssim_to_samples: np.ndarray
    """``(k,)`` mean SSIM to the class's real samples."""
    class_means: np.ndarray = field(repr=False)
    """``(k, *input_shape)`` the class mean images (for pictures beside the reconstructions)."""

    def summary(self) -> dict[str, Any]:
        """Plain numbers for reports."""
        return {
            "recognition_rate": self.recognition_rate,
            "mean_ssim_to_class_mean": float(self.ssim_to_mean.mean()),
            "mean_mse_to_class_mean": float(self.mse_to_mean.mean()),
            "mean_ssim_to_class_samples": float(self.ssim_to_samples.mean()),
        }


def evaluate_inversion(
    result: InversionResult,
    evaluator: Classifier,
    x_real: np.ndarray | Tensor,
    y_real: np.ndarray | Tensor,
) -> InversionEvaluation:
    """Judge reconstructions with an independent classifier and compare them with real data.

    Parameters
    ----------
    result : InversionResult
        The reconstructions.
    evaluator : Classifier
        A classifier trained independently of the target (other data, ideally another
        architecture); its labels stand in for a person recognising the class.
    x_real, y_real : arrays
        Real samples of the classes (e.g. the test split) and their labels; every
        reconstructed class needs at least one.

    Returns
    -------
    InversionEvaluation
    """
    if not isinstance(result, InversionResult):
        raise TypeError(f"result must be an InversionResult, got {type(result).__name__}")
    check_classifier("evaluator", evaluator)
    x = np.asarray(x_real.detach().cpu() if isinstance(x_real, Tensor) else x_real, np.float64)
    y = np.asarray(y_real.detach().cpu() if isinstance(y_real, Tensor) else y_real)
    check_labels("y_real", y, evaluator.n_classes, x.shape[0])
    if x.shape[1:] != result.images.shape[1:]:
        raise ValueError(
            f"x_real must hold inputs of shape {result.images.shape[1:]}, got {x.shape[1:]}"
        )
    missing = sorted(set(result.classes.tolist()) - set(y.tolist()))
    if missing:
        raise ValueError(f"y_real has no sample of class(es) {missing}; give real data of each")
    images = result.images
    predicted = np.asarray(evaluator.predict(images))
    if evaluator.has_scores:
        proba = np.asarray(evaluator.predict_proba(images))
        conf = proba[np.arange(len(images)), result.classes]
    else:
        conf = np.full(len(images), np.nan)
    means = np.stack([x[y == c].mean(0) for c in result.classes]).astype(np.float32)
    low, high = evaluator.bounds
    is_image = images.ndim == 4
    ssim_mean = (
        ssim(images, means, data_range=high - low) if is_image else np.full(len(images), np.nan)
    )
    mse = ((images.astype(np.float64) - means) ** 2).reshape(len(images), -1).mean(1)
    to_samples = np.full(len(images), np.nan)
    if is_image:
        for i, c in enumerate(result.classes):
            real = x[y == c]
            to_samples[i] = ssim(
                np.repeat(images[i : i + 1], len(real), 0), real, data_range=high - low
            ).mean()
    return InversionEvaluation(
        recognition_rate=float((predicted == result.classes).mean()),
        predicted=predicted,
        evaluator_confidence=conf,
        ssim_to_mean=ssim_mean,
        mse_to_mean=mse,
        ssim_to_samples=to_samples,
        class_means=means,
    )


@dataclass(frozen=True)
class JudgedInversion:
    """Reconstructions and their judgement, with the per-class table reports print."""

    result: InversionResult
    evaluation: InversionEvaluation

    def per_class(self) -> list[dict[str, Any]]:
        """One row per reconstructed class: its judged label, the target's confidence,
        SSIM (None for non-images) and MSE to the class mean."""
        r, e = self.result, self.evaluation
        return [
            {
                "class": int(c),
                "judged_as": int(p),
                "confidence": float(conf),
                "ssim_to_mean": None if np.isnan(s) else float(s),
                "mse_to_mean": float(m),
            }
            for c, p, conf, s, m in zip(
                r.classes, e.predicted, r.confidence, e.ssim_to_mean, e.mse_to_mean, strict=True
            )
        ]

    def summary(self) -> dict[str, Any]:
        """Plain numbers: the attack's and the judgement's summaries, and per class."""
        return {
            "inversion": self.result.summary(),
            "evaluation": self.evaluation.summary(),
            "per_class": self.per_class(),
        }


def invert_and_judge(
    attack: InversionAttack,
    model: Classifier,
    classes: np.ndarray | Sequence[int],
    *,
    x_judge: np.ndarray,
    y_judge: np.ndarray,
    x_real: np.ndarray,
    y_real: np.ndarray,
    seed: int = 0,
) -> JudgedInversion:
    """Reconstruct ``classes`` from ``model`` and judge them independently.

    The judge is :func:`~advml.privacy.inversion.independent_judge` trained on
    ``(x_judge, y_judge)`` (data the target was not trained on, e.g. the test split);
    the reconstructions are compared with the real samples ``(x_real, y_real)`` by
    :func:`evaluate_inversion`.
    """
    from advml.privacy.inversion.judge import independent_judge

    def judged(result: InversionResult) -> JudgedInversion:
        judge = independent_judge(
            x_judge, y_judge, bounds=model.bounds, input_shape=model.input_shape, seed=seed
        )
        return JudgedInversion(result, evaluate_inversion(result, judge, x_real, y_real))

    try:
        result = attack.invert(model, np.asarray(classes))
    except QueryBudgetExceededError as err:
        if err.partial_result is None:
            raise
        # The query budget ran out: the reconstructions it paid for are judged all the same.
        raise QueryBudgetExceededError(
            str(err), partial_result=judged(err.partial_result)
        ) from None
    return judged(result)
