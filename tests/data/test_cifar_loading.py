"""CIFAR-10 from a tiny archive in the real format, and the restricted unpickler."""

from __future__ import annotations

import collections
import dataclasses
import io
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from advml.data import load_dataset, sources
from advml.data.cifar import load_pickle
from advml.errors import UntrustedFileError


class RunsShellCommand:
    """A pickle payload that runs a shell command when unpickled (as an attacker's would)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (self.command,))


def test_the_real_format_loads_with_pixels_in_place(
    make_cifar_archive: Callable[..., Any],
) -> None:
    archive = make_cifar_archive(per_batch=4)
    ds = load_dataset("cifar10", download=False)
    assert ds.x_train.shape == (20, 3, 32, 32) and ds.x_test.shape == (5, 3, 32, 32)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.x_train.min() >= 0.0 and ds.x_train.max() <= 1.0
    assert ds.class_names[0] == "airplane" and ds.class_names[9] == "truck"
    # Batches are concatenated in order 1..5; labels are the pickled lists.
    expected_labels = np.concatenate(
        [archive.batches[f"data_batch_{i}"][b"labels"] for i in range(1, 6)]
    )
    np.testing.assert_array_equal(ds.y_train, expected_labels)
    np.testing.assert_array_equal(ds.y_test, archive.batches["test_batch"][b"labels"])
    # Row layout: 1024 red, then green, then blue values, each plane row-major 32x32.
    row = archive.batches["data_batch_2"][b"data"][1]
    image = ds.x_train[4 + 1]
    for channel, h, w in [(0, 0, 0), (1, 5, 7), (2, 31, 30), (0, 12, 31)]:
        assert image[channel, h, w] * 255 == pytest.approx(row[channel * 1024 + h * 32 + w])
    np.testing.assert_allclose(
        ds.x_test * 255, archive.batches["test_batch"][b"data"].reshape(-1, 3, 32, 32), atol=1e-4
    )


def test_python_2_style_pickles_name_numpy_core(fmt: Any) -> None:
    data = fmt.py2_pickle(fmt.cifar_batch(2, 0))
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in data
    assert b"_codecs" not in data  # bytes are STRING opcodes, as Python 2 wrote them
    batch = load_pickle(io.BytesIO(data), source="batch")
    assert batch[b"data"].dtype == np.uint8 and batch[b"data"].shape == (2, 3072)


def test_pickles_from_python_3_numpy_2_also_load(
    make_cifar_archive: Callable[..., Any],
) -> None:
    make_cifar_archive(dumps=lambda obj: pickle.dumps(obj, protocol=4))
    assert load_dataset("cifar10", download=False).n_train == 20


def test_a_malicious_pickle_is_refused_without_running_it(
    make_cifar_archive: Callable[..., Any], tmp_path: Path, fmt: Any
) -> None:
    marker = tmp_path / "pwned"
    evil = dict(fmt.cifar_batch(4, 1))
    evil[b"data"] = RunsShellCommand(f"touch {marker}")
    make_cifar_archive(replace={"data_batch_1": pickle.dumps(evil, protocol=4)})
    with pytest.raises(UntrustedFileError) as caught:
        load_dataset("cifar10", download=False)
    message = str(caught.value)
    assert "system" in message and "data_batch_1" in message
    assert "trust=True" in message
    assert not marker.exists()


def test_a_malicious_meta_file_is_refused_too(
    make_cifar_archive: Callable[..., Any], tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps({b"label_names": RunsShellCommand(f"touch {marker}")})
    make_cifar_archive(replace={"batches.meta": payload})
    with pytest.raises(UntrustedFileError, match=r"batches.meta"):
        load_dataset("cifar10", download=False)
    assert not marker.exists()


@pytest.mark.parametrize(
    "global_name",
    [b"cbuiltins\neval\n", b"cos\nsystem\n", b"cnumpy\nload\n", b"csubprocess\nPopen\n"],
)
def test_only_numpy_array_globals_are_resolved(global_name: bytes) -> None:
    # A protocol-0 pickle that calls the global with one string argument.
    data = global_name + b"(S'1+1'\ntR."
    with pytest.raises(UntrustedFileError, match="refused"):
        load_pickle(io.BytesIO(data), source="x")


def test_trust_true_loads_a_benign_pickle_the_safe_reader_refuses(
    make_cifar_archive: Callable[..., Any], fmt: Any
) -> None:
    # An OrderedDict batch is harmless but names a global (collections.OrderedDict).
    batch = collections.OrderedDict(fmt.cifar_batch(4, 1))
    make_cifar_archive(replace={"data_batch_1": pickle.dumps(batch, protocol=4)})
    with pytest.raises(UntrustedFileError, match=r"collections.OrderedDict"):
        load_dataset("cifar10", download=False)
    ds = load_dataset("cifar10", download=False, trust=True)
    np.testing.assert_allclose(ds.x_train[:4].reshape(4, -1) * 255, batch[b"data"], atol=1e-4)


def test_archive_without_a_batch_is_explained(
    make_cifar_archive: Callable[..., Any], fmt: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = make_cifar_archive(write=False)
    members = {f"data_batch_{i}": fmt.py2_pickle(fmt.cifar_batch(2, i)) for i in range(1, 5)}
    data = fmt.cifar_tar(members)
    archive.path.parent.mkdir(parents=True)
    archive.path.write_bytes(data)
    (remote,) = sources.REMOTE_FILES["cifar10"]
    monkeypatch.setitem(
        sources.REMOTE_FILES, "cifar10", (dataclasses.replace(remote, sha256=fmt.sha256(data)),)
    )
    with pytest.raises(ValueError, match=r"no member cifar-10-batches-py/data_batch_5"):
        load_dataset("cifar10", download=False)


@pytest.mark.parametrize(
    ("batch", "pattern"),
    [
        ({b"labels": [1]}, r"has no 'data' entry"),
        ({b"data": np.zeros((1, 3072), np.float32), b"labels": [1]}, r"uint8 array of shape"),
        ({b"data": np.zeros((1, 100), np.uint8), b"labels": [1]}, r"uint8 array of shape"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1]}, r"'labels' must be 2 int"),
        ([1, 2, 3], r"holds a list, expected a dict"),
    ],
)
def test_malformed_batches_are_explained(
    make_cifar_archive: Callable[..., Any], batch: Any, pattern: str
) -> None:
    make_cifar_archive(replace={"test_batch": pickle.dumps(batch, protocol=4)})
    with pytest.raises(ValueError, match=pattern):
        load_dataset("cifar10", download=False)


def test_a_truncated_pickle_is_a_value_error() -> None:
    data = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}, protocol=4)
    with pytest.raises(ValueError, match=r"not a valid CIFAR pickle"):
        load_pickle(io.BytesIO(data[:100]), source="batch")
