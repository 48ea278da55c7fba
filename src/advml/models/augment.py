"""Random translations of image batches: training augmentation and query perturbations."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["random_shift"]


def random_shift(x: Tensor, max_shift: int, generator: torch.Generator) -> Tensor:
    """Each image of ``x`` ``(n, c, h, w)`` translated by its own random ``(dy, dx)``.

    Offsets are drawn uniformly from ``[-max_shift, max_shift]`` per axis; the pixels
    that enter at an edge repeat the edge (replicate padding), so no value outside the
    image's own range appears. ``max_shift=0`` returns ``x`` unchanged.
    """
    if max_shift == 0:
        return x
    n, _, h, w = x.shape
    k = max_shift
    padded = torch.nn.functional.pad(x, (k, k, k, k), mode="replicate")
    # Drawn on the generator's device, so a CPU generator serves inputs on any device.
    dy = torch.randint(0, 2 * k + 1, (n,), generator=generator, device=generator.device)
    dx = torch.randint(0, 2 * k + 1, (n,), generator=generator, device=generator.device)
    dy, dx = dy.to(x.device), dx.to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device)[None, :])[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device)[None, :])[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]
