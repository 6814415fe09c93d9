# pushlab — `make help` lists the targets.
# Python 3.11-3.13. Unless PYTHON is given (make venv PYTHON=python3.12), the newest one found:
# python3.13, 3.12, 3.11 on PATH, in pyenv's versions or in /usr/bin (scripts/pythons.sh).
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell scripts/pythons.sh | head -n 1)
endif
VERSION_OF := -c 'import sys; print("%d.%d" % sys.version_info[:2])'
PYVER  := $(shell $(PYTHON) $(VERSION_OF) 2>/dev/null)
CONFORMANCE_WS ?= pushlab-sansio
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYMARK := $(VENV)/.python-$(PYVER)

.DEFAULT_GOAL := help

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# .venv is made anew when it runs another Python than PYTHON (one version per venv).
$(PYMARK):
	@test -n "$(PYVER)" || { echo "no working Python 3.11-3.13 (PYTHON=$(PYTHON)): install one, or pass PYTHON=/path/to/python3.1x" >&2; exit 1; }
	@if [ -x $(BIN)/python ] && [ "$$($(BIN)/python $(VERSION_OF))" != "$(PYVER)" ]; then \
	  echo "$(VENV) runs Python $$($(BIN)/python $(VERSION_OF)), not $(PYVER): making it anew" >&2; rm -rf $(VENV); fi
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@touch $@

$(STAMP): $(PYMARK) pyproject.toml requirements.lock
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[lab,dev]'
	@touch $(STAMP)

venv: $(STAMP) ## create .venv and install pinned dependencies

system: ## install Debian's nginx, chromium and node when missing (root)
	@scripts/setup-system.sh

NODE_STAMP := baseline/node/node_modules/.installed

$(NODE_STAMP): baseline/node/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  cd baseline/node && npm ci --no-audit --no-fund && touch node_modules/.installed; \
	else echo "baseline: node/npm not installed; the Node baseline row will be skipped" >&2; fi

baseline: $(NODE_STAMP) ## npm ci the Node baseline's pinned deps (skipped without node)

install: venv system baseline ## everything a run needs

lint: venv ## ruff + mypy (strict on code) + the import contract (pyproject: tool.importlinter)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check feed servers clients experiments pushlab tests conformance
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: venv ## format and fix imports
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format feed servers clients experiments pushlab tests conformance

test: install lint ## lint, then every test (long ones in short form)
	$(BIN)/pytest

test-all: install ## the long forms too (PUSHLAB_TEST_FULL=1)
	PUSHLAB_TEST_FULL=1 $(BIN)/pytest

test-pythons: ## the core suite (tests/feed, a server smoke set) on each Python 3.1x found, in .venv-3.1x
	scripts/test-pythons.sh

serve: venv ## run the server with the ticker (and its admin control) on 127.0.0.1:8000
	$(BIN)/pushlab serve --admin

PROFILE ?= quick
bench: install ## the transport comparison: run, plot, report (PROFILE=quick|full|tiny)
	$(BIN)/pushlab bench --profile $(PROFILE)

bench-protocols: install ## every transport over h1, h1+TLS, h2+TLS and h3 (hypercorn): run, report
	$(BIN)/pushlab bench --profile protocols

P99_MS ?= 100
capacity: install ## where each transport breaks: knee search, ceiling, report (~10 min)
	$(BIN)/pushlab capacity --p99-ms $(P99_MS)

perf: install ## issue-8 fan-out cells vs the Node ws row, with the ratios table (~5 min)
	$(BIN)/pushlab bench --profile perf

compression: venv ## measure permessage-deflate on this feed's frames -> results/<UTC>_compression
	$(BIN)/python -m experiments.compression

docs: venv ## fill the figure blocks of the docs and README from results/REFERENCE
	$(BIN)/python -m experiments.docfigures docs/interview-prep.md docs/hardening.md README.md

notebook: venv ## open notebooks/ in JupyterLab, on the project's .venv kernel (python3)
	$(BIN)/jupyter lab --notebook-dir=notebooks

notebooks-run: venv ## re-execute every notebook and save its outputs (they are committed executed)
	$(BIN)/python -m experiments.notebooks

ladder: install ## idle connections per transport, 1k-19k per process, 36k on workers -> results/
	$(BIN)/pushlab ladder --profile full

storm: install ## kill and restart a server under 10k clients, jittered then the herd -> results/
	$(BIN)/pushlab storm --herd

cpu-profile: install ## where a server's CPU goes (perf): kernel vs user space, Node ws vs Python ws at 200 x 200
	$(BIN)/python -m experiments.cpu_profile

hotpath: venv ## WebSocket send-path cost: one client drains N events (JSON, then MessagePack)
	$(BIN)/python -m experiments.ws_hotpath --repo . --events 10000 --replays 20
	$(BIN)/python -m experiments.ws_hotpath --repo . --events 10000 --replays 20 --format msgpack
conformance: venv ## Autobahn|Testsuite: all 517 cases against WS /echo, ~12 min (CONFORMANCE_WS=impl)
	conformance/setup.sh >/dev/null
	$(BIN)/python conformance/run.py --scope full --ws $(CONFORMANCE_WS)

abuse: install ## adversarial suite, long form (pytest -m abuse), then the probe runner -> results/
	PUSHLAB_TEST_FULL=1 $(BIN)/pytest -m abuse
	$(BIN)/python -m experiments.abuse --form long

rtt: venv ## round trip: WebSocket message vs HTTP request, writes results/<stamp>_rtt
	$(BIN)/pushlab rtt

cluster: install ## 3 instances on Redis behind nginx (https, local CA) until Ctrl-C
	$(BIN)/pushlab cluster up --rate 10

cluster-down: ## stop a cluster started by `make cluster` (pid files in .run/cluster)
	$(BIN)/pushlab cluster down

cluster-faults: install ## SIGKILL + rolling restart under load: loss, reconnect p50/p99 -> results/
	$(BIN)/pushlab cluster faults

cluster-bench: install ## direct vs nginx, memory vs Redis, 1 vs 3 instances -> results/
	$(BIN)/pushlab cluster bench

pubsub-loss: venv ## plain Redis pub/sub vs pushlab Streams across a subscriber outage -> results/
	$(BIN)/pushlab cluster pubsub-loss

screenshots: install ## PNGs of the dashboard and whiteboard into docs/img (headless Chromium)
	$(BIN)/pushlab screenshots --out docs/img

clean: ## remove caches (keeps .venv and results)
	rm -rf .mypy_cache .ruff_cache .pytest_cache


.PHONY: help venv system baseline install lint fmt test test-all test-pythons serve bench bench-protocols perf screenshots \
	clean notebook notebooks-run \
	cluster cluster-down cluster-faults cluster-bench pubsub-loss compression docs conformance rtt \
	hotpath cpu-profile abuse capacity ladder storm
