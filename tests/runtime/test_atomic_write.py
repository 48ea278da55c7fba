"""atomic_write: all or nothing, and a full disk is named, not a bare OSError."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

from advml.errors import DiskFullError
from advml.runtime import files
from advml.runtime.files import atomic_write


def _full_disk(monkeypatch: pytest.MonkeyPatch, code: int = errno.ENOSPC) -> None:
    def write(target: Path, f: Any, payload: Any) -> None:
        f.write(b"x" * 10)
        raise OSError(code, "No space left on device")

    monkeypatch.setattr(files, "_write", write)


@pytest.mark.parametrize("data", ["some text", b"\x00" * 100, lambda f: f.write(b"abc")])
def test_a_full_disk_names_the_file_and_keeps_the_old_one(
    data: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "report.html"
    target.write_text("the previous report")
    _full_disk(monkeypatch)
    with pytest.raises(DiskFullError) as info:
        atomic_write(target, data)
    message = str(info.value)
    assert message.startswith(f"could not write {target}: no space left on the device")
    assert "bytes free" in message and "free some space" in message
    if isinstance(data, str | bytes):
        size = len(data.encode() if isinstance(data, str) else data)
        assert f"{size:,} bytes needed" in message
    else:
        assert "more than the 10 bytes written" in message
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert isinstance(info.value, OSError)
    assert target.read_text() == "the previous report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_other_os_errors_pass_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _full_disk(monkeypatch, errno.EIO)
    with pytest.raises(OSError) as info:
        atomic_write(tmp_path / "a.txt", "x")
    assert not isinstance(info.value, DiskFullError) and info.value.errno == errno.EIO
    assert list(tmp_path.iterdir()) == []


def test_a_write_replaces_the_file(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    atomic_write(target, "one")
    atomic_write(target, "two")
    assert target.read_text() == "two"
