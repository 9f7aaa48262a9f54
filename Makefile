# The few commands a newcomer needs. `make run` and `make test` work on a fresh machine
# with Python 3.11+; everything else they need is installed into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TOKENS ?= tokens.json

.PHONY: help venv run test lint typecheck bench clean threat-model

help:
	@echo "make run    - install into .venv, create a first token if none, serve on 127.0.0.1:8080"
	@echo "make test   - install into .venv and run the whole test suite (lint, types, tests)"
	@echo "make bench  - run the benchmarks in bench/ and write bench/results.json"
	@echo "make threat-model - regenerate THREAT_MODEL.md from threat-model/threats.yaml"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: venv
	@PINGCALC_TOKENS_FILE=$${PINGCALC_TOKENS_FILE:-$(TOKENS)} $(BIN)/pingcalc token create first \
		--scope ping --scope calculate --scope metrics --if-none
	PINGCALC_TOKENS_FILE=$${PINGCALC_TOKENS_FILE:-$(TOKENS)} $(BIN)/pingcalc serve

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/bandit -q -c pyproject.toml -r src
	$(BIN)/hadolint --config .hadolint.yaml Dockerfile
	$(BIN)/python threat-model/render.py --check

typecheck: venv
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest

threat-model: venv
	$(BIN)/python threat-model/render.py

bench: venv
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
