"""The cache and the downloader: checksums, atomic writes, clear errors when offline."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from advml.data import advml_home, load_dataset, sources
from advml.data import download as download_module
from advml.errors import DatasetUnavailableError


def files_in(folder: Path) -> list[str]:
    """Every file under ``folder`` (hidden temporary files included)."""
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_advml_home_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ADVML_HOME", str(tmp_path / "cache"))
    assert advml_home() == tmp_path / "cache"
    monkeypatch.setenv("ADVML_HOME", "~/somewhere")
    assert advml_home() == Path.home() / "somewhere"
    for unset in (
        lambda: monkeypatch.delenv("ADVML_HOME"),
        lambda: monkeypatch.setenv("ADVML_HOME", ""),
    ):
        unset()
        assert advml_home() == Path.home() / ".cache" / "advml"


def test_missing_files_with_download_false_name_folder_url_and_checksum(
    advml_home_dir: Path,
) -> None:
    with pytest.raises(DatasetUnavailableError) as caught:
        load_dataset("fashion-mnist", download=False)
    message = str(caught.value)
    folder = advml_home_dir / "fashion-mnist"
    assert f"missing from {folder}" in message and "download=False" in message
    for remote in sources.REMOTE_FILES["fashion-mnist"]:
        assert remote.filename in message
        assert remote.urls[0] in message
        assert str(remote.sha256) in message
    assert "ADVML_HOME" in message
    assert isinstance(caught.value, FileNotFoundError)
    assert not folder.exists()


def test_offline_download_fails_cleanly(advml_home_dir: Path) -> None:
    with pytest.raises(DatasetUnavailableError) as caught:
        load_dataset("cifar10")
    message = str(caught.value)
    assert "downloading failed" in message and "network disabled" in message
    assert "cifar-10-python.tar.gz" in message
    assert "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce" in message
    assert files_in(advml_home_dir) == []
    assert not (advml_home_dir / "cifar10").exists()


def test_download_fetches_verifies_and_caches(
    make_idx_dataset: Callable[..., Any],
    serve: Callable[..., list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    files = make_idx_dataset("mnist", write=False)
    remotes = sources.REMOTE_FILES["mnist"]
    bars: list[tuple[str, int | None]] = []

    def recording_progress(iterable: Iterable[Any], *, desc: str, total: int | None) -> Any:
        bars.append((desc, total))
        return iterable

    monkeypatch.setattr(download_module, "progress", recording_progress)
    requested = serve({r.urls[0]: files.contents[r.filename] for r in remotes})
    ds = load_dataset("mnist")
    np.testing.assert_array_equal(ds.y_train, files.y_train)
    assert requested == [r.urls[0] for r in remotes]
    assert files_in(files.folder) == sorted(files.contents)  # no temporary files left
    for name, data in files.contents.items():
        assert (files.folder / name).read_bytes() == data
    assert [desc.split()[1] for desc, _ in bars] == [r.filename for r in remotes]
    assert all(total == 1 for _, total in bars)  # tiny files: one 1 MiB chunk each
    # The second load comes from the cache: no request at all.
    requested_again = serve({})
    assert load_dataset("mnist").n_test == 10
    assert requested_again == []


def test_download_falls_back_to_the_next_mirror(
    make_idx_dataset: Callable[..., Any], serve: Callable[..., list[str]]
) -> None:
    files = make_idx_dataset("fashion-mnist", write=False)
    remotes = sources.REMOTE_FILES["fashion-mnist"]
    requested = serve({r.urls[1]: files.contents[r.filename] for r in remotes})
    assert load_dataset("fashion-mnist").n_train == 20
    assert requested == [url for r in remotes for url in r.urls[:2]]


def test_a_download_with_the_wrong_checksum_is_deleted_and_raises(
    make_idx_dataset: Callable[..., Any], serve: Callable[..., list[str]]
) -> None:
    files = make_idx_dataset("mnist", write=False)
    remotes = sources.REMOTE_FILES["mnist"]
    table = {url: files.contents[r.filename] for r in remotes for url in r.urls}
    table[remotes[0].urls[0]] = b"tampered" + table[remotes[0].urls[0]]
    table[remotes[0].urls[1]] = b"also tampered"
    serve(table)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz has SHA-256 .* deleted"):
        load_dataset("mnist")
    assert files_in(files.folder) == []


@pytest.mark.parametrize(
    "response",
    [
        lambda fmt, data: fmt.FakeResponse(data, fail_after=len(data) // 2),
        lambda fmt, data: fmt.FakeResponse(data[: len(data) // 2], length=len(data)),
    ],
    ids=["connection-reset", "closed-early"],
)
def test_an_interrupted_download_leaves_no_partial_file(
    make_cifar_archive: Callable[..., Any],
    serve: Callable[..., list[str]],
    fmt: Any,
    response: Callable[[Any, bytes], Any],
) -> None:
    archive = make_cifar_archive(write=False)
    (remote,) = sources.REMOTE_FILES["cifar10"]
    serve({remote.urls[0]: lambda: response(fmt, archive.data)})
    with pytest.raises(DatasetUnavailableError, match=r"downloading failed"):
        load_dataset("cifar10")
    assert files_in(archive.path.parent) == []


def test_ctrl_c_during_a_download_leaves_no_partial_file(
    make_cifar_archive: Callable[..., Any], serve: Callable[..., list[str]], fmt: Any
) -> None:
    archive = make_cifar_archive(write=False)

    class Interrupted(fmt.FakeResponse):  # type: ignore[name-defined,misc]
        def read(self, size: int | None = -1) -> bytes:
            if self.tell() > 100:
                raise KeyboardInterrupt
            return super().read(50)

    (remote,) = sources.REMOTE_FILES["cifar10"]
    serve({remote.urls[0]: lambda: Interrupted(archive.data)})
    with pytest.raises(KeyboardInterrupt):
        load_dataset("cifar10")
    assert files_in(archive.path.parent) == []


def test_a_cached_file_with_the_wrong_checksum_is_kept_and_explained(
    make_cifar_archive: Callable[..., Any], serve: Callable[..., list[str]]
) -> None:
    archive = make_cifar_archive()
    archive.path.write_bytes(archive.data[:-10])
    requested = serve({})
    with pytest.raises(ValueError) as caught:
        load_dataset("cifar10")
    message = str(caught.value)
    assert str(archive.path) in message and "expected" in message and "Delete it" in message
    assert archive.path.exists()  # the user's file is not deleted behind their back
    assert requested == []


def test_a_file_without_a_known_checksum_loads_with_a_warning(
    make_cifar_archive: Callable[..., Any],
    serve: Callable[..., list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    archive = make_cifar_archive(write=False)
    (remote,) = sources.REMOTE_FILES["cifar10"]
    monkeypatch.setitem(
        sources.REMOTE_FILES, "cifar10", (dataclasses.replace(remote, sha256=None),)
    )
    serve({remote.urls[0]: archive.data})
    with pytest.warns(UserWarning, match=r"not verified"):
        assert load_dataset("cifar10").n_test == 5
    with pytest.warns(UserWarning, match=r"cifar-10-python.tar.gz is not verified"):
        load_dataset("cifar10")


def test_the_checksum_table_holds_the_published_values() -> None:
    table = {(name, f.filename): f.sha256 for name, fs in sources.REMOTE_FILES.items() for f in fs}
    assert table["mnist", "train-images-idx3-ubyte.gz"] == (
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
    )
    assert table["fashion-mnist", "t10k-labels-idx1-ubyte.gz"] == (
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"
    )
    assert table["cifar10", "cifar-10-python.tar.gz"] == (
        "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
    )
    for files in sources.REMOTE_FILES.values():
        for f in files:
            assert f.sha256 is not None and len(f.sha256) == 64
            assert all(url.endswith("/" + f.filename) for url in f.urls)
