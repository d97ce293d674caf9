# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint conformance bench clean

$(BIN)/mcp-platform: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

## Start the server on its embedded defaults (SQLite, example tools and data) at http://127.0.0.1:8000/mcp
run: $(BIN)/mcp-platform
	$(BIN)/mcp-platform serve

## Run the whole test suite
test: $(BIN)/mcp-platform
	$(BIN)/python -m pytest

## ruff, mypy --strict and the import-layers contract
lint: $(BIN)/mcp-platform
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## The official MCP conformance suite, both requirement sets (needs the npm registry)
conformance: $(BIN)/mcp-platform
	PATH="$(abspath $(BIN)):$$PATH" bash scripts/conformance.sh

## Throughput and latency against the official SDK
bench: $(BIN)/mcp-platform
	$(BIN)/python benchmarks/bench.py

clean:
	rm -rf $(VENV) .cache .mcp-platform
