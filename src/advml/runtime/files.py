"""Writing files so that an interruption never leaves a half-written one behind."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "check_file_version"]


def atomic_write(
    path: str | os.PathLike[str], data: bytes | str | Callable[[BinaryIO], object]
) -> Path:
    """Write ``data`` (bytes, text, or a function writing to a binary file) to ``path``.

    The content goes to a temporary file in the same folder, which then replaces
    ``path`` in one rename: readers see the old file or the new one, never a part.
    The file gets the usual permissions (0o666 less the umask).
    """
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, str):
                f.write(data.encode("utf-8"))
            elif isinstance(data, bytes):
                f.write(data)
            else:
                data(f)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


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
