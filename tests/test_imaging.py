"""advml.imaging: the image operations shared by attacks and defences."""

from __future__ import annotations

import ast
from pathlib import Path

import torch

import advml
from advml.imaging import add_gaussian_noise, median_filter, random_shift, reduce_bit_depth


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


def test_imaging_is_a_leaf_and_evasion_no_longer_reaches_into_defences() -> None:
    # The shared operations sit below every family: they import no advml module, and EOT
    # (evasion) takes them from here instead of from defences/preprocess.
    root = Path(advml.__file__).parent

    def advml_imports(path: Path) -> set[str]:
        tree = ast.parse(path.read_text())
        found = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        found |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        return {m for m in found if m.startswith("advml")}

    assert advml_imports(root / "imaging.py") == set()
    eot = advml_imports(root / "evasion" / "eot.py")
    assert "advml.imaging" in eot
    assert not any(m.startswith("advml.defences") for m in eot)


def test_bit_depth_keeps_two_to_the_bits_levels_inside_the_bounds() -> None:
    x = torch.linspace(-1.0, 1.0, 101).reshape(1, 1, 1, 101)
    out = reduce_bit_depth(x, 2, (-1.0, 1.0))
    # 2 bits: the levels -1, -1/3, 1/3, 1 (float32 arithmetic of the rescaling).
    levels = torch.tensor([-1.0, -1.0 / 3, 1.0 / 3, 1.0])
    near = torch.isclose(out.reshape(-1, 1), levels[None, :], rtol=1e-6, atol=1e-6)
    assert near.any(dim=1).all()  # every output is one of the levels
    assert near.any(dim=0).all()  # and every level is used


def test_a_median_filter_removes_a_speck_and_keeps_an_edge() -> None:
    x = torch.zeros(1, 1, 7, 7)
    x[0, 0, 3, 3] = 1.0
    assert median_filter(x, 3).abs().max().item() == 0.0
    edge = torch.zeros(1, 2, 6, 6)
    edge[..., 3:] = 1.0
    assert torch.equal(median_filter(edge, 3), edge)
    assert torch.equal(median_filter(edge, 1), edge)


def test_gaussian_noise_is_seeded_relative_to_the_bounds_and_clipped() -> None:
    x = torch.full((400, 1, 4, 4), 5.0)
    a = add_gaussian_noise(x, 0.01, (0.0, 10.0), torch.Generator().manual_seed(3))
    b = add_gaussian_noise(x, 0.01, (0.0, 10.0), torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    # Standard deviation 0.01 of a width of 10: 0.1, measured on 6400 draws (se ~0.0009).
    assert abs(float((a - x).std()) - 0.1) < 0.005
    wide = add_gaussian_noise(x, 10.0, (0.0, 10.0), torch.Generator().manual_seed(3))
    assert float(wide.min()) == 0.0 and float(wide.max()) == 10.0
