"""random_shift: each image moves by its own offset within the limit, edges repeat."""

from __future__ import annotations

import torch

from advml.models.augment import random_shift


def test_each_image_moves_by_its_own_offset_within_the_limit() -> None:
    # One bright pixel in the middle of each 9 x 9 image: its new place is the offset.
    x = torch.zeros(200, 1, 9, 9)
    x[:, 0, 4, 4] = 1.0
    out = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert (out.flatten(1).sum(1) == 1).all()  # nothing lost, nothing added
    where = out.flatten(1).argmax(1)
    dy, dx = where // 9 - 4, where % 9 - 4
    assert dy.abs().max() == 2 and dx.abs().max() == 2
    assert len({(int(a), int(b)) for a, b in zip(dy, dx, strict=True)}) == 25  # all offsets
    again = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_entering_pixels_repeat_the_edge_and_zero_is_identity() -> None:
    x = torch.arange(16.0).reshape(1, 1, 4, 4).repeat(50, 3, 1, 1)
    out = random_shift(x, 1, torch.Generator().manual_seed(1))
    # Only values of the image itself appear (replicate padding), per channel alike.
    assert set(out.unique().tolist()) <= set(range(16))
    assert torch.equal(out[:, 0], out[:, 2])
    assert random_shift(x, 0, torch.Generator()) is x
