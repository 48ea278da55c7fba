"""Networks a user might bring, defined outside advml, for the 8x8 digits: a CNN with
BatchNorm blocks, a GELU MLP and a residual BatchNorm/GELU CNN. The backdoor tests and
`benchmarks/backdoor_user_models.py` both use the first two, so the numbers in
docs/backdoor.md are measured on the tested networks; the executor tests the third."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


def bn_cnn() -> nn.Module:
    return nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(1, 16, 3, padding=1),
            bn1=nn.BatchNorm2d(16),
            relu1=nn.ReLU(),
            pool=nn.MaxPool2d(2),
            conv2=nn.Conv2d(16, 24, 3, padding=1),
            bn2=nn.BatchNorm2d(24),
            relu2=nn.ReLU(),
            flat=nn.Flatten(),
            fc=nn.Linear(24 * 16, 64),
            relu3=nn.ReLU(),
            out=nn.Linear(64, 10),
        )
    )


def gelu_mlp() -> nn.Module:
    return nn.Sequential(
        OrderedDict(
            flat=nn.Flatten(),
            fc1=nn.Linear(64, 128),
            act1=nn.GELU(),
            fc2=nn.Linear(128, 64),
            act2=nn.GELU(),
            out=nn.Linear(64, 10),
        )
    )


class Residual(nn.Module):
    """A BatchNorm + GELU block with a skip connection."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.act(self.bn(self.conv(x)))


def residual_cnn() -> nn.Module:
    """A small residual CNN (BatchNorm, GELU, a skip connection, average pooling)."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.GELU(),
        Residual(8),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 10),
    )
