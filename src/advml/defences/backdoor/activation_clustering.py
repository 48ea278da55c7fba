"""Activation clustering (Chen et al., "Detecting Backdoor Attacks on Deep Neural Networks
by Activation Clustering", SafeAI@AAAI 2019).

Within the training samples of one label, poisoned samples are classified as that label
for a different reason (the trigger) than clean ones, so the last hidden layer's
activations of the class fall into two groups. Per class: reduce the activations to a
few dimensions (ICA in the paper, §3; PCA by default here), split them with 2-means, and
call the class poisoned when the smaller cluster is not larger than half the class and the
split is clean (high silhouette).
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA, FastICA
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import silhouette_score
from torch import Tensor

from advml import registry
from advml.defences.backdoor.base import (
    BackdoorDefence,
    PoisonDetection,
    check_torch_model,
    check_xy,
    features,
    penultimate_layer,
)
from advml.models.base import Classifier
from advml.validation import check_choice, check_number

__all__ = ["ActivationClustering"]


@registry.register("backdoor_defence", "activation_clustering")
class ActivationClustering(BackdoorDefence):
    """Flag training samples that form a small, well-separated cluster within their label.

    Uses the (possibly poisoned) training inputs and their given labels, and the model
    trained on them; no clean reference data and no trigger.

    Parameters
    ----------
    layer : str, optional
        Layer whose activations are clustered; default the last hidden layer (the input
        of the output layer, after its activation function).
    n_components : int
        Dimensions kept by the reduction (>= 1); Chen et al. use 10.
    reduction : {"pca", "ica"}
        PCA (default) or independent component analysis (Chen et al.'s choice). ICA's
        unit-variance whitening stretches every direction to the same spread and hid the
        split here: on the backdoored mnist-5k CNN every class, the poisoned one
        included, split at silhouette 0.08-0.19 after ICA, while PCA separated the
        poisoned class at 0.34 (see docs/backdoor.md).
    max_cluster_size : float
        A class is poisoned only if its smaller cluster holds at most this share of its
        samples, in (0, 0.5]. Chen et al. suggest 0.35, which assumes the poison is a
        minority of its label; an all-to-one attack on 10% of the whole training set
        makes about half of the target class poison, so the default allows up to half.
    min_silhouette : float
        ... and only if the 2-means split has at least this silhouette score, in [-1, 1].
        Some clean classes split naturally too (the two ways of writing a 1 reach 0.37
        on mnist-5k): they are flagged as false positives, which the per-class numbers
        in ``per_class`` let a reviewer see.
    seed : int
        Seed of the reduction and of k-means.
    """

    uses = "the training inputs and their (possibly poisoned) labels"

    def __init__(
        self,
        *,
        layer: str | None = None,
        n_components: int = 10,
        reduction: Literal["ica", "pca"] = "pca",
        max_cluster_size: float = 0.5,
        min_silhouette: float = 0.25,
        seed: int = 0,
    ) -> None:
        if layer is not None and not isinstance(layer, str):
            raise TypeError(f"layer must be a layer name (str) or None, got {layer!r}")
        check_number("n_components", n_components, low=1, integer=True)
        check_choice("reduction", reduction, ("ica", "pca"))
        check_number("max_cluster_size", max_cluster_size, low=0, high=0.5, low_inclusive=False)
        check_number("min_silhouette", min_silhouette, low=-1, high=1)
        check_number("seed", seed, low=0, integer=True)
        self.layer = layer
        self.n_components = n_components
        self.reduction = reduction
        self.max_cluster_size = max_cluster_size
        self.min_silhouette = min_silhouette
        self.seed = seed

    def run(
        self, model: Classifier, x: np.ndarray | Tensor, y: np.ndarray | Tensor
    ) -> PoisonDetection:
        return self.detect(model, x, y)

    def detect(
        self, model: Classifier, x_train: np.ndarray | Tensor, y_train: np.ndarray | Tensor
    ) -> PoisonDetection:
        """Flag suspicious samples of the training set ``(x_train, y_train)``."""
        torch_model = check_torch_model(model, type(self).__name__)
        x_np, y_np = check_xy(torch_model, x_train, y_train, ("x_train", "y_train"))
        layer = self.layer or penultimate_layer(torch_model)
        acts = features(torch_model, x_np, layer)
        flagged = np.zeros(len(y_np), dtype=bool)
        scores = np.zeros(len(y_np))
        per_class: list[dict[str, Any]] = []
        classes: list[int] = []
        for c in range(torch_model.n_classes):
            members = np.flatnonzero(y_np == c)
            info: dict[str, Any] = {"class": c, "members": members, "n": int(members.size)}
            per_class.append(info)
            if members.size < 4:
                info.update(small_fraction=None, silhouette=None, poisoned=False)
                continue
            reduced = self._reduce(acts[members])
            km = KMeans(n_clusters=2, n_init=10, random_state=self.seed).fit(reduced)
            labels = km.labels_
            sizes = np.bincount(labels, minlength=2)
            small = int(np.argmin(sizes))
            fraction = float(sizes[small] / members.size)
            sil = float(silhouette_score(reduced, labels)) if sizes.min() > 0 else -1.0
            poisoned = fraction <= self.max_cluster_size and sil >= self.min_silhouette
            # Score: distance to the large cluster's centre relative to the small one's.
            d_large = np.linalg.norm(reduced - km.cluster_centers_[1 - small], axis=1)
            d_small = np.linalg.norm(reduced - km.cluster_centers_[small], axis=1)
            scores[members] = d_large - d_small
            info.update(small_fraction=fraction, silhouette=sil, poisoned=poisoned)
            if poisoned:
                flagged[members[labels == small]] = True
                classes.append(c)
        return PoisonDetection(
            flagged=flagged,
            scores=scores,
            flagged_classes=tuple(classes),
            per_class=tuple(per_class),
            detector=self.name,
            params=self.get_params(),
        )

    def _reduce(self, a: np.ndarray) -> np.ndarray:
        a = a - a.mean(axis=0)
        # Units that never vary within the class (dead ReLUs) carry nothing, and ICA's
        # whitening divides by their zero variance: keep at most the data's rank.
        rank = int(np.linalg.matrix_rank(a)) if a.size else 0
        k = int(max(1, min(self.n_components, rank, a.shape[0] - 1)))
        if self.reduction == "pca" or k < 2:
            return PCA(n_components=k, random_state=self.seed).fit_transform(a)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            # FastICA divides by every singular value before keeping the first k; the
            # zero ones beyond the rank give a harmless divide warning.
            warnings.simplefilter("ignore", RuntimeWarning)
            return FastICA(
                n_components=k, random_state=self.seed, max_iter=400, whiten="unit-variance"
            ).fit_transform(a)
