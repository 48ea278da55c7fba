"""What an audit will cost in queries, before it sends the first one.

A paid prediction API bills per input. :func:`estimate_queries` adds up, per section,
an upper bound of the inputs the audit's plan asks the model about (query attacks at
their full ``max_queries``), so ``advml audit --target-url`` can say "this audit will
send about N queries" and ``--max-queries`` can refuse a plan above it before any is
sent. Answers read back from the query cache of an earlier run are not paid again, so
a resumed audit costs less than the estimate.
"""

from __future__ import annotations

from typing import Any

from advml.audit import sections as audit_sections
from advml.audit.config import AuditConfig
from advml.errors import QueryBudgetExceededError

__all__ = ["check_cost", "estimate_queries"]

# The query attacks' own default, when neither the config nor queries_per_input sets one.
_DEFAULT_MAX_QUERIES = 1000
_FINGERPRINT_PROBE = 16


def estimate_queries(config: AuditConfig, ds: Any) -> dict[str, int]:
    """Upper bounds of the queries each part of the audit sends (``total`` included).

    The model's access level is not known before the API is asked, so the evasion
    bound assumes scores (Square at every ε), the dearer of the two query plans.
    """
    n = min(config.n_samples, int(ds.x_test.shape[0]))
    parts: dict[str, int] = {"clean predictions and fingerprint": n + _FINGERPRINT_PROBE + 1}
    available = audit_sections.available_sections()
    sections = {
        name: cls
        for name, cls in available.items()
        if config.sections is None or name in config.sections
    }
    if "evasion" in sections:
        per_input = config.queries_per_input
        eps_steps = sum(1 for e in config.eps if e > 0) + (1 if 0.0 in config.eps else 0)
        total = 0
        attacks = set(config.attacks) | {"square", "transfer"}
        for name in sorted(attacks):
            settings = config.attack_settings.get(name, {})
            if name == "square":
                mq = per_input or settings.get("max_queries", _DEFAULT_MAX_QUERIES)
                total += n * int(mq) * eps_steps
            elif name == "hopskipjump":
                mq = per_input or settings.get("max_queries", _DEFAULT_MAX_QUERIES)
                total += n * int(mq)
            elif name == "transfer":
                rounds = int(settings.get("augment_rounds", 2))
                total += (n * 2**rounds + n) * eps_steps
        parts["evasion"] = total
    if "extraction" in sections:
        s = sections["extraction"].settings_for(config)
        rounds = 1 + len(s.get("hardening") or {})
        parts["extraction"] = rounds * (int(s["queries"]) + int(s["n_random"])) + int(
            s["transfer_inputs"]
        )
    if "membership" in sections:
        s = sections["membership"].settings_for(config)
        label_only = int(s["label_only_records"]) * (1 + int(s["label_only_perturbations"]))
        parts["membership"] = 2 * int(s["n_members"]) * (1 + len(s.get("hardening") or {}))
        parts["membership"] += label_only
    if "watermark" in sections:
        key = sections["watermark"].settings_for(config).get("key")
        if key is not None:  # the owner's check of the model: one query per key item
            from advml.watermark import load_key

            try:
                parts["watermark"] = load_key(key).size
            except (FileNotFoundError, ValueError):
                pass  # the section names the bad file when it runs
    parts["total"] = sum(parts.values())
    return parts


def check_cost(config: AuditConfig, ds: Any) -> dict[str, int]:
    """The estimate, or :class:`QueryBudgetExceededError` when it exceeds ``max_queries``."""
    parts = estimate_queries(config, ds)
    if config.max_queries is not None and parts["total"] > config.max_queries:
        detail = ", ".join(f"{k} {v:,}" for k, v in parts.items() if k != "total")
        raise QueryBudgetExceededError(
            f"this audit would send up to {parts['total']:,} queries ({detail}), more than "
            f"max_queries={config.max_queries:,}; raise --max-queries, or lower --n-samples, "
            f"queries_per_input, the ε values or the sections (--sections)"
        )
    return parts
