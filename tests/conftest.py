"""Shared fixtures: the public test vectors, hypothesis profiles, and helpers."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from .servers import ExporterProcess, Prometheus

DATA = Path(__file__).parent / "data"

# "ci" keeps `make test` fast on two cores; "thorough" is for a deliberate long run:
#   HYPOTHESIS_PROFILE=thorough .venv/bin/pytest tests/test_properties.py
settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("thorough", max_examples=5000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def load_vectors() -> list[dict[str, Any]]:
    vectors: list[dict[str, Any]] = json.loads((DATA / "amiplus-vectors.json").read_text())[
        "vectors"
    ]
    return vectors


VECTORS = load_vectors()


def vector(name: str) -> dict[str, Any]:
    return next(v for v in VECTORS if v["name"] == name)


def assert_matches(actual: Any, expected: Any, path: str = "$") -> None:
    """Every expected key present with an equal value (floats with a small tolerance)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected an object, got {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{path}.{key} is missing from {sorted(actual)}"
            assert_matches(actual[key], value, f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{path}: expected a list, got {actual!r}"
        assert len(actual) == len(expected), f"{path}: {actual!r} != {expected!r}"
        for n, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_matches(a, e, f"{path}[{n}]")
    elif isinstance(expected, float):
        assert isinstance(actual, int | float), f"{path}: {actual!r} is not a number"
        assert math.isclose(actual, expected, rel_tol=1e-12, abs_tol=1e-9), (
            f"{path}: {actual!r} != {expected!r}"
        )
    else:
        assert actual == expected and type(actual) is type(expected), (
            f"{path}: {actual!r} != {expected!r}"
        )


@pytest.fixture(params=VECTORS, ids=[v["name"] for v in VECTORS])
def any_vector(request: pytest.FixtureRequest) -> dict[str, Any]:
    value: dict[str, Any] = request.param
    return value


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """One real Prometheus server for the whole session; tests set its scrape jobs."""
    server = Prometheus(tmp_path_factory.mktemp("prometheus"))
    yield server
    server.stop()


@pytest.fixture
def start_exporter(tmp_path: Path) -> Iterator[Callable[..., ExporterProcess]]:
    """Start exporter processes; each is stopped (and must stop cleanly) after the test."""
    started: list[ExporterProcess] = []

    def start(config: str | None, **options: Any) -> ExporterProcess:
        directory = tmp_path / f"exporter{len(started)}"
        directory.mkdir()
        process = ExporterProcess(directory, config, **options)
        started.append(process)
        return process

    yield start
    for process in started:
        assert process.stop() == 0, process.log()
