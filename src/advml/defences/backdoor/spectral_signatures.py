"""Spectral signatures (Tran, Li & Madry, "Spectral Signatures in Backdoor Attacks",
NeurIPS 2018).

Within one label, poisoned samples shift the mean of the learned representation in one
direction; that direction dominates the top singular vector of the centred
representations. Each sample's score is its squared projection on that vector
(Algorithm 1); the 1.5 x the expected number of poisoned samples with the highest scores
are removed and the model is retrained on the rest.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from torch import Tensor

from advml import registry
from advml.defences.backdoor.base import (
    BackdoorDefence,
    PoisonDetection,
    features,
    penultimate_layer,
)
from advml.models.base import Classifier
from advml.validation import check_choice, check_number

__all__ = ["SpectralSignatures"]


@registry.register("backdoor_defence", "spectral_signatures")
class SpectralSignatures(BackdoorDefence):
    """Score training samples by their projection on the top singular vector, per class.

    Uses the (possibly poisoned) training inputs and their given labels, and the model
    trained on them. The number removed per class comes from the defender's guess of
    the poisoned share (``expected_fraction``), not from the truth.

    Parameters
    ----------
    layer : str, optional
        Representation layer; default the last hidden layer.
    expected_fraction : float
        The defender's upper estimate of the poisoned share of a class, in (0, 0.5].
    removal_factor : float
        Remove ``removal_factor * expected_fraction * n_class`` samples per class
        (Tran et al. use 1.5), >= 1.
    classes : {"all", "outlier"}
        ``"all"`` removes from every class (as in the paper); ``"outlier"`` only from
        classes whose top singular value stands out (more than 2 MADs above the median).
    """

    uses = "the training inputs and their (possibly poisoned) labels"

    def __init__(
        self,
        *,
        layer: str | None = None,
        expected_fraction: float = 0.1,
        removal_factor: float = 1.5,
        classes: Literal["all", "outlier"] = "all",
    ) -> None:
        if layer is not None and not isinstance(layer, str):
            raise TypeError(f"layer must be a layer name (str) or None, got {layer!r}")
        check_number("expected_fraction", expected_fraction, low=0, high=0.5, low_inclusive=False)
        check_number("removal_factor", removal_factor, low=1)
        check_choice("classes", classes, ("all", "outlier"))
        self.layer = layer
        self.expected_fraction = expected_fraction
        self.removal_factor = removal_factor
        self.classes = classes

    def run(
        self, model: Classifier, x: np.ndarray | Tensor, y: np.ndarray | Tensor
    ) -> PoisonDetection:
        return self.detect(model, x, y)

    def detect(
        self, model: Classifier, x_train: np.ndarray | Tensor, y_train: np.ndarray | Tensor
    ) -> PoisonDetection:
        """Flag the highest-scoring samples of each class of ``(x_train, y_train)``."""
        torch_model, x_np, y_np = self._inputs(model, x_train, y_train, ("x_train", "y_train"))
        layer = self.layer or penultimate_layer(torch_model)
        acts = features(torch_model, x_np, layer)
        scores = np.zeros(len(y_np))
        per_class: list[dict[str, Any]] = []
        for c in range(torch_model.n_classes):
            members = np.flatnonzero(y_np == c)
            info: dict[str, Any] = {"class": c, "members": members, "n": int(members.size)}
            per_class.append(info)
            if members.size < 2:
                info["top_singular_value"] = 0.0
                continue
            r = acts[members] - acts[members].mean(axis=0)
            # Tran et al., Algorithm 1: v = top right singular vector; tau_i = (r_i . v)^2.
            _, s, vt = np.linalg.svd(r, full_matrices=False)
            scores[members] = (r @ vt[0]) ** 2
            # Normalised so classes of different sizes compare.
            info["top_singular_value"] = float(s[0] / np.sqrt(members.size))
        sv = np.array([info["top_singular_value"] for info in per_class])
        med = float(np.median(sv))
        mad = float(np.median(np.abs(sv - med))) * 1.4826 or 1e-12
        flagged = np.zeros(len(y_np), dtype=bool)
        chosen: list[int] = []
        for info in per_class:
            members = info["members"]
            info["anomaly_index"] = (info["top_singular_value"] - med) / mad
            if members.size < 2 or (self.classes == "outlier" and info["anomaly_index"] <= 2):
                info["n_removed"] = 0
                continue
            n_remove = min(
                members.size, round(self.removal_factor * self.expected_fraction * members.size)
            )
            top = members[np.argsort(-scores[members], kind="stable")[:n_remove]]
            flagged[top] = True
            info["n_removed"] = int(n_remove)
            chosen.append(int(info["class"]))
        return PoisonDetection(
            flagged=flagged,
            scores=scores,
            flagged_classes=tuple(chosen),
            per_class=tuple(per_class),
            detector=self.name,
            params=self.get_params(),
        )
