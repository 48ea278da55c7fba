"""What a report is, as data: the version of ``report.json``'s schema.

The audit writes reports and this package reads and renders them; both name the schema
version from here, so neither has to import the other for it. Version 2.x only adds
optional fields; a change of meaning bumps the major version (``schema.json``).
"""

from __future__ import annotations

__all__ = ["SCHEMA_VERSION"]

SCHEMA_VERSION = "2.1"
"""2.1: ``environment`` (threads, library versions, CPU capability) added."""
