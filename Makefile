# The two commands of the README: `make run` and `make test`. Both work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# What the integration tests start themselves (Debian packages): servers, a browser, a Docker
# engine and debootstrap for its stand-in base image, apparmor_parser for the add-on's profile;
# the benchmarks' arm images need qemu.
DEBIAN_PACKAGES := prometheus prometheus-alertmanager influxdb chromium chromium-driver systemd \
	docker.io docker-compose debootstrap ca-certificates victoria-metrics mosquitto apparmor
BENCH_PACKAGES := qemu-user-static
# Where `make run` serves: this machine only (`make run LISTEN=:9264` opens it to the network).
LISTEN ?= 127.0.0.1:9264
# The image's tag, as deploy/docker-compose.yml runs it; `make images` adds -amd64, -arm64, -armv7.
IMAGE ?= amiplus-exporter:local
# The image's labels: the version is exporter.__version__ (its one place), the revision the
# commit, the source the repository's address (origin's, without any user or password in it).
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"$$/\1/p' exporter/__init__.py)
REVISION := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
SOURCE ?= $(shell git remote get-url origin 2>/dev/null | sed -E \
	-e 's|^[^@/:]+@([^:/]+):|https://\1/|' -e 's|://[^/@]*@|://|' -e 's|\.git$$||')
IMAGE_LABELS := --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) \
	--build-arg SOURCE=$(SOURCE)
# Where `make dist` puts the sdist and the wheel.
DIST ?= dist
# The Home Assistant add-on: its image's name is the one its config.yaml names.
ADDON := deploy/home-assistant/amiplus-exporter
ADDON_IMAGE := $(shell sed -n 's/^image: *//p' $(ADDON)/config.yaml)

.PHONY: run test test-fast system-packages lint typecheck pytest dist bench image images addon clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# exporter/__init__.py holds the version, which the installed metadata repeats.
$(VENV)/.run-installed: pyproject.toml exporter/__init__.py | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml exporter/__init__.py | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,influx,mqtt]'
	touch $@ $(VENV)/.run-installed

## run: the exporter on its built-in simulated meter; open the status page it prints
run: $(VENV)/.run-installed
	$(BIN)/amiplus-exporter --listen $(LISTEN)

## test: install what the tests need, lint, type-check, run every test
test: system-packages lint typecheck pytest

system-packages:
	@missing=""; for package in $(DEBIAN_PACKAGES); do \
	  dpkg -s $$package >/dev/null 2>&1 || missing="$$missing $$package"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "Installing Debian packages:$$missing"; \
	    apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
	        $$missing >/dev/null; \
	  else \
	    echo "The tests need Debian packages:$$missing (sudo apt-get install$$missing)"; \
	    exit 1; \
	  fi; \
	fi

lint: $(VENV)/.test-installed
	$(BIN)/ruff check exporter tests
	$(BIN)/ruff format --check exporter tests

typecheck: $(VENV)/.test-installed
	$(BIN)/mypy --strict exporter tests

# Three workers on two cores: most tests wait on a server, a browser or an engine. A file's tests
# share a worker, and the Docker engine's tests all share one (tests/conftest.py).
pytest: $(VENV)/.test-installed
	$(BIN)/pytest -n 3

## test-fast: the inner loop, every test that starts no server, process, browser or engine
test-fast: $(VENV)/.test-installed
	$(BIN)/pytest -m "not integration" -q

## dist: the sdist and the wheel in $(DIST)/, checked with twine
dist: $(VENV)/.test-installed
	rm -f $(DIST)/*.whl $(DIST)/*.tar.gz
	$(BIN)/python -m build --outdir $(DIST) .
	$(BIN)/twine check --strict $(DIST)/*

## bench: the benchmarks of tests/bench (figures printed, nothing asserted; about 45 minutes,
## 8 more the first time, when the arm stand-in bases are made)
bench: $(VENV)/.test-installed
	$(MAKE) system-packages DEBIAN_PACKAGES="$(DEBIAN_PACKAGES) $(BENCH_PACKAGES)"
	$(BIN)/python tests/bench/bench_decode.py
	$(BIN)/python tests/bench/bench_exporter.py
	$(BIN)/python tests/bench/bench_scale.py
	$(BIN)/python tests/bench/bench_influx.py
	$(BIN)/python tests/bench/bench_http.py
	$(BIN)/python tests/bench/bench_page.py
	$(BIN)/python tests/bench/bench_alerts.py
	$(BIN)/python tests/bench/bench_mqtt.py
	$(BIN)/python tests/bench/bench_images.py
	$(BIN)/python tests/bench/bench_addon.py

## image: the container image for this machine, tagged $(IMAGE) (needs a Docker engine)
image:
	docker build --file deploy/Dockerfile $(IMAGE_LABELS) --tag $(IMAGE) .

## images: the images for linux/amd64, linux/arm64 and linux/arm/v7 (Raspberry Pi OS 64 and
## 32 bit); a foreign platform builds under qemu (Debian: apt-get install qemu-user-static)
images:
	for platform in linux/amd64 linux/arm64 linux/arm/v7; do \
	  tag=$$(echo $$platform | cut -d/ -f2- | tr -d /); \
	  docker build --platform $$platform --file deploy/Dockerfile \
	    $(IMAGE_LABELS) --tag $(IMAGE)-$$tag . || exit 1; \
	done

## addon: the Home Assistant add-on's image for this machine, named and tagged as its
## config.yaml says (a release pushes it for linux/amd64 and linux/arm64: README, Releasing)
addon:
	docker build --file deploy/Dockerfile --target addon $(IMAGE_LABELS) \
	  --tag $(ADDON_IMAGE):$(VERSION) .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist *.egg-info
