# pushlab — `make help` lists the targets.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[lab,dev]'
	@touch $(STAMP)

venv: $(STAMP) ## create .venv and install pinned dependencies

system: ## install Debian's nginx and chromium when missing (root)
	@scripts/setup-system.sh

install: venv system ## everything a run needs

lint: venv ## ruff + mypy (strict on code)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check feed servers clients experiments pushlab tests
	$(BIN)/mypy

fmt: venv ## format and fix imports
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format feed servers clients experiments pushlab tests

test: install lint ## lint, then every test (long ones in short form)
	$(BIN)/pytest

test-all: install ## the long forms too (PUSHLAB_TEST_FULL=1)
	PUSHLAB_TEST_FULL=1 $(BIN)/pytest

serve: venv ## run the server with the ticker on 127.0.0.1:8000
	$(BIN)/pushlab serve

bench: install ## the quick four-transport comparison
	$(BIN)/pushlab bench

hotpath: venv ## WebSocket send-path cost: one client drains N events (JSON, then MessagePack)
	$(BIN)/python -m experiments.ws_hotpath --repo . --events 10000 --replays 20
	$(BIN)/python -m experiments.ws_hotpath --repo . --events 10000 --replays 20 --format msgpack

clean: ## remove caches (keeps .venv and results)
	rm -rf .mypy_cache .ruff_cache .pytest_cache

.PHONY: help venv system install lint fmt test test-all serve bench hotpath clean
