"""Shared parts of the backdoor defences: the base class, layer choice, model copies.

Each defence says in its class attribute ``uses`` which data it looks at. None of them
ever sees triggered test inputs or test labels: the settings they choose (pruning stop,
thresholds, flagged classes) come from clean validation data or from the training set
the defender already holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from advml.base import Component
from advml.errors import UnsupportedModelError
from advml.models.base import Classifier
from advml.models.torch import TorchClassifier, require_torch
from advml.validation import check_labels, check_not_empty

__all__ = [
    "BackdoorDefence",
    "PoisonDetection",
    "as_numpy",
    "bake_masks",
    "block_output",
    "default_layer",
    "detection_scores",
    "execution_order",
    "measured_layer",
    "penultimate_layer",
    "unit_means",
]

_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.ReLU6)
_PASS_THROUGH = (nn.Dropout, nn.Identity, nn.Flatten, nn.MaxPool2d, nn.AvgPool2d)


class BackdoorDefence(Component):
    """Base of backdoor defences.

    ``run(model, x, y)`` is the generic entry the CLI, the audit and the contract test
    use; each defence also has its own verb (``repair``, ``detect``, ``inspect``, ``fit``).
    """

    family: ClassVar[str] = "backdoor_defence"
    uses: ClassVar[str] = ""
    """The data the defence looks at, in words."""

    def run(self, model: Classifier, x: np.ndarray | Tensor, y: np.ndarray | Tensor) -> Any:
        raise NotImplementedError

    def _inputs(
        self, model: Classifier, x: Any, y: Any, names: tuple[str, str]
    ) -> tuple[TorchClassifier, np.ndarray, np.ndarray]:
        """The white-box model and the checked ``(x, y)`` every defence starts from."""
        torch_model = require_torch(model, type(self).__name__, "its named layers")
        x_np, y_np = check_xy(torch_model, x, y, names)
        return torch_model, x_np, y_np


def as_numpy(a: np.ndarray | Tensor) -> np.ndarray:
    return np.asarray(a.detach().cpu() if isinstance(a, Tensor) else a)


def check_xy(
    model: Classifier, x: Any, y: Any, names: tuple[str, str]
) -> tuple[np.ndarray, np.ndarray]:
    x_np, y_np = as_numpy(x), as_numpy(y)
    check_not_empty(names[0], x_np)
    model.as_tensor(x_np[:1], name=names[0])  # shape and bounds check on one sample
    check_labels(names[1], y_np, model.n_classes, len(x_np))
    return x_np.astype(np.float32, copy=False), y_np.astype(np.int64, copy=False)


def _leaves(model: TorchClassifier) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.module.named_modules() if n and not list(m.children())]


_NORMS = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
)
_ZERO_AT_ZERO = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.ReLU6)
"""Activations with f(0) = 0: a unit zeroed before them stays exactly 0 after them."""


def execution_order(model: TorchClassifier) -> list[tuple[str, nn.Module, int]]:
    """The model's leaf layers in the order one forward pass runs them, with call counts.

    ``named_modules()`` lists layers in the order they were declared, which a
    ``forward`` is free to ignore; one probe input (not a query: nothing is returned)
    shows the order the data actually takes. A layer called more than once (a ReLU
    module reused across a residual block) is listed at its first call.
    """
    leaves = _leaves(model)
    calls: dict[str, int] = {}
    order: list[str] = []
    handles = []
    for name, module in leaves:

        def hook(_m: nn.Module, _i: object, _o: object, name: str = name) -> None:
            if name not in calls:
                order.append(name)
            calls[name] = calls.get(name, 0) + 1

        handles.append(module.register_forward_hook(hook))
    zero = torch.full((1, *model.input_shape), model.bounds[0], device=model.device)
    try:
        with torch.no_grad(), model.evaluating():
            model.forward(zero)
    finally:
        for h in handles:
            h.remove()
    modules = dict(leaves)
    return [(n, modules[n], calls[n]) for n in order]


def block_output(model: TorchClassifier, layer: str) -> str:
    """Where the units of a convolutional or linear ``layer`` leave their block.

    A unit is pruned by zeroing it after the block's normalisation and activation
    (Liu et al. 2018 prune the last convolutional layer's *activations*): zeroed at the
    convolution, a BatchNorm that follows would output its shift instead of 0. Walking
    the execution order from ``layer`` past normalisation, dropout and identity layers:
    the first activation module run once (a module reused elsewhere cannot be masked
    for this block alone), else the last normalisation layer (its 0 stays 0 through a
    functional ReLU or GELU), else ``layer`` itself. Any other layer is returned as given.
    """
    order = execution_order(model)
    names = [n for n, _, _ in order]
    if layer not in names or not isinstance(order[names.index(layer)][1], _PRUNABLE):
        return layer
    best = layer
    for name, module, calls in order[names.index(layer) + 1 :]:
        if isinstance(module, _NORMS) and calls == 1:
            best = name
        elif isinstance(module, _ACTIVATIONS) and calls == 1:
            return name
        elif not isinstance(module, nn.Dropout | nn.Identity):
            break
    return best


_PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def default_layer(model: TorchClassifier) -> str:
    """Output of the last convolutional block, else of the last hidden linear block.

    Liu et al. (Fine-Pruning, RAID 2018, §4.1) prune the last convolutional layer, by
    its activations: the layer is found in execution order and the units are taken at
    the block's output (:func:`block_output`), after any BatchNorm and activation.
    """
    order = execution_order(model)
    convs = [n for n, m, _ in order if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d)]
    if convs:
        return block_output(model, convs[-1])
    linears = [n for n, m, _ in order if isinstance(m, nn.Linear)]
    if len(linears) < 2:
        raise UnsupportedModelError(
            "the model has no convolutional or hidden linear layer to prune; pass layer="
        )
    return block_output(model, linears[-2])


def penultimate_layer(model: TorchClassifier) -> str:
    """The layer whose output feeds the output layer (after its activation function)."""
    leaves = _leaves(model)
    out = max(i for i, (_, m) in enumerate(leaves) if isinstance(m, nn.Linear))
    for name, m in reversed(leaves[:out]):
        if not isinstance(m, nn.Dropout | nn.Identity):
            return name
    raise UnsupportedModelError(
        "the model has no hidden layer before its output layer; pass layer="
    )


def measured_layer(model: TorchClassifier, layer: str) -> str:
    """Where the activity of ``layer``'s units is read: its block's output.

    For a convolutional or linear layer that is :func:`block_output` (after its
    normalisation and activation); any other layer is read where it is.
    """
    return block_output(model, layer)


def unit_means(model: TorchClassifier, x: np.ndarray | Tensor, layer: str) -> np.ndarray:
    """Mean activation of each unit of ``layer`` over ``x`` (and over positions for conv)."""
    with model.evaluating():
        a = model.activations(torch.as_tensor(as_numpy(x)).to(model.device), layer)
    assert isinstance(a, Tensor)
    a = a.float()
    dims = [0, *range(2, a.ndim)]
    return a.mean(dim=dims).cpu().numpy()


def features(model: TorchClassifier, x: np.ndarray, layer: str) -> np.ndarray:
    """Activations of ``layer`` flattened to ``(n, d)`` numpy."""
    with model.evaluating():
        a = model.activations(torch.as_tensor(x).to(model.device), layer)
    assert isinstance(a, Tensor)
    return a.flatten(1).cpu().numpy().astype(np.float64)


def bake_masks(model: TorchClassifier) -> TorchClassifier:
    """A copy of ``model`` whose unit masks are written into its weights, so it can be saved.

    A masked unit of a linear, convolutional or affine normalisation layer has its weight
    row (output channel) and bias zeroed: its output is then exactly the 0 the mask gave.
    A mask on an activation with f(0) = 0 (ReLU, GELU, ...) is written into the layer
    that feeds it, whose 0 the activation keeps. The saved file (weights only) then
    behaves like the masked model.
    """
    twin = model.clone()
    order = execution_order(twin)
    for layer in model.layer_names:
        keep = twin.unit_mask(layer)
        if keep is not None:
            _zero_units(twin, order, layer, keep)
    twin.clear_unit_masks()
    return twin


def _zero_units(
    model: TorchClassifier,
    order: list[tuple[str, nn.Module, int]],
    layer: str,
    keep: Tensor,
) -> None:
    names = [n for n, _, _ in order]
    target = layer
    while True:
        module = model.module.get_submodule(target)
        weight = getattr(module, "weight", None)
        if isinstance(weight, Tensor) and weight.shape[0] == keep.numel():
            break
        i = names.index(target) if target in names else -1
        if not isinstance(module, (*_ZERO_AT_ZERO, nn.Dropout, nn.Identity)) or i < 1:
            raise UnsupportedModelError(
                f"cannot write the mask of {layer!r} into its weights; keep the model in memory"
            )
        target = names[i - 1]
    with torch.no_grad():
        weight[~keep.to(weight.device)] = 0
        bias = getattr(module, "bias", None)
        if isinstance(bias, Tensor):
            bias[~keep.to(bias.device)] = 0


@dataclass(frozen=True)
class PoisonDetection:
    """Training samples a detector flags as poisoned."""

    flagged: np.ndarray
    """Boolean, one per training sample: True where the detector says poisoned."""
    scores: np.ndarray
    """Outlier score per sample (higher = more suspicious)."""
    flagged_classes: tuple[int, ...]
    """Classes the detector found poisoned samples in."""
    per_class: tuple[dict[str, Any], ...]
    """What the detector measured in each class (sizes, silhouette, thresholds)."""
    detector: str
    params: dict[str, Any]

    @property
    def indices(self) -> np.ndarray:
        return np.flatnonzero(self.flagged)

    def score(self, poisoned: np.ndarray, *, within_class: int | None = None) -> dict[str, float]:
        """Precision, recall and F1 against the true poisoned samples.

        ``poisoned`` is a boolean mask or an index array; ``within_class`` (a label of
        the *given* training labels) restricts both to that class, the target class of
        an all-to-one backdoor, as in Chen et al.'s evaluation.
        """
        return detection_scores(self.flagged, poisoned, self.per_class, within_class)

    def summary(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "n_flagged": int(self.flagged.sum()),
            "flagged_classes": list(self.flagged_classes),
        }


def detection_scores(
    flagged: np.ndarray,
    poisoned: np.ndarray,
    per_class: tuple[dict[str, Any], ...] = (),
    within_class: int | None = None,
) -> dict[str, float]:
    truth = np.zeros(flagged.shape[0], dtype=bool)
    p = np.asarray(poisoned)
    if p.dtype == bool:
        if p.shape != truth.shape:
            raise ValueError(f"poisoned mask has shape {p.shape}, expected {truth.shape}")
        truth = p
    else:
        truth[p.astype(np.int64)] = True
    pred = flagged
    if within_class is not None:
        members = np.zeros_like(truth)
        for info in per_class:
            if info.get("class") == within_class:
                members[np.asarray(info["members"], dtype=np.int64)] = True
        truth, pred = truth[members], pred[members]
    tp = float((pred & truth).sum())
    precision = tp / pred.sum() if pred.sum() else 0.0
    recall = tp / truth.sum() if truth.sum() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "n_flagged": float(pred.sum())}
