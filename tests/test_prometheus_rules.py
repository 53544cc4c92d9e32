"""The Prometheus rules and example configurations in deploy/prometheus/: checked and unit-tested
with promtool, and every recording rule evaluated against a real exporter scraped by a real
Prometheus server."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import require, wait_until
from .servers import Prometheus, Start, job

DEPLOY = Path(__file__).parent.parent / "deploy" / "prometheus"
RULES = DEPLOY / "rules" / "amiplus.rules.yml"
UNIT_TESTS = DEPLOY / "tests" / "amiplus.rules.test.yml"
FLEET = DEPLOY / "fleet"
#: Every rules file and its promtool unit tests.
RULE_FILES = {
    RULES: UNIT_TESTS,
    FLEET / "rules" / "amiplus-fleet.rules.yml": FLEET / "tests" / "amiplus-fleet.rules.test.yml",
}
SCRAPE_CONFIGS = ("prometheus.yml", "prometheus-tls.yml")


def promtool(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Run promtool; a failed test with its whole output unless it exits with 0."""
    command = [require("promtool", "prometheus"), *arguments]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, (
        f"`promtool {' '.join(arguments)}` exited with {result.returncode}:\n"
        f"{result.stdout}{result.stderr}"
    )
    return result


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rules(kind: str, path: Path = RULES) -> list[dict[str, Any]]:
    """The rules of a rules file that have `kind` ("alert" or "record")."""
    return [rule for group in load(path)["groups"] for rule in group["rules"] if kind in rule]


def rule_count(path: Path = RULES) -> int:
    return len(rules("alert", path)) + len(rules("record", path))


@pytest.mark.integration
@pytest.mark.parametrize("path", RULE_FILES, ids=[path.name for path in RULE_FILES])
def test_the_rules_file_is_valid(path: Path) -> None:
    result = promtool("check", "rules", "--lint=all", "--lint-fatal", str(path))
    assert f"SUCCESS: {rule_count(path)} rules found" in result.stdout, result.stdout


@pytest.mark.integration
@pytest.mark.parametrize("name", SCRAPE_CONFIGS)
def test_the_example_scrape_configs_are_valid(name: str, tmp_path: Path) -> None:
    config = load(DEPLOY / name)
    (rule_file,) = config["rule_files"]
    assert (DEPLOY / rule_file).resolve() == RULES.resolve()  # relative to the config's directory
    (scrape,) = config["scrape_configs"]
    assert re.fullmatch(".*amiplus.*", scrape["job_name"])  # what the "exporter down" alerts expect
    assert scrape["static_configs"] == [{"targets": ["amiplus-exporter:9264"]}]
    # promtool checks that the files a scrape job names exist (the client certificate and key):
    # a copy of the configuration next to the rules, with dummy files
    files = [
        *scrape.get("tls_config", {}).values(),
        scrape.get("basic_auth", {}).get("password_file"),
    ]
    files = [file for file in files if file is not None]
    if name == "prometheus-tls.yml":
        assert scrape["scheme"] == "https"
        assert scrape["basic_auth"]["username"]
        assert len(files) == 4  # ca_file, cert_file, key_file, password_file
    for file in files:
        assert not Path(file).is_absolute(), file
        (tmp_path / file).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / file).write_text("dummy\n")
    shutil.copy(DEPLOY / name, tmp_path / name)
    shutil.copytree(RULES.parent, (tmp_path / rule_file).parent)
    result = promtool("check", "config", "--lint=all", "--lint-fatal", str(tmp_path / name))
    # the rules were found through rule_files and checked too
    assert f"SUCCESS: {rule_count()} rules found" in result.stdout, result.stdout


@pytest.mark.integration
@pytest.mark.parametrize("tests", RULE_FILES.values(), ids=[p.name for p in RULE_FILES.values()])
def test_the_rule_unit_tests_pass(tests: Path) -> None:
    result = promtool("test", "rules", str(tests))
    assert "SUCCESS" in result.stdout, result.stdout


