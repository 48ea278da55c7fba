"""The audit: one call that runs the applicable attacks against a model and reports."""

from advml.audit.config import AuditConfig, ConfigValidationError
from advml.audit.run import SCHEMA_VERSION, AuditResult, load_report, plan, run_audit

__all__ = [
    "SCHEMA_VERSION",
    "AuditConfig",
    "AuditResult",
    "ConfigValidationError",
    "load_report",
    "plan",
    "run_audit",
]
