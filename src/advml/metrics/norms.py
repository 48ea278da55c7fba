"""Size of a perturbation per sample."""

from __future__ import annotations

from typing import overload

import numpy as np
from torch import Tensor

__all__ = ["perturbation_norms"]

L0_TOLERANCE = 1e-7
"""A feature counts as changed in L0 when it moved by more than this."""


@overload
def perturbation_norms(x: Tensor, x_adv: Tensor) -> tuple[Tensor, Tensor, Tensor]: ...
@overload
def perturbation_norms(
    x: np.ndarray, x_adv: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...
def perturbation_norms(
    x: np.ndarray | Tensor, x_adv: np.ndarray | Tensor
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | tuple[Tensor, Tensor, Tensor]:
    """Per-sample L0 (features changed), L2 and L∞ norms of ``x_adv - x``.

    Tensors in, tensors out; numpy in, numpy out. Shapes must match.
    """
    if tuple(x.shape) != tuple(x_adv.shape):
        raise ValueError(
            f"x_adv must have the shape of x {tuple(x.shape)}, got {tuple(x_adv.shape)}"
        )
    if isinstance(x, Tensor) and isinstance(x_adv, Tensor):
        d = (x_adv - x).flatten(1)
        return (d.abs() > L0_TOLERANCE).sum(1), d.norm(p=2, dim=1), d.abs().amax(1)
    dn = (np.asarray(x_adv, dtype=np.float64) - np.asarray(x, dtype=np.float64)).reshape(len(x), -1)
    return (
        (np.abs(dn) > L0_TOLERANCE).sum(1),
        np.sqrt((dn**2).sum(1)),
        np.abs(dn).max(1, initial=0.0),
    )


def _as_numpy(a: np.ndarray | Tensor) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, Tensor) else np.asarray(a)
