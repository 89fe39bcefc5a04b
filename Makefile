# Entry points. `make reproduce` and `make test` set up .venv first when it is missing or stale.
#
#   make reproduce                       the whole pipeline on params/default.yaml (CPU, minutes)
#   make reproduce PARAMS=params/paper.yaml PROFILE=workflow/profiles/gpu
#   make test                            the test suite (pytest, one process per core), minutes on 2 cores
#   make test-fast                       the tests not marked slow (no pipeline runs), about 1 minute
#   make bench                           measure the cost benchmark (claim 6) into docs/bench/, then reproduce
#   make pull                            fetch the artifacts from the DVC remote (each checked), Snakemake adopts them
#   make dry-run | lint | workflow-report | help

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PARAMS ?= params/default.yaml
PROFILE ?=
PYTEST_ARGS ?=
# pytest-xdist: one test process per core (`make test PYTEST_WORKERS=0`: all in one process)
PYTEST_WORKERS ?= auto

BIN := $(VENV)/bin
STAMP := $(VENV)/.iai-installed
DEFAULT_PARAMS := params/default.yaml
export PATH := $(abspath $(BIN)):$(PATH)
export DVC_NO_ANALYTICS := 1
export MPLBACKEND := Agg

SNAKEMAKE = snakemake $(if $(PROFILE),--workflow-profile $(PROFILE)) --config params=$(PARAMS)

.PHONY: help setup reproduce bench test test-fast pull adopt dry-run lint workflow-report

help:
	@sed -n '1,9p' Makefile

setup: $(STAMP)

# No GPU (no nvidia-smi): the CPU build of torch first, with pip (a local file where pip's config
# says so; a plain `torch` would pull a CUDA build of several GB). Then the project with uv, which
# installs its ~150 packages in seconds where pip takes minutes (`make INSTALLER=pip ...` to use pip alone).
# uv keeps the torch already there (never an eager upgrade) and writes bytecode, so that each job's
# imports stay fast where PYTHONDONTWRITEBYTECODE is set.
INSTALLER ?= uv
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "make: Python >= 3.11 is needed (set PYTHON=...)" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if ! command -v nvidia-smi >/dev/null 2>&1; then \
		echo "no GPU found: installing the CPU build of torch"; \
		$(BIN)/python -m pip install --quiet torch==2.13.0; \
	fi
	@if [ "$(INSTALLER)" = pip ]; then \
		$(BIN)/python -m pip install --quiet -e '.[all]'; \
	else \
		$(BIN)/python -m pip install --quiet 'uv>=0.5' \
			&& $(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode -e '.[all]' \
			|| { echo "make: uv failed; installing with pip instead"; $(BIN)/python -m pip install --quiet -e '.[all]'; }; \
	fi
	@touch $@

# A corrupted artifact (one that no longer matches the content hash written with it) stops everything
# first, so that DVC never records it. Snakemake runs every job (in parallel within the cores); with the default params, DVC then
# records the outputs (`dvc commit -f`), so that `dvc status` is clean and `dvc repro` has nothing to do.
reproduce: setup
	@iai verify data/banks data/models data/results
	$(SNAKEMAKE)
	@if [ "$(PARAMS)" = "$(DEFAULT_PARAMS)" ]; then \
		echo "dvc commit -f: recording the outputs in dvc.lock and the DVC cache"; \
		dvc commit --force --quiet; \
	fi
	@echo "done: reports/index.html, reports/metrics.json, data/results/results.csv"

# The cost benchmark (claim 6) is timings, which no two runs repeat, so `make reproduce` reads the one
# committed in docs/bench/<params file's name>/ and never measures. This measures it again on this
# machine (rules bench and cost_scaling, forced; every core, nothing beside them), then reproduces: the
# merge and report read the new files. Commit docs/bench/ to keep them.
bench: setup
	$(SNAKEMAKE) --forcerun bench cost_scaling -- benchmarks
	@$(MAKE) --no-print-directory reproduce PARAMS=$(PARAMS) PROFILE=$(PROFILE)

test: setup
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -m "not slow" $(PYTEST_ARGS)

# `dvc pull`, checking every object it downloads against its hash (iai pull: a file corrupted in the
# remote is one line naming it, and is not checked out); then Snakemake adopts the files.
pull: setup
	iai pull
	@$(MAKE) --no-print-directory adopt

# After `dvc pull` or `dvc checkout`, the files are DVC's: Snakemake has no record of them and judges
# them by checkout order. Once `dvc status` is clean (the files match the params and code), Snakemake
# records every output as made by the current params and inputs (`--touch --forceall`), so it neither
# redoes them nor misses a later change.
adopt: setup
	@dvc status --quiet || { dvc status >&2; echo "make adopt: dvc status is not clean (above); run dvc repro first" >&2; exit 1; }
	$(SNAKEMAKE) --touch --forceall --quiet

dry-run: setup
	$(SNAKEMAKE) --dry-run --quiet

# Snakemake's one standing lint is the per-rule conda env: jobs run in the environment Snakemake runs
# in (make setup, environment.yml). Any other lint fails.
lint: setup
	ruff check src tests tools
	lint-imports
	@out=$$($(SNAKEMAKE) --lint 2>&1); \
	other=$$(printf '%s\n' "$$out" | grep -E '^\s+\* ' | grep -v 'Specify a conda environment or container'); \
	if [ -n "$$other" ]; then printf '%s\n' "$$out"; exit 1; fi; \
	echo "snakemake --lint: nothing but the per-rule conda envs"

workflow-report: setup
	$(SNAKEMAKE) --report reports/workflow.html
