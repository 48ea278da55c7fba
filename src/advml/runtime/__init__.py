"""Execution support shared by every part: seeding, progress bars."""

from advml.runtime.progress import progress
from advml.runtime.seeding import make_generator, seed_everything

__all__ = ["make_generator", "progress", "seed_everything"]
