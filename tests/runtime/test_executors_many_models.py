"""``advml audit --models models.yaml``: one report per model and a ranked summary page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from advml.audit.many import load_models_file
from advml.audit.summary_page import rank_models, render_summary_page
from advml.cli import main


def _argv(models: Path, out: Path, *extra: str) -> list[str]:
    return [
        "audit",
        "--quick",
        "--models",
        str(models),
        "--eps",
        "0,0.1",
        "--attacks",
        "fgsm",
        "--sections",
        "evasion",
        "--out",
        str(out),
        "--quiet",
        *extra,
    ]


def test_every_model_gets_its_report_and_the_summary_ranks_them(
    model_file: Path, tmp_path: Path, capsys: Any
) -> None:
    models = tmp_path / "models.yaml"
    models.write_text(
        "models:\n"
        f"  - {{name: small, dataset: digits, file: {model_file.name}, n_samples: 20}}\n"
        f"  - {{name: large, dataset: digits, file: {model_file}, n_samples: 40}}\n"
    )
    out = tmp_path / "out"
    assert main(_argv(models, out)) == 0
    printed = capsys.readouterr().out
    reports = {n: json.loads((out / n / "report.json").read_text()) for n in ("small", "large")}
    assert reports["small"]["dataset"]["n_evaluated"] == 20
    assert reports["large"]["dataset"]["n_evaluated"] == 40
    page = (out / "summary.html").read_text()
    assert "small/report.html" in page and "large/report.html" in page
    assert "Run with the local executor, 1 worker(s)." in page
    order = rank_models(reports)
    assert printed.index(f"1. {order[0]}") < printed.index(f"2. {order[1]}")
    assert "<script" not in page  # self-contained, nothing to run


def test_ranking_puts_fewer_high_risk_verdicts_first_then_higher_robust_accuracy() -> None:
    def report(levels: dict[str, str], robust: float) -> dict[str, Any]:
        sections = {s: {"verdict": {"level": lv}} for s, lv in levels.items()}
        sections.setdefault("evasion", {"verdict": {"level": "pass"}})
        sections["evasion"]["verdict"]["robust_accuracy"] = robust
        return {"sections": sections}

    reports = {
        "a": report({"membership": "fail"}, 0.9),
        "b": report({"membership": "pass"}, 0.2),
        "c": report({"membership": "pass"}, 0.6),
        "d": report({"membership": "warn"}, 0.9),
    }
    assert rank_models(reports) == ["c", "b", "d", "a"]
    page = render_summary_page(reports)
    assert page.index(">c<") < page.index(">b<") < page.index(">d<") < page.index(">a<")
    assert "0.600" in page


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models: []\n", "expected 'models:'"),
        ("models:\n  - {name: a/b, dataset: digits}\n", r"models\[0\].name must be a folder"),
        ("models:\n  - {name: a, dataset: digits, colour: red}\n", "unknown keys"),
        ("models:\n  - {name: a}\n  - {name: a}\n", "used twice"),
        ("models:\n  - {name: a, file: missing.pt}\n", r"models\[0\].file: .*missing.pt"),
        ("models: [\n", "not valid YAML"),
    ],
)
def test_a_bad_models_file_names_the_entry_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_models_file(path)
