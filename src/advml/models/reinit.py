"""Fresh initial weights for networks whose layers have no ``reset_parameters()``:
TorchScript modules and ``torch.export`` graphs keep the parameters of convolutions,
linear and normalisation layers but not the Python methods that initialise them.

The rules are PyTorch's own defaults, recognised from the parameters' names and shapes:

* a weight of two or more dimensions (linear, convolution) and the bias beside it:
  uniform in ``±1/sqrt(fan_in)`` (``kaiming_uniform_(a=sqrt(5))``, as ``nn.Linear`` and
  ``nn.Conv2d`` do), ``fan_in`` being the weight's size per output unit;
* a one-dimensional weight without such a sibling (batch, layer, group norm): ones, its
  bias zeros; running statistics back to mean 0, variance 1, no batches seen.

Anything else (embeddings, learned tokens...) is left as it is and named, so the caller
can say so.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["not_reinitialisable", "reset_by_shape", "uncovered"]


def _rule(name: str, param: torch.Tensor, shapes: dict[str, tuple[int, ...]]) -> str | None:
    prefix, _, leaf = name.rpartition(".")
    sibling = f"{prefix}.weight" if prefix else "weight"
    if leaf == "weight" and param.ndim >= 2:
        return "fan_in"
    if leaf == "bias" and len(shapes.get(sibling, ())) >= 2:
        return "fan_in"
    if leaf == "weight" and param.ndim == 1:
        return "ones"
    if leaf == "bias" and param.ndim == 1 and len(shapes.get(sibling, ())) == 1:
        return "zeros"
    return None


def uncovered(module: nn.Module, names: list[str]) -> list[str]:
    """The parameters among ``names`` that no rule above covers."""
    shapes = {n: tuple(p.shape) for n, p in module.named_parameters()}
    params = dict(module.named_parameters())
    return [n for n in names if _rule(n, params[n], shapes) is None]


def reset_by_shape(module: nn.Module, names: list[str]) -> list[str]:
    """Re-draw the parameters ``names`` of ``module`` in place by the rules above, with
    torch's current random state (the caller seeds it); returns those left as they were."""
    params = dict(module.named_parameters())
    shapes = {n: tuple(p.shape) for n, p in params.items()}
    left = []
    touched_prefixes = set()
    with torch.no_grad():
        for name in names:
            param = params[name]
            rule = _rule(name, param, shapes)
            prefix = name.rpartition(".")[0]
            if rule == "fan_in":
                weight = params.get(f"{prefix}.weight" if prefix else "weight", param)
                fan_in = max(1, int(weight[0].numel()))
                bound = 1.0 / math.sqrt(fan_in)
                param.uniform_(-bound, bound)
            elif rule == "ones":
                param.fill_(1.0)
                touched_prefixes.add(prefix)
            elif rule == "zeros":
                param.zero_()
                touched_prefixes.add(prefix)
            else:
                left.append(name)
        for name, buf in module.named_buffers():
            prefix, _, leaf = name.rpartition(".")
            if prefix not in touched_prefixes:
                continue
            if leaf == "running_mean":
                buf.zero_()
            elif leaf == "running_var":
                buf.fill_(1.0)
            elif leaf == "num_batches_tracked":
                buf.zero_()
    return left


def not_reinitialisable(module: nn.Module) -> list[str]:
    """The parameters :func:`advml.models.torch.reinitialise` would leave as they are
    (neither a ``reset_parameters()`` nor a rule above covers them); nothing is changed."""
    covered: set[int] = set()
    for sub in module.modules():
        if callable(getattr(sub, "reset_parameters", None)):
            covered.update(id(p) for p in sub.parameters(recurse=False))
    missed = [n for n, p in module.named_parameters() if id(p) not in covered]
    return uncovered(module, missed)
