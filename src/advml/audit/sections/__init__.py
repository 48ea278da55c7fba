"""The audit's sections, one module per family.

Each public module here defines ``SECTION``, a subclass of
:class:`~advml.audit.sections.base.AuditSection`. The audit discovers every module of
this package, so a family joins the audit by adding a module (plus, for the report, an
HTML renderer in :mod:`advml.report.sections` and a JSON Schema fragment in
``advml/report/schemas/``), and nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil

from advml.audit.sections.base import (
    AuditContext,
    AuditSection,
    SectionOutput,
    Verdict,
)

__all__ = [
    "AuditContext",
    "AuditSection",
    "SectionOutput",
    "Verdict",
    "available_sections",
]


def available_sections() -> dict[str, type[AuditSection]]:
    """Every section, by name, in the order the report shows them."""
    found: list[type[AuditSection]] = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        section = getattr(module, "SECTION", None)
        if not (isinstance(section, type) and issubclass(section, AuditSection)):
            raise ImportError(f"{module.__name__} defines no SECTION (an AuditSection subclass)")
        found.append(section)
    found.sort(key=lambda s: (s.order, s.name))
    return {s.name: s for s in found}
