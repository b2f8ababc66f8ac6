# Goldfish developer commands. Each target sets up its own virtualenv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck format bench bench-quick schema clean setup

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

## demo: train the demo model (pipelines/demo) end to end in a temp project, through MCP
demo: $(STAMP)
	$(BIN)/goldfish demo

## test: the whole suite (unit, integration, e2e). As root it first makes a local Docker engine and
## the stage base images available (scripts/ensure-docker.sh); it also installs the TypeScript MCP
## client the agent-client tests drive (scripts/ensure-node-client.sh: npm ci from the lockfile) and
## Debian's chromium + chromium-driver for the dashboard's browser tests (scripts/ensure-chromium.sh).
## Under CI=true all must succeed; elsewhere the tests that need them skip (with the reason).
test: $(STAMP)
	@if [ "$$(id -u)" = 0 ]; then bash scripts/ensure-docker.sh || [ "$${CI:-}" != true ]; fi
	@bash scripts/ensure-node-client.sh || [ "$${CI:-}" != true ]
	@if [ "$$(id -u)" = 0 ]; then bash scripts/ensure-chromium.sh || [ "$${CI:-}" != true ]; fi
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

## lint: ruff + strict mypy over src and tests + import layering
lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

## bench: every benchmark (JSON lines); bench-quick runs each once (CI smoke)
bench: $(STAMP)
	$(BIN)/python -m bench

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick

## schema: regenerate schema/*.json from the pydantic models
schema: $(STAMP)
	$(BIN)/goldfish schema --out schema

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist
