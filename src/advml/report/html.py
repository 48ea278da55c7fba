"""The self-contained HTML report: one file, images inline, readable by non-specialists.

The page is a scorecard per threat (integrity, confidentiality, ownership) with
plain-language verdicts, then one part per section, each drawn by its renderer in
:mod:`advml.report.sections`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from advml.report.components import LEVEL_COLOURS, esc, pct, table
from advml.report.sections import renderer

__all__ = ["config_yaml", "render_html"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:960px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
.sub{color:#666;margin-top:0}
ul.glance{list-style:none;padding-left:0} ul.glance li{margin:.4em 0} .checklist td{text-align:left}
@media print{body{max-width:none;margin:0} .card,figure,table,li{break-inside:avoid}
h2{break-after:avoid} a{color:inherit;text-decoration:none}}
.card{border:1px solid #ddd;border-radius:8px;padding:1em 1.2em;margin:1em 0}
.level{display:inline-block;color:#fff;border-radius:4px;padding:.1em .6em;font-weight:600}
.scorecard{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:1em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:right}
th{background:#f6f6f6} td:first-child,th:first-child{text-align:left}
table.kv td{text-align:left}
figure{margin:1em 0} figcaption{color:#555;font-size:.9em;margin-top:.3em}
img{max-width:100%} code{background:#f4f4f4;padding:0 .2em}
pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:.85em}
"""

_THREAT_TITLES = {
    "integrity": "Integrity",
    "confidentiality": "Confidentiality",
    "ownership": "Ownership",
}
_LEVEL_WORDS = {
    "pass": "holds up",
    "warn": "at risk",
    "fail": "vulnerable",
    "unknown": "not assessed",
}


def render_html(
    report: dict[str, Any], *, artifacts: dict[str, dict[str, np.ndarray]] | None = None
) -> str:
    """The whole report as one HTML page (figures embedded as PNG data URIs).

    ``artifacts`` holds each section's arrays for pictures (example images, curves);
    without them the page shows the numbers only.
    """
    artifacts = artifacts or {}
    ds, model = report["dataset"], report["model"]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>advml audit: {esc(ds['name'])}</title><style>{_CSS}</style></head><body>",
        "<h1>How secure is this model?</h1>",
        f"<p class='sub'>advml {esc(report['advml_version'])} audit of "
        f"{esc(model['description'])} on <b>{esc(ds['name'])}</b>, {esc(report['created'])}</p>",
        _at_a_glance(report),
        "<section id='summary'><h2>Summary</h2><div class='scorecard'>",
    ]
    for threat, entry in report["summary"].items():
        colour = LEVEL_COLOURS.get(entry["level"], "#555")
        parts.append(
            f"<div class='card' id='threat-{esc(threat)}'><b>{esc(_THREAT_TITLES[threat])}</b> "
            f"<span class='level' style='background:{colour}'>"
            f"{esc(_LEVEL_WORDS[entry['level']])}</span>"
            f"<p class='sub'>{esc(entry['question'])}</p>"
        )
        for v in entry["verdicts"]:
            c = LEVEL_COLOURS.get(v["level"], "#555")
            parts.append(
                f"<p><a href='#{esc(v['section'])}'>{esc(v['title'])}</a>: "
                f"<span style='color:{c};font-weight:600'>{esc(v['label'])}</span>. "
                f"{esc(v['text'])}</p>"
            )
        for s in entry["not_assessed"]:
            parts.append(f"<p class='sub'>{esc(s['section'])} not run: {esc(s['reason'])}</p>")
        if not entry["verdicts"] and not entry["not_assessed"]:
            parts.append("<p class='sub'>No check of this threat was part of this audit.</p>")
        parts.append("</div>")
    parts.append("</div>")
    checks = report.get("thresholds", {}).get("checks", [])
    if checks:
        rows = [
            (
                c["figure"],
                f"fail if {c['fail_if']} {c['threshold']:g}",
                "–" if c["value"] is None else f"{c['value']:.4g}",
                "–"
                if c.get("compared") is None
                else f"{c['compared']:.4g}: {c.get('compared_what', 'the figure')}",
                "met" if c["passed"] else f"NOT MET {c.get('problem', '')}".strip(),
            )
            for c in checks
        ]
        parts.append("<div id='thresholds'><h3>Thresholds</h3>")
        parts.append(
            table(("figure", "rule", "value", "compared (safe for the owner)", "result"), rows)
        )
        parts.append("</div>")
    parts += [
        "</section>",
        "<section id='model'><h2>Model and data</h2><table class='kv'>",
        f"<tr><th>model</th><td>{esc(model['description'])}</td></tr>",
        f"<tr><th>source</th><td>{esc(str(model.get('file', model['source'])))}</td></tr>",
        f"<tr><th>capabilities</th><td>gradients: {model['has_gradients']}, "
        f"scores: {model['has_scores']}</td></tr>",
        f"<tr><th>dataset</th><td>{esc(ds['description'])}</td></tr>",
        f"<tr><th>inputs evaluated</th><td>{ds['n_evaluated']} test inputs, shape "
        f"{tuple(ds['input_shape'])}, values in "
        f"[{ds['bounds'][0]:g}, {ds['bounds'][1]:g}]</td></tr>",
        _data_use_row(ds),
        f"<tr><th>clean accuracy</th><td>{pct(model['clean_accuracy'])}</td></tr>",
        _environment_row(report.get("environment")),
        _timing_row(report),
        "</table></section>",
    ]
    for name, section in report["sections"].items():
        body = renderer(name)(section, artifacts.get(name, {}), report)
        parts.append(
            f"<section id='{esc(name)}'><h2>{esc(section['title'])}</h2>\n{body}\n</section>"
        )
    parts.append(_records_links(report.get("examples_files")))
    if report.get("skipped_sections"):
        parts.append("<section id='skipped'><h2>Not run</h2><ul>")
        parts += [
            f"<li><b>{esc(s['title'])}</b>: {esc(s['reason'])}</li>"
            for s in report["skipped_sections"]
        ]
        parts.append("</ul></section>")
    parts += [
        "<section id='settings'><h2>How to repeat this audit</h2>",
        _repeat_text(report),
        f"<p class='sub'>Took {report['seconds']:.0f} s. Schema version "
        f"{esc(report['schema_version'])}.</p></section></body></html>",
    ]
    return "\n".join(parts)


