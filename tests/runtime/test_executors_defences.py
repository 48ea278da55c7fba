"""The defences section's matrix (defence setting x ε x clean/standard/adaptive) as seeded
tasks: every setting and ε evaluated, the configured figures unchanged by the extra
settings, one task per cell through one map call, a rerun computes no cell and a killed
run only its unfinished ones, the same figures on local, process and Ray, on a user's
BatchNorm/GELU/residual network and on a table."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from _reports import written_report
from torch import nn

import advml.audit.sections.defences as defences_section
from advml.audit import AuditConfig, run_audit
from advml.data import load_dataset
from advml.models import TorchClassifier, train
from advml.runtime.executors import LocalExecutor

DEFENCES = {"feature_squeezing": {"strength": "medium"}, "gaussian_noise": {"strength": "medium"}}
SMALL: dict[str, Any] = {"n_samples": 30, "steps": 3, "eot_samples": 2, "detection": False}


def _config(*, executor: str = "local", workers: int | None = None, **settings: Any) -> AuditConfig:
    return AuditConfig.quick(
        n_samples=40,
        eps=(0.0, 0.1),
        examples=0,
        sections=("defences",),
        section_settings={"defences": {**SMALL, "defences": DEFENCES, **settings}},
        executor=executor,
        workers=workers,
    )


MATRIX = {"strengths": ["low", "high"], "eps_list": [0.05]}


def _figures(section: Any) -> Any:
    """The section without what may differ between runs: times and the executor."""
    if isinstance(section, dict):
        return {k: _figures(v) for k, v in section.items() if "second" not in k and k != "executor"}
    if isinstance(section, list):
        return [_figures(v) for v in section]
    return section


@pytest.mark.parametrize("strength", ["low", "high"])
def test_cells_in_any_order_give_evaluate_defence(
    digits_data: Any, digits_mlp: TorchClassifier, strength: str
) -> None:
    """The three cells are independent: run adaptive first, they combine into exactly
    what one evaluate_defence call measures (a randomised defence: EOT draws and the
    deployed defence's draws are seeded per cell)."""
    from advml.defences.preprocess import GaussianNoise, evaluate_defence
    from advml.defences.preprocess.evaluation import combine_cells, defended_correct
    from advml.evasion import PGD

    x, y = digits_data.x_test[:40], digits_data.y_test[:40]
    prep = GaussianNoise(strength=strength, seed=3)
    attack = PGD(eps=0.1, steps=4, seed=5)
    whole = evaluate_defence(digits_mlp, prep, x, y, attack=attack, eot_samples=2, seed=5)
    cells = {
        kind: defended_correct(
            digits_mlp, prep, x, y, kind=kind, attack=attack, eot_samples=2, seed=5
        )
        for kind in ("adaptive", "standard", "clean")
    }
    assert all(c.dtype == bool and c.shape == (40,) for c in cells.values())
    combined = combine_cells(
        digits_mlp,
        prep,
        attack=attack,
        clean=cells["clean"],
        standard=cells["standard"],
        adaptive=cells["adaptive"],
        undefended_accuracy=(whole.undefended_clean_accuracy, whole.undefended_robust_accuracy),
        eot_samples=2,
        seed=5,
    )
    drop = {"seconds"}
    assert {k: v for k, v in combined.summary().items() if k not in drop} == {
        k: v for k, v in whole.summary().items() if k not in drop
    }
    with pytest.raises(ValueError, match="kind must be one of"):
        defended_correct(digits_mlp, prep, x, y, kind="worst", attack=attack)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs the attack"):
        defended_correct(digits_mlp, prep, x, y, kind="standard")


def test_matrix_covers_every_setting_and_eps_and_keeps_the_configured_figures(
    digits: Any, digits_mlp: TorchClassifier, tmp_path: Path
) -> None:
    plain = run_audit(
        _config(), model=copy.deepcopy(digits_mlp), dataset=digits, show_progress=False
    ).report["sections"]["defences"]
    result = run_audit(
        _config(**MATRIX),
        model=copy.deepcopy(digits_mlp),
        dataset=digits,
        out=tmp_path,
        show_progress=False,
    )
    written_report(tmp_path)
    sec = result.report["sections"]["defences"]
    assert sec["eps_list"] == [0.05, 0.1] and sec["strengths"] == ["low", "high"]
    assert sec["executor"] == {"executor": "local", "workers": 1}
    # Each defence at its configured medium, then low and high; each at both ε.
    settings = [(c["name"], c["strength"], c["eps"]) for c in sec["matrix"]]
    expected = [
        (name, s, e) for name in DEFENCES for s in ("medium", "low", "high") for e in (0.05, 0.1)
    ]
    assert settings == expected
    high = next(
        c for c in sec["matrix"] if c["name"] == "feature_squeezing" and c["strength"] == "high"
    )
    assert high["resolved"] == {"bit_depth": 1} and not high["configured"]
    # The trade-off table, verdict and summary's first part: the configured settings at
    # the verdict's ε, with the figures of an audit without the matrix.
    assert [(r["name"], r["strength"], r["eps"]) for r in sec["defences"]] == [
        ("feature_squeezing", "medium", 0.1),
        ("gaussian_noise", "medium", 0.1),
    ]
    assert _figures(sec["defences"]) == _figures(plain["defences"])
    assert _figures(sec["undefended"]) == _figures(plain["undefended"])
    assert (
        sec["verdict"]["defended_robust_accuracy"] == plain["verdict"]["defended_robust_accuracy"]
    )
    assert sec["summary"].startswith(plain["summary"])
    assert "The matrix evaluates 6 defence settings at 2 ε (12 combinations" in sec["summary"]
    n = sec["n"]
    by_eps = {u["eps"]: u for u in sec["undefended_by_eps"]}
    for c in sec["matrix"]:
        assert c["worst_case_robust_accuracy"] <= min(
            c["standard_robust_accuracy"], c["adaptive_robust_accuracy"]
        )
        assert c["undefended_robust_accuracy"] == by_eps[c["eps"]]["robust_accuracy"]
        for key, figure in (
            ("clean", "clean_accuracy"),
            ("standard", "standard_robust_accuracy"),
            ("adaptive", "adaptive_robust_accuracy"),
            ("worst_case", "worst_case_robust_accuracy"),
        ):
            iv = c["intervals"][key]
            assert iv["n"] == n and iv["count"] == round(c[figure] * n)
            assert iv["low"] <= c[figure] <= iv["high"]
    # The clean accuracy does not depend on ε: one clean cell per setting.
    for name, strength in {(c["name"], c["strength"]) for c in sec["matrix"]}:
        cells = [c for c in sec["matrix"] if (c["name"], c["strength"]) == (name, strength)]
        assert len({c["clean_accuracy"] for c in cells}) == 1
    html = (tmp_path / "report.html").read_text()
    assert "The matrix: every defence setting at every ε" in html
    assert "bit_depth=1" in html and "as configured" in html
    # Without the matrix settings the HTML keeps its one table.
    assert "The matrix" not in json.dumps(plain["summary"])


def test_every_cell_is_one_small_task_of_one_map_call_and_resumes_from_the_cache(
    digits: Any, digits_mlp: TorchClassifier, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, str]] = []
    real = defences_section.defended_correct

    def counting(model: Any, prep: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append((type(prep).__name__, kwargs["kind"]))
        return real(model, prep, *args, **kwargs)

    maps: list[list[Any]] = []
    real_map = LocalExecutor.map_unordered

    def recording(self: LocalExecutor, fn: Any, tasks: Any) -> Iterator[tuple[int, Any]]:
        maps.append(list(tasks))
        return real_map(self, fn, tasks)

    monkeypatch.setattr(defences_section, "defended_correct", counting)
    monkeypatch.setattr(LocalExecutor, "map_unordered", recording)
    config = _config(**MATRIX)

    def audit() -> dict[str, Any]:
        return run_audit(
            config,
            model=copy.deepcopy(digits_mlp),
            dataset=digits,
            out=tmp_path,
            show_progress=False,
        ).report["sections"]["defences"]

    first = audit()
    # 6 settings x (1 clean + 2 ε x (standard, adaptive)) = 30 cells, in one map call,
    # each task a few numbers: the model and the inputs travel with the function.
    assert len(calls) == 30 and len(maps) == 1 and len(maps[0]) == 30
    assert all(isinstance(t, defences_section._Cell) for t in maps[0])
    steps = tmp_path / "steps"
    cells = sorted(steps.glob("defences-cell-*.json"))
    assert len(cells) == 30
    # A rerun reads the matrix back: no cell runs.
    calls.clear()
    assert _figures(audit()) == _figures(first) and calls == []
    # As if killed after 20 cells: the matrix step and 10 cells are gone.
    for path in steps.glob("defences-matrix-*"):
        path.unlink()
    gone = cells[::3]
    for path in gone:
        path.unlink()
        path.with_suffix(".npz").unlink()
    calls.clear()
    assert _figures(audit()) == _figures(first)
    assert len(calls) == len(gone) == 10
    # Each recomputed cell is the one whose file was removed (its name says which).
    names = sorted(f"{name}-{kind}" for name, kind in calls)
    removed = sorted(_cell_of(p.name) for p in gone)
    assert names == removed


_CLASS = {"feature_squeezing": "FeatureSqueezing", "gaussian_noise": "GaussianNoise"}


def _cell_of(file: str) -> str:
    """'FeatureSqueezing-standard' from a cell's file name,
    'defences-cell-<key>-feature_squeezing-low-standard-eps0.1-<fp>.json'."""
    for name, cls in _CLASS.items():
        if f"-{name}-" in file:
            kind = next(k for k in ("clean", "standard", "adaptive") if f"-{k}" in file)
            return f"{cls}-{kind}"
    raise AssertionError(file)


def test_bad_matrix_settings_are_named(digits: Any, digits_mlp: TorchClassifier) -> None:
    for settings, message in (
        ({"strengths": ["extreme"]}, r"\['strengths'\] has unknown levels \['extreme'\]"),
        ({"strengths": "high"}, r"\['strengths'\] must be a non-empty list"),
        ({"eps_list": [0.1, -1]}, r"\['eps_list'\]\[1\]"),
        ({"eps_list": []}, r"\['eps_list'\] must be a non-empty list"),
    ):
        with pytest.raises(ValueError, match=message):
            run_audit(
                _config(**settings),
                model=copy.deepcopy(digits_mlp),
                dataset=digits,
                show_progress=False,
            )


# -- a user's architecture, and the executors --------------------------------------------------


USER = {"defences": {"median_smoothing": {"strength": "low"}, "jpeg": {"strength": "medium"}}}


def test_the_matrix_on_a_user_network_runs_locally_with_its_figures(
    digits: Any, user_model: TorchClassifier
) -> None:
    sec = run_audit(
        _config(**USER, strengths=["high"]),
        model=copy.deepcopy(user_model),
        dataset=digits,
        show_progress=False,
    ).report["sections"]["defences"]
    assert [(c["name"], c["strength"]) for c in sec["matrix"]] == [
        ("median_smoothing", "low"),
        ("median_smoothing", "high"),
        ("jpeg", "medium"),
        ("jpeg", "high"),
    ]
    assert sec["undefended"]["clean_accuracy"] > 0.8  # it learnt the digits
    # JPEG has no gradient: the standard attack barely moves it, BPDA does.
    jpeg = next(c for c in sec["matrix"] if c["name"] == "jpeg" and c["configured"])
    assert jpeg["adaptive_method"] == "BPDA"
    assert jpeg["standard_robust_accuracy"] >= jpeg["adaptive_robust_accuracy"]


@pytest.mark.parametrize("executor", ["ray", pytest.param("process", marks=pytest.mark.slow)])
def test_matrix_figures_do_not_depend_on_the_executor(
    local_ray_started: None, digits: Any, user_model: TorchClassifier, executor: str
) -> None:
    settings = {**USER, "strengths": ["high"], "eps_list": [0.05], "n_samples": 20}
    sections = {}
    for name in ("local", executor):
        sections[name] = run_audit(
            _config(executor=name, workers=None if name == "local" else 2, **settings),
            model=copy.deepcopy(user_model),
            dataset=digits,
            show_progress=False,
        ).report["sections"]["defences"]
    assert sections[executor]["executor"]["executor"] == executor
    assert sections[executor]["executor"]["workers"] == 2
    assert len(sections["local"]["matrix"]) == 8
    assert _figures(sections[executor]) == _figures(sections["local"])


# -- a table --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cancer() -> Any:
    return load_dataset("breast-cancer")


@pytest.fixture(scope="module")
def cancer_model(cancer: Any) -> TorchClassifier:
    """A tabular network with BatchNorm and GELU, defined here."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(30, 32), nn.BatchNorm1d(32), nn.GELU(), nn.Linear(32, 2))
    model = TorchClassifier(net, input_shape=(30,), n_classes=2, bounds=(0.0, 1.0))
    train(model, cancer.x_train, cancer.y_train, epochs=30, seed=0, show_progress=False)
    model.module.eval()
    return model


def test_the_matrix_on_a_table_keeps_the_defences_that_apply(
    cancer: Any, cancer_model: TorchClassifier, tmp_path: Path
) -> None:
    config = AuditConfig.quick(
        n_samples=60,
        eps=(0.0, 0.1),
        examples=0,
        sections=("defences",),
        section_settings={
            "defences": {
                **SMALL,
                "n_samples": 60,
                "defences": {**DEFENCES, "median_smoothing": {"strength": "low"}},
                "strengths": ["low", "medium", "high"],
                "eps_list": [0.05, 0.2],
            }
        },
    )
    result = run_audit(
        config, model=copy.deepcopy(cancer_model), dataset=cancer, out=tmp_path, show_progress=False
    )
    written_report(tmp_path)
    sec = result.report["sections"]["defences"]
    (skipped,) = sec["skipped"]
    assert skipped["defence"] == "median_smoothing" and "images" in skipped["reason"]
    # The configured medium is one of the levels: three settings per defence, three ε.
    assert [(c["name"], c["strength"], c["eps"]) for c in sec["matrix"]] == [
        (name, s, e)
        for name in DEFENCES
        for s in ("low", "medium", "high")
        for e in (0.05, 0.1, 0.2)
    ]
    assert sec["undefended"]["clean_accuracy"] > 0.85
    noise = [c for c in sec["matrix"] if c["name"] == "gaussian_noise"]
    assert all(c["adaptive_method"] == "EOT" and c["eot_samples"] == 2 for c in noise)
    # The undefended accuracy falls as ε grows (PGD from the same start, more room).
    robust = [u["robust_accuracy"] for u in sec["undefended_by_eps"]]
    assert robust == sorted(robust, reverse=True)
    assert np.isfinite([c["robust_gain"] for c in sec["matrix"]]).all()
    assert "The matrix: every defence setting" in (tmp_path / "report.html").read_text()
