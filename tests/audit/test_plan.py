"""The whole audit plan is checked before its first step, every problem at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from advml.audit import AuditConfig, run_audit
from advml.audit.plan import PlanError, check_plan, plan_problems
from advml.cli import main


def test_a_valid_plan_has_no_problems() -> None:
    assert plan_problems(AuditConfig.quick()) == []
    assert plan_problems(AuditConfig(dataset="Olivetti_Faces")) == []  # alias, any case


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    config = AuditConfig.quick(
        attacks=("nope", "pgdd", "fgsm"),
        sections=("evasion", "nosuch"),
        dataset="digitz",
        model=str(tmp_path / "missing.pt"),
    )
    problems = plan_problems(config)
    assert len(problems) == 5, problems
    assert problems[0].startswith("attacks: no such name 'nope'")
    assert "(did you mean 'pgd'?)" in problems[1]
    assert "['nosuch']" in problems[2]
    assert problems[3].startswith("dataset: no such name 'digitz' (did you mean 'digits'?)")
    assert problems[4].startswith("model: the file") and "missing.pt" in problems[4]
    with pytest.raises(PlanError) as err:
        check_plan(config)
    assert err.value.problems == problems
    assert "5 problems; nothing was run" in str(err.value)


def test_run_audit_refuses_a_bad_plan_before_any_step(tmp_path: Path) -> None:
    out = tmp_path / "audit"
    with pytest.raises(PlanError, match="attacks: no such name 'nope'"):
        run_audit(AuditConfig.quick(attacks=("nope",)), out=out, show_progress=False)
    assert not out.exists()  # not even the log: nothing ran


def test_cli_reports_every_problem_before_the_audit_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import advml.audit

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the audit started")

    monkeypatch.setattr(advml.audit, "run_audit", never)
    out = tmp_path / "audit"
    argv = ["audit", "--quick", "--attacks", "nope,pgd,fgsmm", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "2 problems" in err and "'nope'" in err and "'fgsmm' (did you mean 'fgsm'?)" in err
    assert not out.exists()
