"""What an adversary sees of a model: the access levels of a threat model.

An audit (or a CLI command) that assumes a weaker adversary than white-box wraps the
model here, so every attack meets exactly the interface that adversary has: a
prediction API that returns scores, or labels only.
"""

from __future__ import annotations

import torch

from advml.models.base import Classifier, full_bounds
from advml.models.callable import CallableClassifier
from advml.validation import check_choice

__all__ = ["ACCESS_LEVELS", "restrict_access"]

ACCESS_LEVELS = ("white-box", "scores", "labels")


def restrict_access(model: Classifier, access: str) -> Classifier:
    """``model`` as an adversary with ``access`` sees it.

    Parameters
    ----------
    model : Classifier
        The model to wrap.
    access : {"white-box", "scores", "labels"}
        ``"white-box"`` returns ``model`` itself; ``"scores"`` a prediction API that
        returns probabilities (no gradients); ``"labels"`` one that returns labels only.

    Returns
    -------
    Classifier
    """
    check_choice("access", access, ACCESS_LEVELS)
    if access == "white-box":
        return model
    if access == "scores" and not model.has_scores:
        raise ValueError("access='scores' needs a model that returns scores; this one gives labels")

    def answer(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            if access == "scores":
                return torch.softmax(model.logits(x), dim=1)
            return model.predict_labels(x)

    return CallableClassifier(
        answer,
        input_shape=model.input_shape,
        n_classes=model.n_classes,
        bounds=full_bounds(model),  # per-feature arrays kept
        returns="probs" if access == "scores" else "labels",
        accepts="torch",
        device=model.device,
        wraps=model,  # each query here is one of model's: its budget is this API's too
        # "PyTorch mlp (...), white-box" -> "PyTorch mlp (...) behind a prediction API".
        name=f"{model.describe().removesuffix(', white-box')} behind a prediction API",
    )
