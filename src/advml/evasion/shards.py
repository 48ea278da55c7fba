"""An evasion attack over shards of the evaluation set, through an executor.

Inputs are independent under an evasion attack, so the evaluation set splits into shards
that run anywhere (:mod:`advml.runtime.executors`: in this process, a process pool, Ray)
and concatenate into the result of one run. A randomised attack draws its numbers per
block of :data:`advml.evasion.base.RANDOM_BLOCK` inputs, seeded by the attack's seed and
the block's index; shards are cut at block edges and each is attacked with its
``offset`` in the whole set, so every input gets the numbers it gets in one run over all
of them, and the result does not depend on the executor, the workers or the shard size.

Examples
--------
>>> from advml.evasion import PGD
>>> from advml.runtime.executors import make_executor
>>> with make_executor("process", workers=2) as ex:  # doctest: +SKIP
...     result = generate_sharded(PGD(eps=0.2, seed=0), model, x, y, executor=ex)
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from advml.evasion.base import RANDOM_BLOCK, AdversarialResult, EvasionAttack, random_block
from advml.models.base import Classifier
from advml.runtime.executors import Executor, LocalExecutor
from advml.validation import check_number

__all__ = ["concatenate_results", "generate_sharded", "shard_bounds"]


def shard_bounds(n: int, shard_size: int, block: int = RANDOM_BLOCK) -> list[tuple[int, int]]:
    """``[start, stop)`` of each shard of ``n`` inputs: ``shard_size`` rounded up to a
    whole number of random blocks of ``block`` inputs (``random_block(model.device)``), so
    no block is split between two shards."""
    check_number("shard_size", shard_size, low=1, integer=True)
    size = -(-shard_size // block) * block
    return [(start, min(start + size, n)) for start in range(0, n, size)]


@dataclass(frozen=True)
class _Shard:
    """One task: its own inputs and their place in the whole set (small: the attack and
    the model travel with the function, once per map call)."""

    x: np.ndarray
    y: np.ndarray | None
    offset: int


@dataclass(frozen=True)
class _AttackShard:
    """The function of every task: the attack and the model, serialised once per
    :meth:`Executor.map` call (``ray.put`` on Ray), not once per shard."""

    attack: EvasionAttack
    model: Classifier

    def __call__(self, shard: _Shard) -> AdversarialResult:
        # numpy in, numpy out: the result travels back without a tensor's shared storage.
        return self.attack.generate(self.model, shard.x, shard.y, offset=shard.offset)


def concatenate_results(parts: list[AdversarialResult], *, seconds: float) -> AdversarialResult:
    """One result from the results of consecutive shards: per-input arrays joined in
    order (queries per input kept, so their total is the sum over shards)."""
    if not parts:
        raise ValueError("concatenate_results needs at least one shard's result")
    first = parts[0]

    def join(name: str) -> np.ndarray:
        return np.concatenate([np.asarray(getattr(p, name)) for p in parts])

    return AdversarialResult(
        x_adv=join("x_adv"),
        y=join("y"),
        y_adv=join("y_adv"),
        success=join("success"),
        l0=join("l0"),
        l2=join("l2"),
        linf=join("linf"),
        queries=join("queries"),
        seconds=seconds,
        attack=first.attack,
        targeted=first.targeted,
        params=first.params,
    )


def generate_sharded(
    attack: EvasionAttack,
    model: Classifier,
    x: np.ndarray | Tensor,
    y: np.ndarray | Tensor | None = None,
    *,
    executor: Executor | None = None,
    shard_size: int | None = None,
) -> AdversarialResult:
    """``attack.generate(model, x, y)`` over shards of ``x``, run by ``executor``.

    Parameters
    ----------
    attack : EvasionAttack
        Any attack; a randomised one needs a ``seed`` for the shards to agree with one
        run (without a seed every run draws afresh anyway).
    model : Classifier
        The model under attack; it travels to the workers once per call, with the
        attack (pickled; on Ray through the object store).
    x : array of shape (n, *model.input_shape)
        Inputs; numpy, or a tensor (moved to the CPU to travel).
    y : array of shape (n,), optional
        Labels, as for :meth:`EvasionAttack.generate`. When omitted, each shard uses the
        model's own predictions, as one run would.
    executor : Executor, optional
        Where the shards run (default: :class:`LocalExecutor`).
    shard_size : int, optional
        Inputs per shard, rounded up to a multiple of the random block (256 inputs on
        the CPU, 16384 on a GPU). Default:
        ``n`` split evenly over ``2 * executor.workers`` shards, so that a slow shard
        does not hold the others up for long.

    Returns
    -------
    AdversarialResult
        Equal to ``attack.generate(model, x, y)`` input by input (``x_adv`` as numpy);
        ``seconds`` is the wall time of the sharded run.
    """
    executor = executor or LocalExecutor()
    xs = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
    ys: np.ndarray | None = None
    if y is not None:
        ys = y.detach().cpu().numpy() if isinstance(y, Tensor) else np.asarray(y)
        if ys.shape[:1] != xs.shape[:1]:
            raise ValueError(f"y has {ys.shape[0]} labels for {xs.shape[0]} inputs of x")
    n = int(xs.shape[0])
    if n == 0:
        return attack.generate(model, xs, ys)
    if shard_size is None:
        shard_size = max(1, -(-n // (2 * executor.workers)))
    bounds = shard_bounds(n, shard_size, random_block(model.device))
    tasks = [_Shard(xs[a:b], None if ys is None else ys[a:b], a) for a, b in bounds]
    start = time.perf_counter()
    parts = list(executor.map(_AttackShard(attack, model), tasks))
    return concatenate_results(parts, seconds=time.perf_counter() - start)
