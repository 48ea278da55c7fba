"""The watermark section's false-claim checks on many independent models: each model a
seeded task through the executor and the step cache, every key checked on every model,
the false-claim rate with its interval; the same figures on local, process and Ray, on a
user's BatchNorm/GELU/residual network; a rerun trains nothing, more models train only
the new ones."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from _reports import written_report

import advml.audit.sections.watermark as section_module
from advml.audit import AuditConfig, run_audit
from advml.data import Dataset
from advml.models import TorchClassifier

TINY: dict[str, Any] = {
    "schemes": ["uchida", "adi"],
    "scheme_settings": {
        "uchida": {"epochs": 3},
        "adi": {"n_triggers": 30, "epochs": 6, "trigger_batch": 32},
    },
    "attacks": ["prune"],
    "attack_settings": {"prune": {"rate": 0.5}},
    "independent_epochs": 4,
    "examples": 4,
}


def _config(*, executor: str = "local", workers: int | None = None, **settings: Any) -> AuditConfig:
    return AuditConfig.quick(
        sections=("watermark",),
        n_samples=120,
        section_settings={"watermark": {**TINY, **settings}},
        executor=executor,
        workers=workers,
    )


def _figures(section: Any) -> Any:
    """The section without what may differ between runs: times and the executor."""
    if isinstance(section, dict):
        return {k: _figures(v) for k, v in section.items() if "second" not in k and k != "executor"}
    if isinstance(section, list):
        return [_figures(v) for v in section]
    return section


def test_every_key_is_checked_on_every_independent_model_with_the_rate_and_its_interval(
    digits: Dataset, digits_mlp: TorchClassifier, tmp_path: Path
) -> None:
    one = run_audit(
        _config(), model=copy.deepcopy(digits_mlp), dataset=digits, show_progress=False
    ).report["sections"]["watermark"]
    result = run_audit(
        _config(independent_models=3),
        model=copy.deepcopy(digits_mlp),
        dataset=digits,
        out=tmp_path,
        show_progress=False,
    )
    written_report(tmp_path)
    s = result.report["sections"]["watermark"]
    assert s["executor"] == {"executor": "local", "workers": 1}
    assert s["independent_models"]["n"] == 3 and len(s["independent_models"]["accuracies"]) == 3
    assert "3 models of the same architecture" in s["independent_models"]["description"]
    assert all(a > 0.7 for a in s["independent_models"]["accuracies"])
    for scheme, single in zip(s["schemes"], one["schemes"], strict=True):
        many = scheme["independent_models"]
        assert many["n"] == 3 and [c["seed"] for c in many["checks"]] == [1000, 1001, 1002]
        # Three models trained from their own seeds on their own subsets: not one model.
        assert (
            len({c["accuracy"] for c in many["checks"]}) > 1
            or len({c["matches"] for c in many["checks"]}) > 1
        )
        assert many["claimed"] == 0 and many["false_claim_rate"] == 0.0
        iv = many["interval"]
        assert (iv["count"], iv["n"], iv["low"]) == (0, 3, 0.0)
        assert iv["high"] == pytest.approx(0.5615, abs=1e-4)  # Wilson, 0 of 3
        # The first model is the one an audit with one independent model trains.
        first = {k: v for k, v in many["checks"][0].items() if k != "seed"}
        assert first == {k: v for k, v in single["independent"].items() if k != "description"}
        assert single["independent_models"]["n"] == 1
        # Embedding and removal do not depend on the independent models.
        assert _figures(scheme["verification"]) == _figures(single["verification"])
        assert _figures(scheme["removal"]) == _figures(single["removal"])
    verdict = s["verdict"]
    assert verdict["independent_models"] == 3 and verdict["independent_claims"] == 0
    assert verdict["false_claims"] == 0
    assert (
        "none of 3 independently trained models was claimed (false claims: 0 of 3"
        in (verdict["text"])
    )
    html = (tmp_path / "report.html").read_text()
    assert "3 independent models" in html and "<b>0 of 3</b> claimed" in html
    assert "independent (best of 3)" not in html  # a label inside the chart, not the text
    # One independent model: the report as before.
    assert "an independently trained model was not claimed" in one["verdict"]["text"]


def test_a_rerun_trains_nothing_and_more_models_train_only_the_new_ones(
    digits: Dataset, digits_mlp: TorchClassifier, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trained: list[int] = []
    real = section_module._IndependentTrainer.__call__

    def counting(self: Any, i: int) -> Any:
        trained.append(i)
        return real(self, i)

    monkeypatch.setattr(section_module._IndependentTrainer, "__call__", counting)
    settings = {"schemes": ["adi"], "attacks": []}

    def audit(n: int) -> dict[str, Any]:
        return run_audit(
            _config(independent_models=n, **settings),
            model=copy.deepcopy(digits_mlp),
            dataset=digits,
            out=tmp_path,
            show_progress=False,
        ).report["sections"]["watermark"]

    first = audit(2)
    assert trained == [0, 1]
    steps = tmp_path / "steps"
    assert len(list(steps.glob("watermark-independent-*-task*.json"))) == 2
    # As if killed after training: the false-claim step is gone, the models are stored.
    for path in steps.glob("watermark-false-claims-*"):
        path.unlink()
    trained.clear()
    assert _figures(audit(2)) == _figures(first) and trained == []
    # Four models: the first two are read back, two are trained.
    more = audit(4)
    assert trained == [2, 3]
    checks = more["schemes"][0]["independent_models"]["checks"]
    assert checks[:2] == first["schemes"][0]["independent_models"]["checks"]


def test_bad_independent_models_is_named(digits: Dataset, digits_mlp: TorchClassifier) -> None:
    with pytest.raises(ValueError, match="independent_models"):
        run_audit(
            _config(independent_models=0),
            model=copy.deepcopy(digits_mlp),
            dataset=digits,
            show_progress=False,
        )


# -- a user's network, and the executors --------------------------------------------------


@pytest.mark.parametrize("executor", ["ray", pytest.param("process", marks=pytest.mark.slow)])
def test_false_claim_figures_do_not_depend_on_the_executor(
    local_ray_started: None, digits: Dataset, user_model: TorchClassifier, executor: str
) -> None:
    settings = {"schemes": ["adi"], "attacks": [], "independent_models": 2}
    sections = {}
    for name in ("local", executor):
        sections[name] = run_audit(
            _config(executor=name, workers=None if name == "local" else 2, **settings),
            model=copy.deepcopy(user_model),
            dataset=digits,
            show_progress=False,
        ).report["sections"]["watermark"]
    other = sections[executor]
    assert other["executor"] == {
        "executor": executor,
        "workers": 2,
        **({"ray_address": "local"} if executor == "ray" else {}),
    }
    # The user's network is re-initialised and trained with advml's loop.
    assert "advml's training loop" in other["independent_models"]["description"]
    assert other["schemes"][0]["verification"]["verified"]
    assert _figures(other) == _figures(sections["local"])


# -- the CLI: advml watermark embed --calibrate N --executor ... ----------------------------------
@pytest.mark.parametrize("executor", ["ray", pytest.param("process", marks=pytest.mark.slow)])
def test_calibration_models_train_on_the_executor_with_the_same_key(
    local_ray_started: None, tmp_path: Path, capsys: Any, executor: str
) -> None:
    from advml.cli import main
    from advml.watermark import load_key

    def embed(name: str, *flags: str) -> tuple[Any, list[str]]:
        key = tmp_path / f"{name}.key.npz"
        argv = ["watermark", "embed", "--scheme", "adi", "--set", "n_triggers=20"]
        argv += ["--key", "s3cret", "--calibrate", "2", "--quiet"]
        argv += ["--out-model", str(tmp_path / f"{name}.pt"), "--out-key", str(key), *flags]
        assert main(argv) in (0, 1)
        out = capsys.readouterr().out.splitlines()
        return load_key(key), [line for line in out if "false claims" in line or "executor" in line]

    local, local_lines = embed("local")
    other, other_lines = embed(executor, "--executor", executor, "--workers", "2")
    # The empirical null (per trigger, how many of the 2 references matched it) and the
    # false-claim check: the same from every executor.
    assert local.calibrated and local.same_material(other)
    assert local_lines[0] == other_lines[0]
    assert "of 2 independent models verified (95% interval" in local_lines[0]
    assert local_lines[1].split() == ["executor", "local,", "1", "worker(s)"]
    assert other_lines[1].split() == ["executor", f"{executor},", "2", "worker(s)"]
