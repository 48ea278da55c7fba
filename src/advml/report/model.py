"""What a report is, as data: the version of ``report.json``'s schema.

The audit writes reports and this package reads and renders them; both name the schema
version from here, so neither has to import the other for it. Version 2.x only adds
optional fields; a change of meaning bumps the major version (``schema.json``).
"""

from __future__ import annotations

__all__ = ["SCHEMA_VERSION"]

SCHEMA_VERSION = "2.2"
"""2.1: ``environment`` (threads, library versions, CPU capability) added. 2.2: 95 %
intervals with counts beside the rates (``*_interval``, verdict ``*_low``/``*_high``),
``reproducibility`` (versions, git hash, fingerprints, config YAML, every step's time and
queries), threshold checks against the safe end of the interval."""
