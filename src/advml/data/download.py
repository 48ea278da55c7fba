"""The dataset cache: where files live, how they are downloaded and verified.

Files of a downloadable dataset live in ``advml_home() / <dataset>``. A missing file is
downloaded from the mirrors in :data:`advml.data.sources.REMOTE_FILES` into a temporary
file beside its final place, checked against its SHA-256 and only then renamed into
place, so an interrupted or corrupted download never leaves a partial file behind.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, BinaryIO

from advml.data.sources import RemoteFile
from advml.errors import DatasetUnavailableError
from advml.runtime import atomic_write, progress

__all__ = ["advml_home", "ensure_files", "sha256_file"]

logger = logging.getLogger("advml.data")

_CHUNK = 1 << 20
_TIMEOUT_S = 60.0


def advml_home() -> Path:
    """The folder advml keeps downloaded datasets in.

    ``$ADVML_HOME`` when that environment variable is set and not empty, otherwise
    ``~/.cache/advml``. The folder is not created here.

    Returns
    -------
    pathlib.Path
        An absolute path with ``~`` expanded.
    """
    env = os.environ.get("ADVML_HOME", "").strip()
    home = Path(env).expanduser() if env else Path.home() / ".cache" / "advml"
    return home.absolute()


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, as lowercase hex."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


class _DownloadFailed(Exception):
    """Every mirror of a file failed for reasons outside the file (offline, HTTP error)."""


class _ChecksumMismatch(ValueError):
    """A downloaded or cached file does not have the expected SHA-256."""


def ensure_files(
    dataset: str, files: Sequence[RemoteFile], folder: Path, *, download: bool
) -> list[Path]:
    """Paths of ``files`` in ``folder``, downloading the missing ones when allowed.

    A ``.gz`` file may also be present uncompressed (its name without ``.gz``); that copy
    is used when the compressed one is absent. Every file is checked against its SHA-256.

    Raises
    ------
    DatasetUnavailableError
        When a file is missing and ``download`` is False or the download fails. The
        message lists each missing file with the folder, URL and SHA-256.
    ValueError
        When a file's SHA-256 differs from the expected value (a download with the wrong
        checksum is deleted before this is raised; a file already in the folder is left
        for the user to inspect).
    """
    missing = [f for f in files if _locate(f, folder) is None]
    if missing and not download:
        raise DatasetUnavailableError(
            _unavailable_message(dataset, folder, missing, "download=False was given")
        )
    fresh: set[str] = set()
    failures: list[str] = []
    unavailable: list[RemoteFile] = []
    for remote in missing:
        try:
            _download(remote, folder / remote.filename)
            fresh.add(remote.filename)
        except _DownloadFailed as err:
            unavailable.append(remote)
            failures.append(str(err))
    if unavailable:
        reason = "downloading failed:\n  " + "\n  ".join(failures)
        raise DatasetUnavailableError(_unavailable_message(dataset, folder, unavailable, reason))

    paths = []
    for remote in files:
        path = _locate(remote, folder)
        if path is None:  # deleted between the download and now
            raise DatasetUnavailableError(
                _unavailable_message(dataset, folder, [remote], "the file disappeared")
            )
        if remote.filename not in fresh:
            _verify(path, remote)
        paths.append(path)
    return paths


def _locate(remote: RemoteFile, folder: Path) -> Path | None:
    path = folder / remote.filename
    if path.is_file():
        return path
    if remote.plain_name is not None and (folder / remote.plain_name).is_file():
        return folder / remote.plain_name
    return None


def _verify(path: Path, remote: RemoteFile) -> None:
    expected = remote.sha256 if path.name == remote.filename else remote.plain_sha256
    if expected is None:
        warnings.warn(
            f"{path} is not verified: no published SHA-256 is known for {path.name}",
            stacklevel=4,
        )
        return
    actual = sha256_file(path)
    if actual != expected.lower():
        raise _ChecksumMismatch(
            f"{path} has SHA-256 {actual}, expected {expected}: the file is corrupt, "
            f"truncated or not the official one. Delete it and load again with download=True, "
            f"or replace it with the file from {remote.urls[0]}"
        )


def _download(remote: RemoteFile, dest: Path) -> None:
    """Fetch ``remote`` into ``dest`` from the first mirror that works."""
    created = not dest.parent.exists()
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    mismatches: list[str] = []
    for url in remote.urls:
        try:
            _fetch(url, remote, dest)
            return
        except _ChecksumMismatch as err:
            mismatches.append(str(err))
        except (OSError, http.client.HTTPException, ValueError) as err:
            # URLError, HTTPError, timeouts and dropped connections are OSErrors;
            # a malformed URL is a ValueError.
            errors.append(f"{url}: {err}")
            logger.info("downloading %s failed: %s", url, err)
    if created and not any(dest.parent.iterdir()):
        dest.parent.rmdir()
    if mismatches:
        raise _ChecksumMismatch("; ".join(mismatches))
    raise _DownloadFailed("; ".join(errors) if errors else f"no URL known for {remote.filename}")


def _fetch(url: str, remote: RemoteFile, dest: Path) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "advml"})
    with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
        length = response.headers.get("Content-Length")
        expected_bytes = int(length) if length and length.isdigit() else None
        total = expected_bytes or remote.size
        n_chunks = -(-total // _CHUNK) if total else None
        size = f" ({total / 1e6:.1f} MB)" if total else ""

        def write(out: BinaryIO) -> None:
            # Runs inside atomic_write: any exception (Ctrl-C included) removes the
            # temporary file, so a failed or rejected download leaves nothing behind.
            digest = hashlib.sha256()
            received = 0
            for block in progress(
                _blocks(response), desc=f"downloading {dest.name}{size}", total=n_chunks
            ):
                out.write(block)
                digest.update(block)
                received += len(block)
            if expected_bytes is not None and received != expected_bytes:
                raise ConnectionError(
                    f"connection closed after {received} of {expected_bytes} bytes"
                )
            actual = digest.hexdigest()
            if remote.sha256 is not None and actual != remote.sha256.lower():
                raise _ChecksumMismatch(
                    f"the file downloaded from {url} has SHA-256 {actual}, expected "
                    f"{remote.sha256}; it was deleted. The mirror may serve a changed or "
                    f"damaged file: download it yourself, check it, and place it at {dest}"
                )

        logger.info("downloading %s to %s", url, dest)
        atomic_write(dest, write)
    if remote.sha256 is None:
        warnings.warn(
            f"{dest.name} is not verified: no published SHA-256 is known for it",
            stacklevel=5,
        )


def _blocks(stream: IO[bytes]) -> Iterator[bytes]:
    while block := stream.read(_CHUNK):
        yield block


def _unavailable_message(
    dataset: str, folder: Path, missing: Sequence[RemoteFile], reason: str
) -> str:
    lines = [
        f"dataset {dataset!r} is not available: {len(missing)} file(s) missing from {folder} "
        f"and {reason}.",
        f"Download these files yourself and place them in {folder}:",
    ]
    for remote in missing:
        lines.append(f"  {remote.filename}")
        lines.extend(f"    url:    {url}" for url in remote.urls[:1])
        lines.append(f"    sha256: {remote.sha256 or 'unknown (not verified)'}")
    if any(remote.plain_name for remote in missing):
        lines.append("  (an uncompressed copy, named without .gz, is accepted as well)")
    lines.append(
        f"That folder is <$ADVML_HOME or ~/.cache/advml>/{dataset} (or <root>/{dataset} "
        "when load_dataset gets root=); set the environment variable ADVML_HOME to use "
        "another cache folder."
    )
    return "\n".join(lines)
