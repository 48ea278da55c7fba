"""Report rendering: terminal summary, HTML escaping, JSON schema."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import numpy as np
import pytest

from advml.report import format_summary, render_html, report_schema


def _report() -> dict[str, Any]:
    point = {
        "robust_accuracy": 0.5,
        "success_rate": 0.5,
        "median_l2": 1.0,
        "median_linf": 0.1,
        "mean_queries": 10.0,
        "seconds": 0.1,
        "params": {},
    }
    verdict = {
        "level": "warn",
        "label": "partly robust",
        "robust_accuracy": 0.5,
        "attack": "pgd",
        "eps": 0.1,
        "text": "accuracy falls from 90.0% to 50.0%.",
    }
    return {
        "schema_version": "2.0",
        "advml_version": "0.1.0",
        "created": "2026-11-29T00:00:00+00:00",
        "seconds": 1.0,
        "config": {
            "dataset": "digits",
            "n_samples": 10,
            "attacks": ["pgd"],
            "eps": [0.0, 0.1],
            "seed": 0,
        },
        "dataset": {
            "name": "digits",
            "description": "<script>alert(1)</script>",
            "input_shape": [1, 8, 8],
            "n_classes": 10,
            "class_names": [str(i) for i in range(10)],
            "bounds": [0.0, 1.0],
            "n_evaluated": 10,
            "fingerprint": "abc",
        },
        "model": {
            "source": "given",
            "adapter": "TorchClassifier",
            "description": "net <b>",
            "has_gradients": True,
            "has_scores": True,
            "fingerprint": "def",
            "clean_accuracy": 0.9,
        },
        "sections": {
            "evasion": {
                "title": "Evasion: adversarial examples",
                "threat": "integrity",
                "settings": {},
                "clean_accuracy": 0.9,
                "reference_eps": 0.1,
                "skipped": [],
                "verdict": verdict,
                "attacks": [
                    {
                        "name": "pgd",
                        "norm": "inf",
                        "params": {"steps": 5},
                        "points": [
                            {**point, "eps": 0.0, "robust_accuracy": 0.9, "success_rate": 0.1},
                            {**point, "eps": 0.1},
                        ],
                    }
                ],
            }
        },
        "thresholds": {
            "passed": False,
            "checks": [
                {
                    "figure": "robust_accuracy",
                    "fail_if": "below",
                    "threshold": 0.6,
                    "value": 0.5,
                    "passed": False,
                }
            ],
        },
        "skipped_sections": [
            {
                "section": "poisoning",
                "title": "Poisoning <i>",
                "threat": "integrity",
                "reason": "cannot retrain <this> model",
            }
        ],
        "summary": {
            "integrity": {
                "question": "Integrity?",
                "level": "warn",
                "verdicts": [{"section": "evasion", "title": "Evasion", **verdict}],
                "not_assessed": [{"section": "poisoning", "reason": "cannot retrain <this> model"}],
            },
            "confidentiality": {
                "question": "Confidentiality?",
                "level": "unknown",
                "verdicts": [],
                "not_assessed": [],
            },
            "ownership": {
                "question": "Ownership?",
                "level": "unknown",
                "verdicts": [],
                "not_assessed": [],
            },
        },
    }


def test_the_sample_report_is_valid_and_the_schema_rejects_broken_ones() -> None:
    schema = report_schema()
    jsonschema.validate(_report(), schema)
    broken = copy.deepcopy(_report())
    broken["sections"]["evasion"]["attacks"][0]["points"][0]["robust_accuracy"] = 1.5
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
    del broken["model"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
    no_verdict = copy.deepcopy(_report())
    no_verdict["sections"]["someday"] = {"title": "x", "threat": "integrity", "settings": {}}
    with pytest.raises(jsonschema.ValidationError, match="verdict"):
        jsonschema.validate(no_verdict, schema)
    bad_level = copy.deepcopy(_report())
    bad_level["summary"]["ownership"]["level"] = "fine"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad_level, schema)


def test_terminal_summary_shows_the_table_and_the_verdict() -> None:
    text = format_summary(_report())
    assert "PGD" in text and "ε=0.1" in text and "50.0%" in text and "90.0%" in text
    assert "PARTLY ROBUST" in text


def test_html_escapes_everything_that_comes_from_data() -> None:
    page = render_html(_report())
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "net &lt;b&gt;" in page
    assert "NOT MET" in page and "fail if below 0.6" in page
    assert "cannot retrain &lt;this&gt; model" in page and "Poisoning &lt;i&gt;" in page
    assert page.count("data:image/png;base64,") == 1  # robustness curve; no examples given


def test_html_draws_examples_for_tabular_inputs_too() -> None:
    examples = {
        "index": np.arange(2),
        "x": np.zeros((2, 30), np.float32),
        "x_adv": np.full((2, 30), 0.1, np.float32),
        "y": np.zeros(2, int),
        "pred": np.zeros(2, int),
        "pred_adv": np.ones(2, int),
        "conf": np.full(2, 0.9),
        "conf_adv": np.full(2, 0.6),
    }
    report = _report()
    report["dataset"]["input_shape"] = [30]
    page = render_html(report, artifacts={"evasion": examples})
    assert page.count("data:image/png;base64,") == 2
