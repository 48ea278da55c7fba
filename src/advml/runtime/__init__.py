"""Execution support shared by every part: seeding, progress bars, the on-disk result cache."""

from advml.runtime.cache import ResultCache, fingerprint
from advml.runtime.files import atomic_write
from advml.runtime.progress import progress
from advml.runtime.seeding import make_generator, seed_everything

__all__ = [
    "ResultCache",
    "atomic_write",
    "fingerprint",
    "make_generator",
    "progress",
    "seed_everything",
]
