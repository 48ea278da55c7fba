"""A short plain-text summary of a report for the terminal."""

from __future__ import annotations

from typing import Any

__all__ = ["format_summary"]


def format_summary(report: dict[str, Any]) -> str:
    """The verdict per threat and a table of accuracy under attack, as lines of text."""
    ds, model = report["dataset"], report["model"]
    lines = [
        f"advml audit · {model['description']} · {ds['name']} ({ds['n_evaluated']} test inputs)",
        f"clean accuracy: {model['clean_accuracy']:.1%}",
        "",
    ]
    evasion = report["sections"].get("evasion")
    if evasion is not None:
        attacks = [a for a in evasion["attacks"] if a["points"]]
        if attacks:
            eps_values = sorted({p["eps"] for a in attacks for p in a["points"]})
            header = "accuracy under attack".ljust(24) + "".join(f"ε={v:<6g}" for v in eps_values)
            lines.append(header)
            for a in attacks:
                by_eps = {p["eps"]: p["robust_accuracy"] for p in a["points"]}
                row = f"  {a['name'].upper():<22}" + "".join(
                    f"{by_eps[v]:>6.1%} " if v in by_eps else "   –   " for v in eps_values
                )
                lines.append(row)
            lines.append("")
        for s in evasion["skipped"]:
            lines.append(f"skipped {s['attack']}: {s['reason']}")
    for threat, entry in report["summary"].items():
        for v in entry["verdicts"]:
            lines.append(f"{threat} · {v['title']}: {v['label'].upper()} — {v['text']}")
        for s in entry["not_assessed"]:
            lines.append(f"{threat} · {s['section']}: not run — {s['reason']}")
    return "\n".join(lines)
