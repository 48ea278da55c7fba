# `make audit` and `make test` set everything up themselves on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP := $(BIN)/python -m pip install --quiet --constraint constraints.txt
# CI (CI=true) runs the whole suite; locally the default suite skips tests marked slow.
PYTEST_ARGS ?= $(if $(filter true,$(CI)),,-m "not slow")

.PHONY: install audit audit-quick test test-all test-kernels lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --editable '.[dev,formats,ray]'
	$(PIP) 'xgboost-cpu>=2.0'
	$(PIP) --no-deps 'onnx2pytorch>=0.5'
	touch $(STAMP)

audit: $(STAMP)
	$(BIN)/advml audit --out out/audit

audit-quick: $(STAMP)
	$(BIN)/advml audit --quick --out out/audit-quick

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy src

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-all: lint
	$(BIN)/python -m pytest

# The fast contract tests again on torch's portable kernels (no AVX) on one thread: float32
# results that depend on the CPU's kernels (GEMM blocking, summation order) show up here
# rather than on a user's machine. .ci/run calls it after `make test`.
KERNEL_TESTS := tests/models tests/evasion/test_contract.py tests/metrics \
	tests/defences/test_preprocess_contract.py tests/defences/test_robust_training_contract.py \
	tests/defences/backdoor/test_backdoor_contract.py
test-kernels: $(STAMP)
	ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=1 $(BIN)/python -m pytest -m "not slow" -q \
		$(KERNEL_TESTS)

# Comparison libraries for benchmarks/: ART, and torchattacks without its torchvision
# dependency (it only imports torch, numpy, scipy and tqdm).
bench: $(STAMP)
	$(PIP) --editable '.[dev,bench]'
	$(PIP) --no-deps 'torchattacks>=3.5'
	$(BIN)/python benchmarks/evasion_speed.py
	$(BIN)/python benchmarks/evasion_strength.py

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
