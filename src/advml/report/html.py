"""The self-contained HTML report: one file, images inline, readable by non-specialists.

The page is a scorecard per threat (integrity, confidentiality, ownership) with
plain-language verdicts, then one part per section, each drawn by its renderer in
:mod:`advml.report.sections`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from markupsafe import Markup

from advml.report.sections import renderer
from advml.report.templating import render_template

__all__ = ["config_yaml", "render_html"]

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
    without them the page shows the numbers only. The page is ``templates/report.html.j2``;
    this function computes the plain data it shows.
    """
    artifacts = artifacts or {}
    ds, model = report["dataset"], report["model"]
    sections = [
        {
            "name": name,
            "title": section["title"],
            # advml's own HTML, built from escaped pieces by the section's renderer
            "body": Markup(renderer(name)(section, artifacts.get(name, {}), report)),
        }
        for name, section in report["sections"].items()
    ]
    return render_template(
        "report.html.j2",
        report=report,
        dataset=ds,
        model=model,
        input_shape=str(tuple(ds["input_shape"])),
        glance=_glance(report),
        anchors=_anchor_rows(report),
        summary=list(report["summary"].items()),
        threat_titles=_THREAT_TITLES,
        level_words=_LEVEL_WORDS,
        thresholds=_threshold_rows(report),
        data_use=_data_use(ds),
        environment=_environment_text(report.get("environment")),
        timing=_timing_text(report),
        sections=sections,
        records=_records(report.get("examples_files")),
        skipped=report.get("skipped_sections", []),
        config_yaml=config_yaml(report),
    )


def _threshold_rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    """The ``--fail-under`` checks, one row each."""
    return [
        (
            c["figure"],
            f"fail if {c['fail_if']} {c['threshold']:g}",
            "–" if c["value"] is None else f"{c['value']:.4g}",
            "–"
            if c.get("compared") is None
            else f"{c['compared']:.4g}: {c.get('compared_what', 'the figure')}",
            "met" if c["passed"] else f"NOT MET {c.get('problem', '')}".strip(),
        )
        for c in report.get("thresholds", {}).get("checks", [])
    ]


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


def _glance(report: dict[str, Any]) -> list[dict[str, str]]:
    """The one-screen summary: each section's risk in one sentence, most severe first."""
    rows = sorted(
        report["sections"].items(),
        key=lambda item: (_SEVERITY.get(item[1]["verdict"]["level"], 2), item[0]),
    )
    return [
        {
            "level": section["verdict"]["level"],
            "label": section["verdict"]["label"],
            "name": name,
            "title": section["title"],
            "headline": headline(name, section["verdict"]),
        }
        for name, section in rows
    ]


def _anchor_rows(report: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Published results beside advml's, where the setting is a known one."""
    from advml.report.anchors import anchors

    return [
        (
            a["section"],
            "–" if a["figure"] is None else a["figure"]["text"],
            a["published"],
            f"{a['citation']}. {a['note']}",
        )
        for a in anchors(report)
    ]


def _records(files: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The per-input records written with ``--save-examples``: files and row counts."""
    return [
        {
            "section": section,
            "rows": entry.get("rows"),
            "files": [entry[key] for key in ("records", "inputs") if key in entry],
        }
        for section, entry in (files or {}).items()
    ]


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


def _data_use(ds: dict[str, Any]) -> dict[str, Any] | None:
    """Split sizes, ``--limit``, per-feature bounds and how eps was read (issue 13)."""
    if "eps_scale" not in ds:
        return None
    scale = (
        "a fraction of each feature's range"
        if ds["eps_scale"] == "relative"
        else "in the data's units"
    )
    return {
        "n_train": ds["n_train"],
        "n_test": ds["n_test"],
        "limit": f" (--limit {ds['limit']})" if ds.get("limit") else "",
        "bounds": "per feature" if ds.get("feature_bounds") else "one range for every feature",
        "scale": scale,
    }


def _timing_text(report: dict[str, Any]) -> str:
    """How long the audit and each section took, on the device named above."""
    seconds = report.get("reproducibility", {}).get("section_seconds") or {}
    if not seconds:
        return ""
    parts = ", ".join(f"{name} {s:.1f} s" for name, s in seconds.items())
    return f"{report.get('seconds', 0):.1f} s in all: {parts}"


def _environment_text(env: dict[str, Any] | None) -> str:
    """Where the numbers were computed: the same results need the same versions, thread
    counts and kind of machine (docs/audit.md, Reproducibility)."""
    if not env:
        return ""
    return (
        f"torch {env.get('torch')} on {env.get('device')}, {env.get('torch_threads')} "
        f"threads ({env.get('cpu_capability')}), numpy {env.get('numpy')}, "
        f"Python {env.get('python')}, {env.get('platform')}"
    )
