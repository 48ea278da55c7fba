# `make audit` and `make test` set everything up themselves on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP := $(BIN)/python -m pip install --quiet --constraint constraints.txt
# CI (CI=true) runs the whole suite; locally the default suite skips tests marked slow.
PYTEST_ARGS ?= $(if $(filter true,$(CI)),,-m "not slow")

.PHONY: install audit audit-quick test test-all lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --editable '.[dev]'
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

# Comparison libraries for benchmarks/: ART, and torchattacks without its torchvision
# dependency (it only imports torch, numpy, scipy and tqdm).
bench: $(STAMP)
	$(PIP) --editable '.[dev,bench]'
	$(PIP) --no-deps 'torchattacks>=3.5'
	$(BIN)/python benchmarks/evasion_speed.py
	$(BIN)/python benchmarks/evasion_strength.py

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
