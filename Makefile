# The two commands of the README: `make run` and `make test`. Both work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXAMPLE_KEY := FBA95687613B73604C320A16AA8892EA

.PHONY: run test lint typecheck pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,influx]'
	touch $@ $(VENV)/.run-installed

## run: decode the bundled example telegrams (the daemon on a simulated meter comes next)
run: $(VENV)/.run-installed
	$(BIN)/amiplus-exporter decode --key $(EXAMPLE_KEY) < exporter/examples/telegrams.txt

## test: lint, type-check the protocol core, run every test
test: lint typecheck pytest

lint: $(VENV)/.test-installed
	$(BIN)/ruff check exporter tests
	$(BIN)/ruff format --check exporter tests

typecheck: $(VENV)/.test-installed
	$(BIN)/mypy --strict exporter

pytest: $(VENV)/.test-installed
	$(BIN)/pytest

## bench: the decoder benchmarks of tests/bench (figures printed, nothing asserted)
bench: $(VENV)/.test-installed
	$(BIN)/python tests/bench/bench_decode.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