@pytest.mark.parametrize("path", RULE_FILES, ids=[path.name for path in RULE_FILES])
def test_every_rule_has_unit_tests_and_every_alert_explains_itself(path: Path) -> None:
    tests = load(RULE_FILES[path])["tests"]
    alert_cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    expressions = " ".join(
        case["expr"] for test in tests for case in test.get("promql_expr_test", [])
    )
    for alert in rules("alert", path):
        name = alert["alert"]
        cases = [case for case in alert_cases if case["alertname"] == name]
        assert any(case["exp_alerts"] for case in cases), f"{name}: no case where it fires"
        assert any(not case["exp_alerts"] for case in cases), f"{name}: no case where it does not"
        assert alert["labels"]["severity"] in {"warning", "critical"}, name
        annotations = alert["annotations"]
        assert set(annotations) == {"summary", "description", "what_to_check"}, name
        assert "{{" not in annotations["summary"], f"{name}: the summary is plain words"
        if not alert["expr"].startswith("absent("):  # nothing to show when nothing is there
            assert "{{ $" in annotations["description"], f"{name}: the description shows no value"
    for record in rules("record", path):
        name = record["record"]
        assert re.search(rf"(?<![\w:]){re.escape(name)}(?![\w:])", expressions), (
            f"{name}: no promql_expr_test checks its value"
        )


def inlined(expression: str) -> str:
    """A recording rule's expression with the recording rules it reads replaced by their own
    expressions, for a Prometheus server that does not load the rules."""
    for record in rules("record"):
        pattern = rf"(?<![\w:]){re.escape(record['record'])}(?![\w:])"
        replacement = f"({record['expr'].strip()})".replace("\\", "\\\\")  # taken literally
        expression = re.sub(pattern, replacement, expression)
    return expression


def test_every_recording_rule_works_on_the_exporters_metrics(
    prometheus: Prometheus, start_exporter: Start
) -> None:
    exporter = start_exporter(None)  # the built-in simulated meter: a telegram every 2 seconds
    prometheus.scrape(job("amiplus", exporter.port))
    instance = f"127.0.0.1:{exporter.port}"
    expressions = {record["record"]: inlined(record["expr"]) for record in rules("record")}

    def results() -> dict[str, list[tuple[dict[str, str], float]]]:
        """Every rule's result (a failed query fails the test: invalid PromQL), only this
        exporter's series where the rule keeps the instance label."""
        out = {}
        for name, expression in expressions.items():
            rows = [
                (dict(labels), value) for labels, value in prometheus.values(expression).items()
            ]
            out[name] = [
                (labels, value)
                for labels, value in rows
                if labels.get("instance", instance) == instance
            ]
        return out

    # rate() and increase() need two scrapes of the registers; the rest one
    assert wait_until(lambda: all(results().values()), 20), {
        name: rows for name, rows in results().items() if not rows
    }
    found = results()
    for name, rows in found.items():
        assert "12345678" in {labels["meter_id"] for labels, _ in rows}, (name, rows)
    for name in (
        "meter:amiplus_energy_imported_kwh:increase1h",
        "meter:amiplus_energy_exported_kwh:increase1h",
        "meter:amiplus_energy_imported_kwh:increase1d",
        "meter:amiplus_energy_exported_kwh:increase1d",
    ):
        ((_, kwh),) = found[name]
        assert 0 <= kwh < 1, (name, kwh)  # a household in a few seconds
    for name in (
        "meter_tariff:amiplus_energy_imported_kwh:increase1h",
        "meter_tariff:amiplus_energy_imported_kwh:increase1d",
    ):
        assert {labels["tariff"] for labels, _ in found[name]} >= {"1", "2"}, found[name]
        assert all(0 <= kwh < 1 for _, kwh in found[name]), found[name]
    ((_, net),) = found["meter:amiplus_power_watts:net"]
    assert -10_000 < net < 10_000
    volts = {
        labels["phase"]: value
        for labels, value in found["meter_phase:amiplus_voltage_volts:avg10m"]
    }
    assert set(volts) == {"L1", "L2", "L3"}
    assert all(224 <= value <= 252 for value in volts.values()), volts  # the simulator's range
