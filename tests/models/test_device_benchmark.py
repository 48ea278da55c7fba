"""benchmarks/gpu.py, the coordinator's GPU benchmark, in its CPU smoke mode: it must run
end to end, report per benchmark and never crash the whole run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SRC = Path(__file__).resolve().parents[2] / "src"


def _run(args: list[str], *, code: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{BENCHMARKS}", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", code] if code else [sys.executable, str(BENCHMARKS / "gpu.py")]
    return subprocess.run(
        [*command, *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.mark.slow
def test_gpu_benchmark_smoke_runs_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    done = _run(["--smoke", "--only", "pgd_resnet18,bf16", "--out", str(out)])
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    for name in ("pgd_resnet18", "bf16"):
        result = report["benchmarks"][name]
        assert "error" not in result, result.get("error")
    pgd = report["benchmarks"]["pgd_resnet18"]
    assert pgd["raw"]["median_s"] > 0 and pgd["default_over_raw"] > 0
    assert pgd["max_linf"] <= 8 / 255 + 1e-5
    assert report["benchmarks"]["bf16"]["advml_bf16"]["x_adv_dtype"] == "torch.float32"


def test_a_failing_benchmark_is_reported_and_the_others_run(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    code = (
        "import sys, gpu\n"
        "def boom(s): raise RuntimeError('planted')\n"
        "gpu.BENCHMARKS = {'boom': boom, 'fine': lambda s: {'value': 1.0}}\n"
        "sys.exit(gpu.main(sys.argv[1:]))\n"
    )
    done = _run(["--smoke", "--only", "boom,fine", "--out", str(out)], code=code)
    assert done.returncode == 1  # a failure is said in the exit code ...
    report = json.loads(out.read_text())
    assert "planted" in report["benchmarks"]["boom"]["error"]
    assert report["benchmarks"]["fine"]["value"] == 1.0  # ... and the rest still ran


def test_advml_imports_with_a_stand_in_for_a_missing_optional_package() -> None:
    code = (
        "import sys\n"
        "sys.modules['tqdm'] = None  # as if tqdm were not installed\n"
        "import gpu\n"
        "classes, stubbed = gpu.import_advml()\n"
        "print(sorted(classes), stubbed)\n"
    )
    done = _run([], code=code)
    assert done.returncode == 0, done.stderr
    assert "'PGD'" in done.stdout and "tqdm" in done.stdout
