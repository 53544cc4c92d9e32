"""The `check-config` command: every problem of a configuration file at once, or what it holds
and what to mend (warnings, exit 0: directories this user cannot write, sticks it cannot open
now, which may be plugged in later)."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from ..config import Config, ConfigError, Problem, load_config
from ..daemon import NO_RECEIVERS
from ..outputs import unusable_entries
from ..plumbing import missing_extra
from ..receivers import device_problem
from ..web import WebConfigError, WebSecurity
from .exits import EXIT_OK, EXIT_USAGE, UsageError


def warnings(config: Config) -> list[str]:
    """Every warning, each on a line naming the file (and its line when known)."""
    found = [warning.format(config.source) for warning in config.warnings]
    for spec in config.receivers:
        problem = device_problem(spec.device) if spec.device else None
        if problem is not None:
            found.append(f"{config.source}: warning: receiver {spec.label}: {problem}")
    if config.influxdb is not None:
        found += [
            f"{config.source}: warning: InfluxDB spool: {entry}"
            for entry in unusable_entries(config.influxdb.spool)
        ]
    return found


def _web(config: Config) -> str:
    """What the web section sets up, read as the exporter will read it (`WebConfigError`)."""
    found = [f"listen {config.web.listen}"]
    if config.web.config_file is not None:
        security = WebSecurity.load(config.web.config_file)
        if security.context is not None:
            found.append("TLS")
        if security.users:
            found.append(f"basic auth ({len(security.users)} users)")
    if config.web.allowed_hosts:
        found.append(f"also answers to {', '.join(config.web.allowed_hosts)}")
    return ", ".join(found)


def _settlement(config: Config) -> list[str]:
    """What the file settles: its common rules and each meter's own."""
    lines = []
    if config.settlement is not None:
        lines.append(f"settlement: {config.settlement.describe()}")
    for meter in config.settled:
        assert meter.settlement is not None
        lines.append(f"meter {meter.name} settlement: {meter.settlement.describe()}")
    return lines


def missing_extras(config: Config) -> list[str]:
    """What the configuration needs that is not installed: one line per part, naming the extra
    that installs it."""
    wanted = [
        (spec.extra, f"the {spec.type} receiver {spec.label!r}")
        for spec in config.receivers
        if spec.extra is not None
    ]
    if config.mqtt is not None:
        wanted.append(("paho.mqtt.client", "the mqtt output"))
    if config.influxdb is not None and config.influxdb.api == "v2":
        wanted.append(("influxdb_client", "the InfluxDB output with api: v2"))
    return [line for module, what in wanted if (line := missing_extra(module, what)) is not None]


def run_check_config(args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> int:
    path = args.file or args.config
    if path is None:
        raise UsageError(
            "say which file to check: check-config FILE (or --config FILE, or AMIPLUS_CONFIG)"
        )
    try:
        config = load_config(path)
        web = _web(config)
        missing = missing_extras(config)
        if missing:
            raise ConfigError(str(path), [Problem(None, line) for line in missing])
    except ConfigError as error:
        for problem in error.problems:
            print(problem.format(error.source), file=sys.stderr)
        print(f"{len(error.problems)} problem(s) found.", file=sys.stderr)
        return EXIT_USAGE
    except WebConfigError as error:
        print(f"{path}: web config_file: {error}", file=sys.stderr)
        print("1 problem(s) found.", file=sys.stderr)
        return EXIT_USAGE
    stdout.write(f"{path}: OK\n")
    stdout.write(f"  web: {web}\n")
    for meter in config.meters:
        found = f" (the QR text holds: {meter.recognised})" if meter.recognised else ""
        stdout.write(
            f"  meter {meter.name}: address {meter.meter_id}, "
            f"key with fingerprint {meter.key.fingerprint}{found}\n"
        )
    for spec in config.receivers:
        stdout.write(f"  receiver {spec.label}: {spec.type} on {spec.where}\n")
    if not config.receivers:
        stdout.write(f"  note: {NO_RECEIVERS}\n")
    for line in _settlement(config):
        stdout.write(f"  {line}\n")
    for line in warnings(config):
        stdout.write(line + "\n")
    return EXIT_OK
