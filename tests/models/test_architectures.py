"""Reference architectures: shapes, stable layer names, input checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advml.models import build_architecture
from advml.models.architectures import ARCHITECTURES, build, mlp, small_cnn

SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32)]


@pytest.mark.parametrize("name", ["mlp", "cnn"])
@pytest.mark.parametrize("shape", SHAPES)
def test_output_shape(name: str, shape: tuple[int, int, int]) -> None:
    module = build(name, input_shape=shape, n_classes=7)
    out = module.eval()(torch.rand(5, *shape))
    assert out.shape == (5, 7)


def test_build_is_exported_from_models() -> None:
    assert build_architecture is build
    assert set(ARCHITECTURES) == {"mlp", "cnn"}


@pytest.mark.parametrize("shape", SHAPES)
def test_cnn_layers(shape: tuple[int, int, int]) -> None:
    module = build("cnn", input_shape=shape, n_classes=10, channels=(6, 12), hidden=20)
    layers = dict(module.named_children())
    assert isinstance(layers["conv1"], nn.Conv2d) and layers["conv1"].in_channels == shape[0]
    assert isinstance(layers["conv2"], nn.Conv2d) and layers["conv2"].out_channels == 12
    convs = [name for name, m in module.named_modules() if isinstance(m, nn.Conv2d)]
    assert convs[-1] == "conv2"  # the last convolutional layer, the one pruning targets
    assert layers["fc1"].out_features == 20
    assert layers["out"].out_features == 10


def test_cnn_dropout_only_in_training() -> None:
    torch.manual_seed(0)
    module = small_cnn(input_shape=(1, 8, 8), n_classes=3, dropout=0.5)
    x = torch.rand(4, 1, 8, 8)
    module.eval()
    torch.testing.assert_close(module(x), module(x))
    module.train()
    assert not torch.equal(module(x), module(x))


def test_mlp_layers() -> None:
    module = mlp(input_shape=(1, 8, 8), n_classes=10, hidden=(32, 16, 8))
    names = [n for n, _ in module.named_children()]
    assert names == ["flatten", "fc1", "relu1", "fc2", "relu2", "fc3", "relu3", "out"]
    assert module.fc1.in_features == 64
    assert [module.fc1.out_features, module.fc2.out_features, module.fc3.out_features] == [
        32,
        16,
        8,
    ]
    default = mlp(input_shape=(4,), n_classes=2)
    assert [n for n, _ in default.named_children() if n.startswith("fc")] == ["fc1", "fc2"]
    assert default.fc1.out_features == 256


def test_mlp_dropout_layers() -> None:
    without = mlp(input_shape=(4,), n_classes=2, hidden=(8, 8))
    assert not any(isinstance(m, nn.Dropout) for m in without.modules())
    with_dropout = mlp(input_shape=(4,), n_classes=2, hidden=(8, 8), dropout=0.3)
    drops = [m for m in with_dropout.modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == 2 and all(d.p == 0.3 for d in drops)


def test_same_seed_same_weights() -> None:
    torch.manual_seed(3)
    a = build("cnn", input_shape=(1, 8, 8), n_classes=10)
    torch.manual_seed(3)
    b = build("cnn", input_shape=(1, 8, 8), n_classes=10)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((8, 8), "input_shape"),
        ((64,), "input_shape"),
        ((1, 1, 8, 8), "input_shape"),
        ((1, 3, 3), "4x4"),
        ((1, 8, 2), "4x4"),
    ],
)
def test_cnn_rejects_bad_input_shape(shape: tuple[int, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build("cnn", input_shape=shape, n_classes=10)


def test_unknown_architecture_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"resnet.*cnn, mlp"):
        build("resnet", input_shape=(1, 8, 8), n_classes=10)


def test_unknown_setting_raises() -> None:
    with pytest.raises(TypeError, match="width"):
        build("mlp", input_shape=(1, 8, 8), n_classes=10, width=3)
