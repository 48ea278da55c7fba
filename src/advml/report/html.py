"""The self-contained HTML report: one file, images inline, readable by non-specialists."""

from __future__ import annotations

import base64
import html
from typing import Any

import numpy as np

from advml.report.figures import example_grid, robustness_curve

__all__ = ["render_html"]

_LEVEL_COLOURS = {
    "robust": "#1a7f37",
    "partly robust": "#b35900",
    "not robust": "#c62828",
    "unknown": "#555",
}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:960px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
.sub{color:#666;margin-top:0}
.card{border:1px solid #ddd;border-radius:8px;padding:1em 1.2em;margin:1em 0}
.level{display:inline-block;color:#fff;border-radius:4px;padding:.1em .6em;font-weight:600}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:right}
th{background:#f6f6f6} td:first-child,th:first-child{text-align:left}
table.kv td{text-align:left}
figure{margin:1em 0} figcaption{color:#555;font-size:.9em;margin-top:.3em}
img{max-width:100%} code{background:#f4f4f4;padding:0 .2em}
"""


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def _num(v: float | None, fmt: str = ".3f") -> str:
    return "–" if v is None else format(v, fmt)


def render_html(report: dict[str, Any], *, examples: dict[str, np.ndarray] | None = None) -> str:
    """The whole report as one HTML page (figures embedded as PNG data URIs)."""
    e = html.escape
    ds, model = report["dataset"], report["model"]
    evasion = report["sections"]["evasion"]
    verdict = evasion["verdict"]
    colour = _LEVEL_COLOURS.get(verdict["level"], "#555")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>advml audit: {e(ds['name'])}</title><style>{_CSS}</style></head><body>",
        "<h1>How secure is this model?</h1>",
        f"<p class='sub'>advml {e(report['advml_version'])} audit of "
        f"{e(model['description'])} on <b>{e(ds['name'])}</b>, {e(report['created'])}</p>",
        "<section id='summary'><h2>Summary</h2>",
        "<div class='card'><b>Integrity (evasion: adversarial examples at prediction time)</b> ",
        f"<span class='level' style='background:{colour}'>{e(verdict['level'])}</span>",
        f"<p>{e(verdict['text'])}</p></div>",
        "<p>Confidentiality (membership inference, inversion, extraction), poisoning and "
        "ownership checks are not part of this audit yet.</p></section>",
        "<section id='model'><h2>Model and data</h2><table class='kv'>",
        f"<tr><th>model</th><td>{e(model['description'])}</td></tr>",
        f"<tr><th>source</th><td>{e(str(model.get('file', model['source'])))}</td></tr>",
        f"<tr><th>capabilities</th><td>gradients: {model['has_gradients']}, "
        f"scores: {model['has_scores']}</td></tr>",
        f"<tr><th>dataset</th><td>{e(ds['description'])}</td></tr>",
        f"<tr><th>inputs evaluated</th><td>{ds['n_evaluated']} test inputs, shape "
        f"{tuple(ds['input_shape'])}, values in "
        f"[{ds['bounds'][0]:g}, {ds['bounds'][1]:g}]</td></tr>",
        f"<tr><th>clean accuracy</th><td>{_pct(model['clean_accuracy'])}</td></tr>",
        "</table></section>",
        "<section id='evasion'><h2>Evasion: adversarial examples</h2>",
        "<p>An evasion attacker changes an input slightly so that the model labels it "
        "wrongly. ε is how much each input value may change, in units of the input's range "
        "(for images, ε = 0.1 is a tenth of the way from black to white).</p>",
    ]
    if any(a["points"] for a in evasion["attacks"]):
        parts += [
            "<figure id='fig-robustness'>",
            _img(robustness_curve(evasion), "accuracy under attack against epsilon"),
            "<figcaption><b>Robustness curve.</b> Accuracy on the evaluated test inputs when "
            "each attack may change every input value by up to ε. The dashed line is the "
            "accuracy without attack; the lower a curve falls at small ε, the easier the "
            "model is to fool. The dotted line marks the ε of the verdict.</figcaption></figure>",
        ]
    for attack in evasion["attacks"]:
        params = ", ".join(f"{k}={v}" for k, v in attack["params"].items() if k != "eps")
        parts += [
            f"<h3>{e(attack['name'].upper())}</h3><p class='sub'>settings: {e(params)}</p>",
            "<table><tr><th>ε</th><th>accuracy under attack</th>"
            "<th title='among inputs classified correctly without attack'>success rate</th>"
            "<th>median L2</th><th>median L∞</th><th>queries / input</th><th>seconds</th></tr>",
        ]
        for p in attack["points"]:
            parts.append(
                f"<tr><td>{p['eps']:g}</td><td>{_pct(p['robust_accuracy'])}</td>"
                f"<td>{_pct(p['success_rate'])}</td><td>{_num(p['median_l2'])}</td>"
                f"<td>{_num(p['median_linf'])}</td><td>{p['mean_queries']:.0f}</td>"
                f"<td>{p['seconds']:.2f}</td></tr>"
            )
        parts.append("</table>")
    if examples and len(examples.get("index", [])):
        grid = example_grid(examples, ds["class_names"], ds["bounds"])
        parts += [
            "<figure id='fig-examples'>",
            _img(grid, "clean and adversarial examples"),
            "<figcaption><b>Examples.</b> Top: test inputs with the model's label and "
            "confidence. Middle: the same inputs after "
            f"{e(str(verdict.get('attack', '')).upper())} at ε = {verdict.get('eps', 0):g}, "
            "with the model's new label in red. Bottom: the "
            "change itself, magnified by the factor shown (red up, blue down) so it can be "
            "seen at all.</figcaption></figure>",
        ]
    if evasion["skipped"]:
        parts.append("<h3>Skipped</h3><ul>")
        parts += [f"<li>{e(s['attack'])}: {e(s['reason'])}</li>" for s in evasion["skipped"]]
        parts.append("</ul>")
    parts += [
        "</section><section id='settings'><h2>How to repeat this audit</h2>",
        "<p>Every number above comes from this configuration (seeded); "
        "<code>report.json</code> holds them all.</p>",
        f"<pre>{e(_config_text(report['config']))}</pre>",
        f"<p class='sub'>Took {report['seconds']:.0f} s. Schema version "
        f"{e(report['schema_version'])}.</p></section></body></html>",
    ]
    return "\n".join(parts)


def _config_text(config: dict[str, Any]) -> str:
    return "\n".join(f"{k}: {v}" for k, v in config.items())
