"""Randomness per block of inputs: a randomised attack gives each input the same numbers
whether the set is attacked whole, in chunks of any size from the block up, or in shards
at block edges (``offset``), on the digits MLP and a user's BatchNorm CNN (eval mode)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from advml.evasion import APGD, FGSM, PGD, Square
from advml.evasion.base import RANDOM_BLOCK, AdversarialResult, EvasionAttack, block_seed
from advml.models import TorchClassifier
from tests._user_models import bn_cnn

ATTACKS: dict[str, Callable[[int | None], EvasionAttack]] = {
    "pgd": lambda b: PGD(eps=0.1, steps=8, random_start=True, seed=3, batch_size=b),
    "apgd": lambda b: APGD(eps=0.1, steps=8, seed=3, batch_size=b),
    "square": lambda b: Square(eps=0.1, max_queries=40, seed=3, batch_size=b),
    "fgsm": lambda b: FGSM(eps=0.1, batch_size=b),
}


@pytest.fixture(scope="module")
def bn_model() -> TorchClassifier:
    """A user's CNN with BatchNorm: random weights, running statistics made non-trivial
    by one pass in train mode, then eval mode (attacks must not switch it)."""
    torch.manual_seed(0)
    net = bn_cnn()
    with torch.no_grad():
        net.train()
        net(torch.rand(64, 1, 8, 8))
    net.eval()
    return TorchClassifier(net, input_shape=(1, 8, 8), n_classes=10, bounds=(0.0, 1.0))


def assert_same(a: AdversarialResult, b: AdversarialResult) -> None:
    np.testing.assert_array_equal(a.x_adv, b.x_adv)
    for name in ("y", "y_adv", "success", "l0", "l2", "linf", "queries"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def join(parts: list[AdversarialResult]) -> dict[str, np.ndarray]:
    return {
        name: np.concatenate([np.asarray(getattr(p, name)) for p in parts])
        for name in ("x_adv", "y", "y_adv", "success", "l0", "l2", "linf", "queries")
    }


@pytest.mark.parametrize("arch", ["mlp", "bn_cnn"])
@pytest.mark.parametrize("name", list(ATTACKS))
def test_whole_chunked_and_sharded_runs_agree(
    name: str,
    arch: str,
    digits_data: Any,
    digits_mlp: TorchClassifier,
    bn_model: TorchClassifier,
) -> None:
    model = digits_mlp if arch == "mlp" else bn_model
    x, y = digits_data.x_test, digits_data.y_test  # 360 inputs: two blocks, one partial
    assert x.shape[0] > RANDOM_BLOCK
    whole = ATTACKS[name](None).generate(model, x, y)
    # Any chunk size from the block up (here also one that is not a multiple of it).
    for batch in (RANDOM_BLOCK, 300, 4096):
        assert_same(whole, ATTACKS[name](batch).generate(model, x, y))
    # Shards at the block edge, each with its offset in the whole set; out of order.
    cut = RANDOM_BLOCK
    second = ATTACKS[name](None).generate(model, x[cut:], y[cut:], offset=cut)
    first = ATTACKS[name](None).generate(model, x[:cut], y[:cut], offset=0)
    joined = join([first, second])
    for key, value in joined.items():
        np.testing.assert_array_equal(value, np.asarray(getattr(whole, key)), err_msg=key)
    assert model.module.training is False


def test_the_numbers_follow_the_input_index_not_the_shard(
    digits_data: Any,
    digits_mlp: TorchClassifier,
) -> None:
    """The same inputs at another index draw other numbers: the offset matters."""
    x, y = digits_data.x_test[:64], digits_data.y_test[:64]
    attack = PGD(eps=0.1, steps=2, random_start=True, seed=3)
    at0 = attack.generate(digits_mlp, x, y, offset=0)
    at256 = attack.generate(digits_mlp, x, y, offset=RANDOM_BLOCK)
    assert not np.array_equal(at0.x_adv, at256.x_adv)
    # Each block, and each chunk start inside a block, has its own seed.
    assert block_seed(3, 0, 0) != block_seed(3, 0, 5) != block_seed(3, 1, 0)


def test_offset_must_be_a_non_negative_integer(digits_mlp: TorchClassifier) -> None:
    x = np.zeros((2, 1, 8, 8), dtype=np.float32)
    with pytest.raises(ValueError, match="offset"):
        PGD(eps=0.1, steps=1).generate(digits_mlp, x, offset=-1)


def test_the_random_block_does_not_cut_a_gpu_chunk_short() -> None:
    from advml.evasion.base import GPU_RANDOM_BLOCK, random_block
    from advml.runtime.device import MAX_GPU_CHUNK, chunk_for_memory

    assert random_block("cpu") == RANDOM_BLOCK == 256
    assert random_block("cuda:0") == GPU_RANDOM_BLOCK
    # The device sizing never gives a chunk larger than the GPU block.
    huge = chunk_for_memory(free_bytes=10**13, bytes_per_input=1.0)
    assert huge <= MAX_GPU_CHUNK <= GPU_RANDOM_BLOCK
