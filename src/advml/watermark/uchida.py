"""White-box parameter watermark (Uchida, Nagai, Sakazawa & Satoh, ICMR 2017)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from advml import registry
from advml.errors import UnsupportedModelError
from advml.models.base import Classifier, WhiteBox
from advml.models.torch import TorchClassifier
from advml.models.training import LossFn
from advml.validation import check_number
from advml.watermark.base import WatermarkScheme, check_training
from advml.watermark.key import WatermarkKey, derive_rng

__all__ = ["Uchida", "default_layer", "mean_weights"]


def _weighted(model: WhiteBox) -> list[tuple[str, nn.Module]]:
    return [
        (name, m)
        for name, m in model.module.named_modules()
        if name and isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear)
    ]


def default_layer(model: WhiteBox) -> str:
    """The last convolutional layer; for a network without one, its second dense layer.

    The second dense layer of an MLP has one weight per hidden unit of the first (256 for
    the reference MLP), more than the 64 input pixels of the first layer on digits.
    """
    layers = _weighted(model)
    convs = [name for name, m in layers if not isinstance(m, nn.Linear)]
    if convs:
        return convs[-1]
    dense = [name for name, _ in layers]
    if not dense:
        raise UnsupportedModelError("the model has no convolutional or dense layer to watermark")
    return dense[1] if len(dense) >= 3 else dense[0]


def _layer_weight(model: WhiteBox, layer: str) -> Tensor:
    modules = dict(model.module.named_modules())
    module = modules.get(layer) if layer else None
    if not isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear):
        names = ", ".join(name for name, _ in _weighted(model))
        raise UnsupportedModelError(
            f"layer {layer!r} is not a convolutional or dense layer of this model; "
            f"layers with weights: {names}"
        )
    weight: Tensor = module.weight
    return weight


def mean_weights(weight: Tensor) -> Tensor:
    """The layer's weights averaged over its output units, flattened: ``w`` of length M.

    For a convolution of shape ``(L, D, S, S)`` this is the mean of the ``L`` filters
    (Uchida et al. 2017, §3.2, ``M = S * S * D``); for a dense layer ``(L, D)``, ``M = D``.
    """
    return weight.mean(dim=0).flatten()


@registry.register("watermark", "uchida")
class Uchida(WatermarkScheme):
    """Embed a T-bit signature into one layer's weights through a regulariser.

    Embedding fine-tunes with ``E(w) = E_0(w) + λ E_R(w)``, where ``E_R`` is the binary
    cross-entropy between the signature ``b`` and ``σ(X w)`` (Uchida et al. 2017,
    eqs. 4–6): ``w`` is the layer's weights averaged over its output units, ``X`` a
    secret ``T × M`` Gaussian projection drawn from the owner's key (their "random"
    embedding, the hardest to detect). Extraction reads ``b_j = 1[(X w)_j > 0]``.

    A model not derived from the owner's has weights independent of ``X``, so each bit it
    yields is a fair coin (``X w`` is Gaussian with mean zero): the binomial null with
    ``p0 = 1/2`` is exact.

    Parameters
    ----------
    bits : int
        Length T of the signature (>= 1); default 64.
    layer : str, optional
        Layer to embed into; default the last convolutional layer, or the second dense
        layer of an MLP.
    strength : float
        λ, the weight of the regulariser (> 0); default 0.05. The paper's 0.01 embeds
        while training from scratch for many epochs; fine-tuning the digits reference
        MLP for 5 epochs at 0.01 left 1 of 64 bits wrong (and FTAL kept it wrong), at
        0.05 every bit was read back, after 50% pruning of the layer and after FTAL, at
        no measured accuracy cost (benchmarks/watermark.py).
    epochs : int
        Fine-tuning epochs; default 5.
    lr : float
        Adam learning rate of the fine-tuning; default 1e-3.
    batch_size : int
        Samples per step; default 64.
    schedule : {"constant", "cosine"}
        Learning rate of the fine-tuning: constant, or cosine decay from ``lr`` to 0
        (see :func:`advml.models.training.train`); default constant.

    Examples
    --------
    >>> marked = Uchida(bits=64).embed(model, x_train, y_train, key="my secret")  # doctest: +SKIP
    >>> marked.verification.bit_error_rate  # doctest: +SKIP
    0.0
    """

    white_box_verification = True

    def __init__(
        self,
        *,
        bits: int = 64,
        layer: str | None = None,
        strength: float = 0.05,
        epochs: int = 5,
        lr: float = 1e-3,
        batch_size: int = 64,
        schedule: Literal["constant", "cosine"] = "constant",
    ) -> None:
        check_number("bits", bits, low=1, integer=True)
        if layer is not None and (not isinstance(layer, str) or not layer):
            raise ValueError(f"layer must be a layer name or None, got {layer!r}")
        check_number("strength", strength, low=0, low_inclusive=False)
        check_training(epochs=epochs, lr=lr, batch_size=batch_size, schedule=schedule)
        self.bits = bits
        self.layer = layer
        self.strength = strength
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.schedule = schedule

    def _make_key(self, model: TorchClassifier, x: Tensor, y: Tensor, secret: str) -> WatermarkKey:
        layer = self.layer or default_layer(model)
        m = mean_weights(_layer_weight(model, layer)).numel()
        projection = derive_rng(secret, "uchida:projection").standard_normal((self.bits, m))
        bits = derive_rng(secret, "uchida:bits").integers(0, 2, size=self.bits)
        return WatermarkKey(
            scheme=self.name,
            secret=secret,
            settings=self.get_params(),
            arrays={"projection": projection.astype(np.float32), "bits": bits.astype(np.int64)},
            meta={"layer": layer, "null_rate": 0.5, "weights_per_bit": m},
        )

    def _loss(self, model: TorchClassifier, key: WatermarkKey) -> LossFn:
        layer = str(key.meta["layer"])
        projection = torch.as_tensor(key.arrays["projection"], device=model.device)
        target = torch.as_tensor(key.arrays["bits"], device=model.device, dtype=torch.float32)
        strength = float(self.strength)

        def loss(m: TorchClassifier, xb: Tensor, yb: Tensor) -> Tensor:
            w = mean_weights(_layer_weight(m, layer))
            # E_R (Uchida et al. 2017, eq. 6): summed binary cross-entropy over the T bits.
            reg = F.binary_cross_entropy_with_logits(projection @ w, target, reduction="sum")
            return F.cross_entropy(m.forward(xb), yb) + strength * reg

        return loss

    def unsupported_reason(self, model: Classifier, key: WatermarkKey) -> str | None:
        """The model must show its weights, with the key's layer of the key's size."""
        layer = str(key.meta["layer"])
        if not isinstance(model, WhiteBox):
            return (
                f"white-box verification reads the weights of layer {layer!r}; this model "
                f"({type(model).__name__}) gives no access to its weights"
            )
        modules = dict(model.module.named_modules())
        names = ", ".join(name for name, _ in _weighted(model)) or "none"
        if not layer or layer not in modules:
            return (
                f"the key reads layer {layer!r}, which this model does not have (layers with "
                f"weights: {names}): another architecture"
            )
        module = modules[layer]
        if not isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear):
            return (
                f"the key reads layer {layer!r}, which in this model is a "
                f"{type(module).__name__}, not a convolutional or dense layer (layers with "
                f"weights: {names}): another architecture"
            )
        size = mean_weights(module.weight).numel()
        expected = int(key.arrays["projection"].shape[1])
        if size != expected:
            return (
                f"the key projects {expected} weights of layer {layer!r}, but this model's "
                f"layer has {size}: another architecture"
            )
        return None

    def extract(self, model: Classifier, key: WatermarkKey) -> np.ndarray:
        """The bits ``1[(X w)_j > 0]`` read from ``model``'s layer.

        Raises
        ------
        UnsupportedModelError
            The model cannot be read with this key (see :meth:`unsupported_reason`);
            :meth:`verify` answers such a model "not verified" instead.
        """
        reason = self.unsupported_reason(model, key)
        if reason is not None:
            raise UnsupportedModelError(reason)
        assert isinstance(model, WhiteBox)  # unsupported_reason said so
        weight = _layer_weight(model, str(key.meta["layer"])).detach()
        w = mean_weights(weight)
        projection = torch.as_tensor(key.arrays["projection"], device=w.device)
        return (projection @ w > 0).long().cpu().numpy()

    def observe(self, model: Classifier, key: WatermarkKey) -> tuple[np.ndarray, np.ndarray, int]:
        bits = self.extract(model, key)
        return bits == key.arrays["bits"], bits, 0

    def expected(self, key: WatermarkKey) -> np.ndarray:
        return np.asarray(key.arrays["bits"])

    def null_rate(self, key: WatermarkKey) -> float:
        return 0.5
