"""The `check-config` command: every problem of a configuration file at once, or what it holds."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from ..config import Config, ConfigError, load_config
from ..daemon import NO_RECEIVERS
from ..outputs import unusable_entries
from ..web import WebConfigError, WebSecurity
from .exits import EXIT_OK, EXIT_USAGE


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


def run_check_config(args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> int:
    try:
        config = load_config(args.file)
        web = _web(config)
    except ConfigError as error:
        for problem in error.problems:
            print(problem.format(error.source), file=sys.stderr)
        print(f"{len(error.problems)} problem(s) found.", file=sys.stderr)
        return EXIT_USAGE
    except WebConfigError as error:
        print(f"{args.file}: web config_file: {error}", file=sys.stderr)
        print("1 problem(s) found.", file=sys.stderr)
        return EXIT_USAGE
    stdout.write(f"{args.file}: OK\n")
    stdout.write(f"  web: {web}\n")
    for meter in config.meters:
        found = f" (the QR text holds: {meter.recognised})" if meter.recognised else ""
        stdout.write(
            f"  meter {meter.name}: address {meter.meter_id}, "
            f"key with fingerprint {meter.key.fingerprint}{found}\n"
        )
    for spec in config.receivers:
        stdout.write(f"  receiver {spec.label}: {spec.type}\n")
    if not config.receivers:
        stdout.write(f"  note: {NO_RECEIVERS}\n")
    if config.settlement is not None:
        stdout.write(f"  settlement: {config.settlement.describe()}\n")
    for meter in config.settled:
        assert meter.settlement is not None
        stdout.write(f"  meter {meter.name} settlement: {meter.settlement.describe()}\n")
    if config.influxdb is not None:
        for warning in unusable_entries(config.influxdb.spool):
            stdout.write(f"  warning: InfluxDB spool: {warning}\n")
    return EXIT_OK
