# The two commands of the README: `make run` and `make test`. Both work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Servers the integration tests start themselves (Debian packages).
DEBIAN_PACKAGES := prometheus influxdb chromium chromium-driver systemd victoria-metrics mosquitto

.PHONY: run test system-packages lint typecheck pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,influx,mqtt]'
	touch $@ $(VENV)/.run-installed

## run: the exporter on its built-in simulated meter; open the status page it prints
run: $(VENV)/.run-installed
	$(BIN)/amiplus-exporter

## test: install what the tests need, lint, type-check, run every test
test: system-packages lint typecheck pytest

system-packages:
	@missing=""; for package in $(DEBIAN_PACKAGES); do \
	  dpkg -s $$package >/dev/null 2>&1 || missing="$$missing $$package"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "Installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "The tests need Debian packages:$$missing (sudo apt-get install$$missing)"; \
	    exit 1; \
	  fi; \
	fi

lint: $(VENV)/.test-installed
	$(BIN)/ruff check exporter tests
	$(BIN)/ruff format --check exporter tests

typecheck: $(VENV)/.test-installed
	$(BIN)/mypy --strict exporter

pytest: $(VENV)/.test-installed
	$(BIN)/pytest

## bench: the benchmarks of tests/bench (figures printed, nothing asserted; about 45 minutes)
bench: $(VENV)/.test-installed
	$(BIN)/python tests/bench/bench_decode.py
	$(BIN)/python tests/bench/bench_exporter.py
	$(BIN)/python tests/bench/bench_scale.py
	$(BIN)/python tests/bench/bench_influx.py
	$(BIN)/python tests/bench/bench_page.py
	$(BIN)/python tests/bench/bench_mqtt.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
