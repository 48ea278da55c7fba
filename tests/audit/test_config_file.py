"""The audit's YAML config: round trip, line-exact errors, thresholds and access."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from advml.audit import AuditConfig, run_audit
from advml.audit.config import ConfigValidationError
from advml.audit.config_file import ConfigError, config_to_yaml, load_config, parse_config
from advml.audit.run import check_thresholds
from advml.cli import main
from advml.data import load_dataset
from advml.models import TorchClassifier


def test_written_config_reads_back_equal() -> None:
    config = AuditConfig.quick(
        eps=(0.0, 0.2),
        attack_settings={"pgd": {"steps": 7, "restarts": 2}},
        sections=("evasion",),
        section_settings={"backdoor": {"fraction": 0.05}},
        access="scores",
        queries_per_input=500,
        constraints={"immutable": [0, 1], "switch_on": [5], "ranges": {2: [0.0, 0.5]}},
        fail_under={"robust_accuracy": 0.4},
        fail_over={"membership.auc": 0.6},
        seed=3,
    )
    again = parse_config(config_to_yaml(config))
    assert again == config


def test_empty_file_is_the_default_config() -> None:
    assert parse_config("") == AuditConfig()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "evasion:\n  atacks: [pgd]\n",
            r"line 2: unknown key 'atacks' in evasion; known: .*attacks",
        ),
        ("seed: 1\nmodle:\n  file: x\n", r"line 2: unknown key 'modle' in the top level"),
        (
            "data:\n  dataset: digits\n  n_samples: 0\n",
            r"line 3: data.n_samples: n_samples must be >= 1",
        ),
        ("evasion: 3\n", r"line 1: evasion must be a mapping"),
        ("adversary:\n  access: root\n", r"line 2: adversary.access: access must be one of"),
        ("evasion:\n  eps: [0.1, -1]\n", r"line 2: evasion.eps: eps must be >= 0"),
        ("seed: [1\n", r"not valid YAML"),
        ("thresholds:\n  fail_under: {robust_accuracy: high}\n", r"line 2: .*fail_under"),
        (
            "adversary:\n  access: scores\n  constraints: {frozen: [1]}\n",
            r"line 3: adversary.constraints: constraints: .*frozen",
        ),
    ],
)
def test_errors_name_the_line_and_key(text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        parse_config(text, source="audit.yaml")


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.yaml"):
        load_config(tmp_path / "nope.yaml")


def _report(verdicts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "model": {"clean_accuracy": 0.9},
        "sections": {name: {"verdict": v, "auc": 0.7} for name, v in verdicts.items()},
    }


def test_thresholds_compare_figures_and_explain_missing_ones() -> None:
    report = _report(
        {
            "evasion": {"level": "fail", "robust_accuracy": 0.3},
            "defences": {"level": "warn", "robust_accuracy": 0.6},
            "membership": {"level": "warn", "tpr_at_1pct_fpr": 0.1},
        }
    )
    config = AuditConfig(
        fail_under={"evasion.robust_accuracy": 0.5, "clean_accuracy": 0.8, "robust_accuracy": 0.1},
        fail_over={"membership.auc": 0.6, "tpr_at_1pct_fpr": 0.2, "poisoning.asr": 0.5},
    )
    result = check_thresholds(report, config)
    by = {c["figure"]: c for c in result["checks"]}
    assert not result["passed"]
    assert by["evasion.robust_accuracy"]["passed"] is False
    assert by["evasion.robust_accuracy"]["value"] == 0.3
    assert by["clean_accuracy"]["passed"] is True
    assert "several sections" in by["robust_accuracy"]["problem"]
    assert by["membership.auc"]["passed"] is False  # a top-level number of the section
    assert by["tpr_at_1pct_fpr"]["passed"] is True
    assert "no figure 'poisoning.asr'" in by["poisoning.asr"]["problem"]
    assert check_thresholds(report, AuditConfig())["passed"] is True


def test_fail_under_makes_the_cli_exit_3_and_says_why(
    quick_audit_argv: Callable[..., list[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(quick_audit_argv(tmp_path / "a", "--fail-under", "clean_accuracy=0.5")) == 0
    capsys.readouterr()
    code = main(quick_audit_argv(tmp_path / "b", "--fail-under", "robust_accuracy=0.99"))
    assert code == 3
    err = capsys.readouterr().err
    assert "threshold not met: robust_accuracy" in err and "below 0.99" in err
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["thresholds"]["passed"] is False
    # The run's effective config is saved beside the report and repeats it.
    saved = load_config(tmp_path / "b" / "config.yaml")
    assert saved.fail_under == {"robust_accuracy": 0.99} and saved.n_samples == 30


def test_config_file_then_command_line(model_file: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "audit.yaml"
    path.write_text("data:\n  dataset: digits\n  n_samples: 17\nseed: 4\n")
    assert main(["audit", "--config", str(path), "--print-config", "--eps", "0,0.3"]) == 0
    printed = parse_config(capsys.readouterr().out)
    assert printed.n_samples == 17 and printed.seed == 4 and printed.eps == (0.0, 0.3)


def test_label_only_access_runs_only_what_such_an_adversary_can(
    digits_mlp: TorchClassifier,
) -> None:
    config = AuditConfig.quick(n_samples=20, eps=(0.0, 0.1), access="labels", sections=("evasion",))
    result = run_audit(
        config, model=copy.deepcopy(digits_mlp), dataset=load_dataset("digits"), show_progress=False
    )
    report = result.report
    assert report["model"]["access"] == "labels"
    assert report["model"]["has_gradients"] is False and report["model"]["has_scores"] is False
    skipped = {s["attack"] for s in report["sections"]["evasion"]["skipped"]}
    assert {"fgsm", "pgd"} <= skipped


def test_every_bad_value_is_reported_at_once_with_its_line() -> None:
    text = (
        "model:\n"
        '  trust: "false"\n'
        "data:\n"
        "  n_samples: -5\n"
        "evasion:\n"
        "  eps: [0.1, -1]\n"
        "  attack_settings: {pgd: {steps: -2}}\n"
        "adversary:\n"
        "  access: admin\n"
        "seed: 0\n"
    )
    with pytest.raises(ConfigError) as err:
        parse_config(text, source="t.yaml")
    lines = str(err.value).splitlines()
    assert lines[0] == "t.yaml: 5 problems:"
    assert lines[1].startswith("  line 2: model.trust: trust_model_file must be True or False")
    assert lines[2] == "  line 4: data.n_samples: n_samples must be >= 1, got -5"
    assert lines[3] == "  line 6: evasion.eps: eps must be >= 0, got -1"
    assert lines[4] == "  line 7: attack_settings['pgd']['steps']: steps must be >= 1, got -2"
    assert lines[5].startswith("  line 9: adversary.access: access must be one of")


def test_one_bad_value_keeps_the_one_line_form() -> None:
    with pytest.raises(ConfigError, match=r"^t.yaml, line 2: data.n_samples: n_samples must"):
        parse_config("data:\n  n_samples: 0\n", source="t.yaml")


def test_audit_config_reports_every_bad_field_at_once_with_its_path() -> None:
    with pytest.raises(ConfigValidationError) as err:
        AuditConfig(
            n_samples=0,
            eps=(0.1, -1.0),
            access="admin",  # type: ignore[arg-type]
            device="gpu",
            model_std=[0.0],
            nope=1,  # type: ignore[call-arg]
        )
    problems = dict(err.value.problems)
    assert list(problems) == ["n_samples", "eps", "access", "model_std", "device", "nope"]
    assert problems["n_samples"] == "n_samples must be >= 1, got 0"
    assert problems["model_std"].startswith("--std (Python: std) must be > 0")
    assert problems["nope"].startswith("no such setting; known: dataset, model,")
    lines = str(err.value).splitlines()
    assert lines[0] == "the audit config has 6 problems:"
    assert "  model_std: --std (Python: std) must be > 0, got [0.0]" in lines
    # Still what callers of a bad config catch.
    assert isinstance(err.value, ValueError) and isinstance(err.value, TypeError)


def test_cross_field_problems_come_together_once_each_field_is_valid() -> None:
    with pytest.raises(ConfigValidationError) as err:
        AuditConfig(model="m.pt", target_url="http://127.0.0.1:1/p", ray_address="auto")
    assert [path for path, _ in err.value.problems] == ["target_url", "ray_address"]


@pytest.mark.parametrize("value", ["false", "true", 1, 0, "yes", None])
def test_trust_model_file_takes_only_a_real_bool(value: object) -> None:
    """It switches unpickling on: nothing is coerced (pydantic's lax mode would read
    the string "false" as False and "true" as True)."""
    with pytest.raises(ConfigValidationError, match="trust_model_file must be True or False"):
        AuditConfig(trust_model_file=value)  # type: ignore[arg-type]
    assert AuditConfig(trust_model_file=True).trust_model_file is True


def test_single_values_and_yaml_lists_become_tuples() -> None:
    config = AuditConfig(attacks="pgd", eps=0.1, sections=["evasion"])  # type: ignore[arg-type]
    assert (config.attacks, config.eps, config.sections) == (("pgd",), (0.1,), ("evasion",))
    assert AuditConfig(eps=[0.3, 0, 0.1]).eps == (0.0, 0.1, 0.3)  # type: ignore[arg-type]
    assert config.with_(seed=2).seed == 2 and config.seed == 0
    with pytest.raises(ConfigValidationError, match="seed must be >= 0"):
        config.with_(seed=-1)  # a copy is validated as a new config is


def test_unknown_keys_and_bad_values_of_a_file_come_in_one_error() -> None:
    text = "evasion:\n  atacks: [pgd]\ndata:\n  n_samples: 0\nhardware:\n  device: gpu\n"
    with pytest.raises(ConfigError) as err:
        parse_config(text, source="t.yaml")
    assert str(err.value).splitlines() == [
        "t.yaml: 3 problems:",
        "  line 2: unknown key 'atacks' in evasion; known: ['attack_settings', 'attacks', "
        "'eps', 'eps_scale', 'examples', 'reference_eps']",
        "  line 4: data.n_samples: n_samples must be >= 1, got 0",
        "  line 6: hardware.device: device must be auto, cpu, cuda or cuda:N, got 'gpu'",
    ]
