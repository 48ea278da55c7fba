"""``summary.html`` of ``advml audit --models``: the models ranked on the headline figures.

One self-contained page (no scripts, no external files): a row per model with its
verdict per section and the numbers each verdict rests on (robust accuracy, membership
AUC, TPR at 1% FPR, ...), linking to the model's own report. Models are ranked by their
worst verdicts first (fewest "high risk", then fewest "some risk"), then by robust
accuracy (higher first) and membership AUC (lower first) where measured.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

__all__ = ["rank_models", "render_summary_page"]

_LEVELS = ("fail", "warn", "pass", "unknown")
_LABEL = {"fail": "high risk", "warn": "some risk", "pass": "low risk", "unknown": "not assessed"}
_COLOUR = {"fail": "#c62828", "warn": "#ef6c00", "pass": "#2e7d32", "unknown": "#757575"}


def _verdicts(report: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    sections = report.get("sections", {})
    return {
        name: dict(s["verdict"])
        for name, s in sections.items()
        if isinstance(s, Mapping) and isinstance(s.get("verdict"), Mapping)
    }


def _figures(report: Mapping[str, Any]) -> dict[str, float]:
    """``section.figure`` -> number, from each section's verdict."""
    out: dict[str, float] = {}
    for name, verdict in _verdicts(report).items():
        for key, value in verdict.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                out[f"{name}.{key}"] = float(value)
    return out


def _rank_key(report: Mapping[str, Any]) -> tuple[float, ...]:
    levels = [v.get("level") for v in _verdicts(report).values()]
    figures = _figures(report)
    robust = figures.get("evasion.robust_accuracy", float("-inf"))
    auc = figures.get("membership.membership_auc", float("inf"))
    return (levels.count("fail"), levels.count("warn"), -robust, auc)


def rank_models(reports: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Model names, best first (see the module's docstring for the order)."""
    return sorted(reports, key=lambda name: (_rank_key(reports[name]), name))


def render_summary_page(
    reports: Mapping[str, Mapping[str, Any]], *, run: Mapping[str, Any] | None = None
) -> str:
    """The page as a string of HTML.

    Parameters
    ----------
    reports : mapping
        Each model's ``report.json`` content, by name (its folder under OUT).
    run : mapping, optional
        What ran the audits (executor and workers), stated under the title.
    """
    order = rank_models(reports)
    sections = sorted({s for r in reports.values() for s in _verdicts(r)})
    figure_names = sorted({f for r in reports.values() for f in _figures(r)})
    esc = html.escape
    head = "".join(f"<th>{esc(s)}</th>" for s in sections)
    head += "".join(f"<th class='num'>{esc(f)}</th>" for f in figure_names)
    rows = []
    for rank, name in enumerate(order, start=1):
        report = reports[name]
        verdicts = _verdicts(report)
        figures = _figures(report)
        cells = []
        for s in sections:
            level = str(verdicts.get(s, {}).get("level", "unknown"))
            level = level if level in _LEVELS else "unknown"
            cells.append(
                f"<td><span class='lvl' style='background:{_COLOUR[level]}'>"
                f"{esc(_LABEL[level])}</span></td>"
            )
        for f in figure_names:
            value = figures.get(f)
            cells.append(f"<td class='num'>{'' if value is None else f'{value:.3f}'}</td>")
        model = report.get("model", {})
        dataset = report.get("dataset", {})
        what = f"{model.get('description', '')} on {dataset.get('name', '')}"
        rows.append(
            f"<tr><td class='num'>{rank}</td><td><a href='{esc(name)}/report.html'>{esc(name)}"
            f"</a><br><small>{esc(what)}</small></td>{''.join(cells)}</tr>"
        )
    ran = ""
    if run:
        ran = f"<p>Run with the {esc(str(run.get('executor')))} executor, " + (
            f"{esc(str(run.get('workers')))} worker(s).</p>"
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>advml: audit of {len(reports)} models</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 0.4em 0.7em; text-align: left; }}
th {{ background: #f5f5f5; }}
.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.lvl {{ color: #fff; border-radius: 3px; padding: 0.1em 0.4em; font-size: 0.9em; }}
</style></head><body>
<h1>Audit of {len(reports)} models</h1>
<p>Ranked by their worst verdicts (fewest high-risk, then fewest some-risk sections),
then by robust accuracy (higher first) and membership AUC (lower first). Each name links
to the model's full report.</p>
{ran}
<table><thead><tr><th>#</th><th>model</th>{head}</tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
</body></html>
"""
