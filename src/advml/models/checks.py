"""Health checks of a model before it is attacked or audited.

A model whose weights hold NaN answers NaN scores, and ``argmax`` of NaN is class 0: an
attack on it "succeeds" on every input not of class 0 and the report states a success
rate that says nothing about the model. These checks refuse such a model by name.
"""

from __future__ import annotations

import weakref

import numpy as np
import torch
from torch import Tensor

from advml.errors import AdvmlError
from advml.models.base import BaseClassifier, Classifier, WhiteBox
from advml.models.callable import CallableClassifier

__all__ = ["NonFiniteModelError", "check_finite_outputs"]


class NonFiniteModelError(AdvmlError, ValueError):
    """The model's weights or its outputs on the data hold NaN or infinite values."""


# The weights each module was last found finite with: every tensor's identity and its
# version counter, which torch bumps on every in-place change (an optimiser step,
# load_state_dict, a pruning mask baked in). An unchanged module is not checked again:
# the check runs at the start of every generate(), and on a GPU its few kernels per
# tensor were about 3 % of PGD-20 on a ResNet-18 (benchmarks/gpu.py, profile).
_Versions = tuple[tuple["weakref.ref[Tensor]", int], ...]
_FOUND_FINITE: weakref.WeakKeyDictionary[torch.nn.Module, _Versions] = weakref.WeakKeyDictionary()


def _unchanged(module: torch.nn.Module, weights: dict[str, Tensor]) -> bool:
    """Whether ``weights`` are the very tensors, unmodified, last found finite."""
    seen = _FOUND_FINITE.get(module)
    if seen is None or len(seen) != len(weights):
        return False
    return all(
        ref() is t and version == t._version
        for (ref, version), t in zip(seen, weights.values(), strict=True)
    )


def check_finite_outputs(
    model: Classifier,
    x: np.ndarray | Tensor | None = None,
    *,
    name: str = "the model",
    max_inputs: int = 64,
) -> None:
    """Raise :class:`NonFiniteModelError` unless ``model`` computes finite scores.

    Two checks: the weights of a PyTorch model (free: no forward pass), then, when
    ``x`` is given and the model returns scores, its scores on the first
    ``max_inputs`` inputs of ``x``. The forward pass is not counted as queries and does
    not spend a query budget: it is a check of the model, not the adversary's work. A
    :class:`~advml.models.CallableClassifier` is not evaluated: its function may be a
    paid prediction service, whose every call must be counted.

    Parameters
    ----------
    model : Classifier
        The model to check.
    x : array of shape (n, *model.input_shape), optional
        Inputs to evaluate the model on (the data it is about to be attacked on).
    name : str, default "the model"
        How the message names the model (e.g. its file).
    max_inputs : int, default 64
        At most this many inputs are evaluated.

    Raises
    ------
    NonFiniteModelError
        Naming the first non-finite weight tensor, or the number of inputs with
        non-finite scores.
    """
    if isinstance(model, WhiteBox):
        state = model.module.state_dict(keep_vars=True)
        weights = {k: t for k, t in state.items() if t.is_floating_point()}
        if _unchanged(model.module, weights):
            weights = {}
        # One device sync for all tensors (this runs at the start of every generate());
        # the loop below only runs to name a damaged tensor.
        if weights:
            first = next(iter(weights.values())).device
            with torch.no_grad():
                flags = [torch.isfinite(t).all().to(first) for t in weights.values()]
                if bool(torch.stack(flags).all()):
                    _FOUND_FINITE[model.module] = tuple(
                        (weakref.ref(t), t._version) for t in weights.values()
                    )
                    weights = {}
        for key, tensor in weights.items():
            if not bool(torch.isfinite(tensor).all()):
                bad = int((~torch.isfinite(tensor)).sum())
                raise NonFiniteModelError(
                    f"{name} has {bad} NaN or infinite values in its weights ({key!r}); "
                    f"attacking it would report meaningless results: retrain it or load "
                    f"an undamaged file"
                )
    if x is None or not model.has_scores or isinstance(model, CallableClassifier):
        return
    if tuple(x.shape[1:]) != tuple(model.input_shape):
        return  # the caller's own check names the mismatch of model and data
    xt = model.as_tensor(x[:max_inputs], name="x")
    with torch.no_grad(), model.evaluating():
        # BaseClassifier._logits bypasses the query count and budget (see above).
        scores = model._logits(xt) if isinstance(model, BaseClassifier) else model.logits(xt)
    finite = torch.isfinite(scores).all(dim=1)
    if not bool(finite.all()):
        raise NonFiniteModelError(
            f"{name} answers NaN or infinite scores on {int((~finite).sum())} of "
            f"{xt.shape[0]} inputs; attacking it would report meaningless results: check "
            f"its weights and its preprocessing"
        )
