"""Writing files so that an interruption never leaves a half-written one behind."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from advml.errors import DiskFullError

__all__ = ["atomic_write", "check_file_version"]

# errno values that mean "no room": the disk is full, or the user's quota is spent.
_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def atomic_write(
    path: str | os.PathLike[str], data: bytes | str | Callable[[BinaryIO], object]
) -> Path:
    """Write ``data`` (bytes, text, or a function writing to a binary file) to ``path``.

    The content goes to a temporary file in the same folder, which then replaces
    ``path`` in one rename: readers see the old file or the new one, never a part.
    The file gets the usual permissions (0o666 less the umask).

    Raises
    ------
    DiskFullError
        When the disk (or quota) is full: names the file, the bytes it needed and the
        free space. ``path`` is left as it was, and so is every other file.
    """
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    except OSError as err:
        if err.errno in _NO_SPACE:  # not even an empty file (no free inodes)
            raise _disk_full(target, payload, 0) from err
        raise
    try:
        with os.fdopen(fd, "wb") as f:
            _write(target, f, payload)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except OSError as err:
        written = _size(tmp)
        Path(tmp).unlink(missing_ok=True)
        if err.errno in _NO_SPACE:
            raise _disk_full(target, payload, written) from err
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _write(target: Path, f: BinaryIO, payload: bytes | Callable[[BinaryIO], object]) -> None:
    """Put ``payload`` into ``f``, the open temporary file that becomes ``target``.

    The one place that writes bytes (tests replace it to simulate a full disk).
    """
    if isinstance(payload, bytes):
        f.write(payload)
    else:
        payload(f)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _disk_full(
    target: Path, payload: bytes | Callable[[BinaryIO], object], written: int
) -> DiskFullError:
    try:
        free = f"{shutil.disk_usage(target.parent).free:,} bytes free"
    except OSError:
        free = "free space unknown"
    needed = (
        f"{len(payload):,} bytes needed"
        if isinstance(payload, bytes)
        else f"more than the {written:,} bytes written before it stopped needed"
    )
    return DiskFullError(
        f"could not write {target}: no space left on the device ({needed}, {free} in "
        f"{target.parent}); free some space and run the command again. Files written "
        f"before it are kept",
        filename=str(target),
    )


def check_file_version(
    path: str | os.PathLike[str], version: object, newest: int, what: str
) -> int:
    """The format ``version`` a file states, checked: a whole number from 1 to ``newest``.

    Refuses a missing or damaged one as a damaged ``what`` (``"advml file"``,
    ``"watermark key"``), and a larger one as written by a newer advml, asking for an upgrade.
    """
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"{str(path)!r} is a damaged {what}: invalid version {version!r}")
    if version > newest:
        raise ValueError(
            f"{str(path)!r} was written by a newer advml ({what} format {version}, this one "
            f"reads up to {newest}); upgrade advml"
        )
    return version
