"""Networks a user might bring, defined outside advml, for the 8x8 digits: a CNN with
BatchNorm blocks and a GELU MLP. The backdoor tests and `benchmarks/backdoor_user_models.py`
both use them, so the numbers in docs/backdoor.md are measured on the tested networks."""

from __future__ import annotations

from collections import OrderedDict

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
