"""STRIP (Gao et al., "STRIP: A Defence Against Trojan Attacks on Deep Neural Networks",
ACSAC 2019).

At run time, superimpose the incoming input on a number of clean images and look at the
entropy of the model's predictions. A clean input's identity is muddled by the overlay,
so the predictions vary (high entropy); a triggered input stays with the backdoor target
whatever it is mixed with (low entropy). Entropy per overlay is Shannon's
``-sum_k p_k log2 p_k`` averaged over the overlays (§IV, eq. 1-3); the threshold is the
entropy quantile of clean inputs at the chosen false-rejection rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from advml import registry
from advml.defences.backdoor.base import BackdoorDefence, as_numpy
from advml.models.base import Classifier
from advml.validation import check_choice, check_number

__all__ = ["STRIP", "STRIPDetector", "STRIPResult"]

Blend = Literal["add", "average"]


@dataclass(frozen=True)
class STRIPResult:
    entropy: np.ndarray
    """Mean prediction entropy (bits) over the overlays, per input."""
    flagged: np.ndarray
    """True where the entropy is below the threshold: the input is likely triggered."""

    @property
    def detection_rate(self) -> float:
        return float(self.flagged.mean()) if self.flagged.size else 0.0


@dataclass(frozen=True)
class STRIPDetector:
    """A STRIP detector calibrated on clean inputs; :meth:`detect` screens new inputs."""

    model: Classifier
    overlays: np.ndarray
    """The clean images superimposed on every input."""
    threshold: float
    """Entropy below which an input is flagged."""
    clean_entropy: np.ndarray
    """Entropies of the held-out clean calibration inputs (their ``frr`` quantile is the
    threshold)."""
    frr: float
    n_overlays: int
    blend: Blend
    seed: int

    def entropy(self, x: np.ndarray | Tensor) -> np.ndarray:
        """Mean prediction entropy over ``n_overlays`` superimpositions, per input."""
        return strip_entropy(
            self.model, as_numpy(x), self.overlays, self.n_overlays, self.blend, self.seed
        )

    def detect(self, x: np.ndarray | Tensor) -> STRIPResult:
        """Flag inputs of ``x`` whose entropy is below the threshold."""
        ent = self.entropy(x)
        return STRIPResult(entropy=ent, flagged=ent < self.threshold)

    def summary(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "frr": self.frr, "n_overlays": self.n_overlays}


def strip_entropy(
    model: Classifier, x: np.ndarray, overlays: np.ndarray, n_overlays: int, blend: Blend, seed: int
) -> np.ndarray:
    low, high = model.bounds
    gen = torch.Generator().manual_seed(seed)
    xt = model.as_tensor(x, name="x")
    pool = torch.as_tensor(overlays, device=model.device)
    out = []
    chunk = max(1, 4096 // n_overlays)
    with torch.no_grad(), model.evaluating():
        for i in range(0, xt.shape[0], chunk):
            xb = xt[i : i + chunk]
            pick = torch.randint(0, pool.shape[0], (xb.shape[0], n_overlays), generator=gen).to(
                model.device
            )
            over = pool[pick]  # (b, N, *shape)
            if blend == "add":
                # Gao et al. add the two images and saturate (cv2.addWeighted(1, 1)).
                mixed = (xb[:, None] + (over - low)).clamp(low, high)
            else:
                mixed = 0.5 * xb[:, None] + 0.5 * over
            logits = model.logits(mixed.reshape(-1, *xb.shape[1:]))
            logp = torch.log_softmax(logits.float(), dim=1)
            ent = -(logp.exp() * logp).sum(1) / np.log(2.0)
            out.append(ent.reshape(xb.shape[0], n_overlays).mean(1))
    return torch.cat(out).cpu().numpy()


@registry.register("backdoor_defence", "strip")
class STRIP(BackdoorDefence):
    """Run-time trigger detection by the entropy of predictions on superimposed inputs.

    Uses clean inputs only (no labels): half of them are the overlay images, the other
    half calibrate the entropy threshold at the chosen false-rejection rate.

    Parameters
    ----------
    n_overlays : int
        Clean images superimposed on each input (Gao et al.: 100; 20-50 is usually
        enough for a stable mean).
    frr : float
        False-rejection rate on clean inputs that sets the threshold, in (0, 0.5].
    blend : {"add", "average"}
        Add the overlay and saturate at the bounds (Gao et al.'s superimposition), or
        average the two images.
    seed : int
        Seed of the split and of the overlay choice.
    """

    uses = "clean inputs (no labels): overlay images and threshold calibration"

    def __init__(
        self,
        *,
        n_overlays: int = 32,
        frr: float = 0.01,
        blend: Blend = "add",
        seed: int = 0,
    ) -> None:
        check_number("n_overlays", n_overlays, low=1, integer=True)
        check_number("frr", frr, low=0, high=0.5, low_inclusive=False)
        check_choice("blend", blend, ("add", "average"))
        check_number("seed", seed, low=0, integer=True)
        self.n_overlays = n_overlays
        self.frr = frr
        self.blend = blend
        self.seed = seed

    def run(
        self, model: Classifier, x: np.ndarray | Tensor, y: np.ndarray | Tensor | None = None
    ) -> STRIPDetector:
        return self.fit(model, x)

    def fit(self, model: Classifier, x_clean: np.ndarray | Tensor) -> STRIPDetector:
        """Calibrate on clean inputs ``x_clean`` (at least 4)."""
        if not isinstance(model, Classifier) or not model.has_scores:
            raise TypeError("STRIP needs a model that returns scores (an advml Classifier)")
        x_np = as_numpy(x_clean).astype(np.float32, copy=False)
        model.as_tensor(x_np[:1], name="x_clean")
        if len(x_np) < 4:
            raise ValueError(f"x_clean needs at least 4 clean inputs, got {len(x_np)}")
        perm = np.random.default_rng(self.seed).permutation(len(x_np))
        half = len(x_np) // 2
        overlays, calib = x_np[perm[:half]], x_np[perm[half:]]
        ent = strip_entropy(model, calib, overlays, int(self.n_overlays), self.blend, self.seed + 1)
        threshold = float(np.quantile(ent, self.frr))
        return STRIPDetector(
            model=model,
            overlays=overlays.copy(),
            threshold=threshold,
            clean_entropy=ent,
            frr=float(self.frr),
            n_overlays=int(self.n_overlays),
            blend=self.blend,
            seed=int(self.seed) + 2,
        )
