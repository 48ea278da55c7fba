"""Exceptions raised by advml.

Every error a user can cause says which parameter is wrong and what to do about it.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AdvmlError",
    "DatasetUnavailableError",
    "DiskFullError",
    "OutputPathError",
    "QueryBudgetExceededError",
    "UnsupportedModelError",
    "UntrustedFileError",
]


class AdvmlError(Exception):
    """Base class of advml's own errors."""


class UnsupportedModelError(AdvmlError, TypeError):
    """The model lacks a capability the component needs (gradients, scores, layers...)."""


class QueryBudgetExceededError(AdvmlError, RuntimeError):
    """A model's query budget would be exceeded by the next call.

    Raised by an attack's ``generate``, it carries what the paid queries bought:
    ``partial_result`` is the :class:`~advml.evasion.AdversarialResult` of the inputs
    attacked before the budget ran out (``None`` when nothing was finished, and when
    the model itself refuses a call). Raised by Copycat's ``extract``, it is the
    :class:`~advml.extraction.ExtractionResult` of the copy trained on the answers paid for.
    """

    def __init__(self, message: str, *, partial_result: Any = None) -> None:
        super().__init__(message)
        self.partial_result = partial_result


class DiskFullError(AdvmlError, OSError):
    """A file could not be written because its disk (or quota) is full.

    ``filename`` is the file that could not be written; ``errno`` is ``ENOSPC``.
    """

    def __init__(self, message: str, *, filename: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errno = 28  # ENOSPC on every platform advml runs on
        self.filename = filename

    def __str__(self) -> str:
        # OSError's own str shows "[Errno 28] None: 'file'" once filename is set.
        return self.message


class OutputPathError(AdvmlError, ValueError):
    """An output path cannot be written: a file where a folder is needed, no permission..."""


class DatasetUnavailableError(AdvmlError, FileNotFoundError):
    """A dataset's files are neither cached nor downloadable (e.g. offline)."""


class UntrustedFileError(AdvmlError, ValueError):
    """Loading the file would execute code (pickle) and the caller did not trust it."""
