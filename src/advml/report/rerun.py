"""Compare a repeated audit with the report it repeats: which figures moved, and whether
beyond their 95 % intervals.

``advml audit --rerun report.json`` runs the audit again from the report's own config and
prints :func:`format_comparison` of :func:`compare_reports`. On the same machine, with
the same versions and thread counts (``reproducibility``), every figure is the same
exactly; elsewhere a figure may move, and a move inside the original interval is
sampling-level noise, one beyond it is a finding.
"""

from __future__ import annotations

from typing import Any

__all__ = ["compare_reports", "format_comparison"]


def _figures(report: dict[str, Any]) -> dict[str, tuple[float, float | None, float | None]]:
    """Each verdict number with its interval: ``section.number -> (value, low, high)``."""
    out: dict[str, tuple[float, float | None, float | None]] = {}
    for name, section in report.get("sections", {}).items():
        verdict = section.get("verdict", {})
        for key, value in verdict.items():
            if key.endswith(("_low", "_high")):
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            low, high = verdict.get(f"{key}_low"), verdict.get(f"{key}_high")
            out[f"{name}.{key}"] = (
                float(value),
                None if low is None else float(low),
                None if high is None else float(high),
            )
    return out


def compare_reports(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """Every figure of ``old``'s verdicts against ``new``'s.

    ``status`` is ``same`` (equal), ``within`` (moved but inside the old 95 % interval),
    ``beyond`` (outside it), ``moved`` (changed, no interval to judge by) or ``missing``
    (not in the new report).
    """
    before, after = _figures(old), _figures(new)
    rows: list[dict[str, Any]] = []
    for figure, (was, low, high) in before.items():
        now = after.get(figure)
        row: dict[str, Any] = {"figure": figure, "before": was}
        if now is None:
            row.update(after=None, status="missing")
        else:
            value = now[0]
            row["after"] = value
            if value == was:
                row["status"] = "same"
            elif low is not None and high is not None:
                row["low"], row["high"] = low, high
                row["status"] = "within" if low <= value <= high else "beyond"
            else:
                row["status"] = "moved"
        rows.append(row)
    return rows


def format_comparison(rows: list[dict[str, Any]]) -> str:
    """The comparison as lines for the terminal: the figures that moved first."""
    moved = [r for r in rows if r["status"] != "same"]
    lines = [
        f"{len(rows)} figures compared: {sum(r['status'] == 'same' for r in rows)} the same, "
        f"{sum(r['status'] == 'within' for r in rows)} moved within their 95% interval, "
        f"{sum(r['status'] == 'beyond' for r in rows)} beyond it, "
        f"{sum(r['status'] in ('moved', 'missing') for r in rows)} changed without an interval "
        "or missing."
    ]
    for r in moved:
        interval = f" (interval {r['low']:.4g} to {r['high']:.4g})" if "low" in r else ""
        after = "missing" if r["after"] is None else f"{r['after']:.4g}"
        lines.append(f"  {r['status']:>7}  {r['figure']}: {r['before']:.4g} -> {after}{interval}")
    return "\n".join(lines)
