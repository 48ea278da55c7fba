"""Exceptions raised by advml.

Every error a user can cause says which parameter is wrong and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "AdvmlError",
    "DatasetUnavailableError",
    "QueryBudgetExceededError",
    "UnsupportedModelError",
    "UntrustedFileError",
]


class AdvmlError(Exception):
    """Base class of advml's own errors."""


class UnsupportedModelError(AdvmlError, TypeError):
    """The model lacks a capability the component needs (gradients, scores, layers...)."""


class QueryBudgetExceededError(AdvmlError, RuntimeError):
    """A model's query budget would be exceeded by the next call."""


class DatasetUnavailableError(AdvmlError, FileNotFoundError):
    """A dataset's files are neither cached nor downloadable (e.g. offline)."""


class UntrustedFileError(AdvmlError, ValueError):
    """Loading the file would execute code (pickle) and the caller did not trust it."""