_SEVERITY = {"fail": 0, "warn": 1, "unknown": 2, "pass": 3}


def _pc(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def headline(name: str, verdict: dict[str, Any]) -> str:
    """One sentence for a reader who is not a specialist: the risk and its interval."""
    v = verdict
    if name == "evasion" and v.get("robust_accuracy") is not None and "robust_accuracy_low" in v:
        return (
            f"An attacker who may change each input value by {v['eps']:g} of its range "
            f"brings accuracy from {_pc(v['clean_accuracy'])} to {_pc(v['robust_accuracy'])} "
            f"(95% interval {_pc(v['robust_accuracy_low'])} to "
            f"{_pc(v['robust_accuracy_high'])})."
        )
    if name == "defences" and v.get("defended_robust_accuracy_low") is not None:
        return (
            f"The best input-cleansing defence keeps {_pc(v['defended_robust_accuracy'])} "
            f"accuracy under an adaptive attack at ε = {v['eps']:g} (95% interval "
            f"{_pc(v['defended_robust_accuracy_low'])} to "
            f"{_pc(v['defended_robust_accuracy_high'])})."
        )
    if name == "membership" and v.get("membership_auc_low") is not None:
        return (
            f"An attacker tells a training record from an unseen one "
            f"{_pc(v['membership_auc'])} of the time (95% interval "
            f"{_pc(v['membership_auc_low'])} to {_pc(v['membership_auc_high'])}; 50% is "
            "guessing)."
        )
    if name == "inversion" and "recognition_rate_low" in v:
        return (
            f"{v['recognised']} of {v['n_classes_reconstructed']} classes reconstructed from "
            f"the model were recognised (95% interval {_pc(v['recognition_rate_low'])} to "
            f"{_pc(v['recognition_rate_high'])}; chance {_pc(v['chance'])})."
        )
    text = str(v.get("text", ""))
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


def _at_a_glance(report: dict[str, Any]) -> str:
    """The one-screen summary: each section's risk in one sentence, most severe first."""
    rows = sorted(
        report["sections"].items(),
        key=lambda item: (_SEVERITY.get(item[1]["verdict"]["level"], 2), item[0]),
    )
    items = []
    for name, section in rows:
        v = section["verdict"]
        colour = LEVEL_COLOURS.get(v["level"], "#555")
        items.append(
            f"<li><span class='level' style='background:{colour}'>{esc(v['label'])}</span> "
            f"<a href='#{esc(name)}'><b>{esc(section['title'])}</b></a>: "
            f"{esc(headline(name, v))}</li>"
        )
    for s in report.get("skipped_sections", []):
        items.append(f"<li class='sub'>{esc(s['title'])}: not run ({esc(s['reason'])})</li>")
    return (
        "<section id='at-a-glance'><h2>At a glance</h2><p class='sub'>Each risk in one "
        "sentence, most severe first; the ranges are 95% intervals (how sure the figure "
        "is, given how many inputs it rests on).</p>"
        f"<ul class='glance'>{''.join(items)}</ul>{_anchors_table(report)}</section>"
    )


def _anchors_table(report: dict[str, Any]) -> str:
    """Published results beside advml's, where the setting is a known one."""
    from advml.report.anchors import anchors

    found = anchors(report)
    if not found:
        return ""
    rows = [
        (
            a["section"],
            "–" if a["figure"] is None else a["figure"]["text"],
            a["published"],
            f"{a['citation']}. {a['note']}",
        )
        for a in found
    ]
    return "<h3>Published results for this setting</h3>" + table(
        ("section", "advml", "published", "source and note"), rows
    )


def _records_links(files: dict[str, Any] | None) -> str:
    """Links to the per-input records written with ``--save-examples``."""
    if not files:
        return ""
    items = []
    for section, entry in files.items():
        links = [
            f"<a href='{esc(entry[key])}'>{esc(entry[key])}</a>"
            for key in ("records", "inputs")
            if key in entry
        ]
        rows = f" ({entry['rows']} inputs)" if "rows" in entry else ""
        items.append(f"<li><b>{esc(section)}</b>{rows}: {', '.join(links)}</li>")
    return (
        "<section id='records'><h2>Per-input records</h2><p>Every input's result, beside "
        "this report, so any figure can be checked again (docs/audit.md, Per-input "
        "records). Load a <code>.parquet</code> file with "
        "<code>pandas.read_parquet</code>, the inputs with <code>numpy.load</code>.</p>"
        f"<ul>{''.join(items)}</ul></section>"
    )


def config_yaml(report: dict[str, Any]) -> str:
    """The report's config as the YAML file ``advml audit --config`` reads.

    The audit writes it into ``reproducibility.config_yaml`` with the config file's own
    writer, so the text round-trips through ``advml.audit.config_file.load_config`` to the
    same config. A report without it (schema < 2.2) shows its config as plain YAML.
    """
    text = report.get("reproducibility", {}).get("config_yaml")
    if isinstance(text, str):
        return text
    import yaml

    return str(yaml.safe_dump(report["config"], sort_keys=False))


def _repeat_text(report: dict[str, Any]) -> str:
    """The config file, the command that runs it, and what it cannot carry."""
    model = report.get("model", {})
    note = ""
    if model.get("source") == "given":
        note = (
            "<p class='sub'>The model was passed in from Python, not named in the config: "
            "add its file under <code>model: file:</code> to repeat from the command line."
            "</p>"
        )
    return (
        "<p>Every number above comes from this configuration (seeded). Save it as "
        "<code>audit.yaml</code> and run <code>advml audit --config audit.yaml</code>, or "
        "repeat it from the record with <code>advml audit --rerun report.json</code>; "
        "<code>report.json</code> holds every figure.</p>"
        f"<pre id='config-yaml'>{esc(config_yaml(report))}</pre>{note}"
    )


def _data_use_row(ds: dict[str, Any]) -> str:
    """Split sizes, ``--limit``, per-feature bounds and how eps was read (issue 13)."""
    if "eps_scale" not in ds:
        return ""
    scale = (
        "a fraction of each feature's range"
        if ds["eps_scale"] == "relative"
        else "in the data's units"
    )
    limit = f" (--limit {ds['limit']})" if ds.get("limit") else ""
    bounds = "per feature" if ds.get("feature_bounds") else "one range for every feature"
    return (
        f"<tr><th>data used</th><td>{ds['n_train']} train / {ds['n_test']} test{limit}; "
        f"bounds {bounds}; eps read as {scale}</td></tr>"
    )


def _timing_row(report: dict[str, Any]) -> str:
    """How long the audit and each section took, on the device named above."""
    seconds = report.get("reproducibility", {}).get("section_seconds") or {}
    if not seconds:
        return ""
    parts = ", ".join(f"{name} {s:.1f} s" for name, s in seconds.items())
    return f"<tr><th>time</th><td>{report.get('seconds', 0):.1f} s in all: {esc(parts)}</td></tr>"


def _environment_row(env: dict[str, Any] | None) -> str:
    """Where the numbers were computed: the same results need the same versions, thread
    counts and kind of machine (docs/audit.md, Reproducibility)."""
    if not env:
        return ""
    text = (
        f"torch {env.get('torch')} on {env.get('device')}, {env.get('torch_threads')} "
        f"threads ({env.get('cpu_capability')}), numpy {env.get('numpy')}, "
        f"Python {env.get('python')}, {env.get('platform')}"
    )
    return f"<tr><th>computed with</th><td>{esc(text)}</td></tr>"
