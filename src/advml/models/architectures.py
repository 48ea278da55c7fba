"""Reference architectures: small, fast networks for the embedded datasets.

Layers carry stable names (``conv1`` … ``fc2``) so that activations, pruning and
watermarking can address them; ``conv2`` is the last convolutional layer of the CNN.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from torch import nn

__all__ = ["ARCHITECTURES", "build", "mlp", "small_cnn"]


def mlp(
    *,
    input_shape: Sequence[int],
    n_classes: int,
    hidden: Sequence[int] = (256, 256),
    dropout: float = 0.0,
) -> nn.Sequential:
    """A fully connected ReLU network: flatten, ``hidden`` layers ``fc1…``, logits ``out``.

    Parameters
    ----------
    input_shape : sequence of int
        Shape of one input (flattened first).
    n_classes : int
        Number of output logits.
    hidden : sequence of int
        Width of each hidden layer; default ``(256, 256)``.
    dropout : float
        Dropout probability after each hidden layer (0 disables it).
    """
    layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    width = int(np.prod(input_shape))
    for i, h in enumerate(hidden, start=1):
        layers[f"fc{i}"] = nn.Linear(width, int(h))
        layers[f"relu{i}"] = nn.ReLU()
        if dropout > 0:
            layers[f"drop{i}"] = nn.Dropout(dropout)
        width = int(h)
    layers["out"] = nn.Linear(width, n_classes)
    return nn.Sequential(layers)


def small_cnn(
    *,
    input_shape: Sequence[int],
    n_classes: int,
    channels: tuple[int, int] = (32, 64),
    hidden: int = 128,
    dropout: float = 0.25,
) -> nn.Sequential:
    """Two 3x3 conv blocks with max pooling, then a hidden dense layer and logits.

    Works for grey (1, H, W) and colour (3, H, W) images; H and W must be >= 4.
    ``conv2`` is the last convolutional layer (the one the pruning defence prunes) and
    ``fc1`` the last hidden layer.

    Parameters
    ----------
    input_shape : sequence of int
        ``(channels, height, width)``.
    n_classes : int
        Number of output logits.
    channels : (int, int)
        Filters of the two convolutional layers.
    hidden : int
        Width of the dense hidden layer.
    dropout : float
        Dropout before the output layer (active in training only).
    """
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (channels, height, width), got {tuple(input_shape)}")
    c, h, w = (int(d) for d in input_shape)
    if h < 4 or w < 4:
        raise ValueError(f"small_cnn needs images of at least 4x4 pixels, got {h}x{w}")
    c1, c2 = channels
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(c, c1, kernel_size=3, padding=1),
            relu1=nn.ReLU(),
            pool1=nn.MaxPool2d(2),
            conv2=nn.Conv2d(c1, c2, kernel_size=3, padding=1),
            relu2=nn.ReLU(),
            pool2=nn.MaxPool2d(2),
            flatten=nn.Flatten(),
            fc1=nn.Linear(c2 * (h // 4) * (w // 4), hidden),
            relu3=nn.ReLU(),
            drop=nn.Dropout(dropout),
            out=nn.Linear(hidden, n_classes),
        )
    )


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {"mlp": mlp, "cnn": small_cnn}


def build(name: str, **kwargs: Any) -> nn.Module:
    """Build the reference architecture ``name`` (``"mlp"`` or ``"cnn"``)."""
    try:
        factory = ARCHITECTURES[name]
    except KeyError:
        raise ValueError(
            f"unknown architecture {name!r}; available: {', '.join(sorted(ARCHITECTURES))}"
        ) from None
    module = factory(**kwargs)
    # save_model reads this to write a file that rebuilds the network without pickle.
    module.__dict__["advml_architecture"] = (name, dict(kwargs))
    return module
