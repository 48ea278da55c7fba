"""Explicit randomness: the same seed gives the same result."""

from __future__ import annotations

import random

import numpy as np
import torch

__all__ = ["make_generator", "seed_everything"]


def make_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator seeded with ``seed`` (fresh OS entropy when ``None``)."""
    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    return gen


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators (for scripts and training)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (seeding the legacy global is the point)
    torch.manual_seed(seed)
