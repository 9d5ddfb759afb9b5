# One Makefile; `make test` is what CI runs (.ci/run). Every target prints what it does.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.setup-complete
PYTEST_ARGS ?=

.PHONY: help setup test test-fast demo synth bench lint clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: ## build everything a fresh machine needs (idempotent; a second run is fast)
	@bash scripts/setup.sh

# Re-run setup only when its inputs changed since the last complete run.
$(STAMP): pyproject.toml requirements.lock requirements-tools.txt requirements-awscli.txt package.json scripts/setup.sh scripts/make_tiny_model.py
	@bash scripts/setup.sh

test: $(STAMP) ## the whole suite: unit, synth, validate, checkov, offline deploy, service, resilience
	@echo "==> make test: pytest (all tiers)"
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP) ## unit and synth tests only (no engine, no terraform)
	$(PY) -m pytest -m "not engine and not terraform and not slow" $(PYTEST_ARGS)

demo: $(STAMP) ## the local region: check, synth, offline deploy, two instances behind HAProxy
	@$(PY) -m scripts.demo

synth: $(STAMP) ## synthesize every stack into cdktf.out/
	$(PY) -m infra check
	$(PY) -m infra synth

bench: $(STAMP) ## measure gateway overhead, synth time vs its floor, classifier, time to ready
	$(PY) -m scripts.bench

lint: $(STAMP) ## ruff, mypy (strict), shellcheck (rendered boot scripts), actionlint, zizmor, hadolint
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	@echo "==> shellcheck: the boot scripts rendered for every region, setup and CI"
	@rm -rf cdktf.out/user-data && $(PY) -m infra user-data --out cdktf.out/user-data >/dev/null
	shellcheck --severity=style cdktf.out/user-data/*.sh scripts/setup.sh .ci/run
	@if ls .github/workflows/*.yml >/dev/null 2>&1; then \
	  echo "==> actionlint"; $(VENV)/bin/actionlint; \
	  echo "==> zizmor"; $(VENV)/bin/zizmor --offline .github/workflows; fi
	@if [ -f service/Dockerfile ]; then echo "==> hadolint"; $(VENV)/bin/hadolint service/Dockerfile; fi

clean: ## remove build outputs (keeps the virtual environment)
	rm -rf cdktf.out .pytest_cache .mypy_cache .ruff_cache bench-results
