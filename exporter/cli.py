"""Command line: argument parsing and dispatch to the commands (docs/contracts.md, section 1)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from . import __version__, daemon
from .amiplus import DEFAULT_FAMILY, DEFAULT_KEY, FAMILIES_BY_NAME
from .commands import (
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    addon_arguments,
    run_addon,
    run_check_config,
    run_decode,
    run_listen_command,
    run_settle,
    run_simulate,
)
from .config import ConfigError, load_config
from .receivers import TYPES

CONFIG_HELP = "the configuration file (default: $AMIPLUS_CONFIG; without one: a simulated meter)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="amiplus-exporter",
        description="Receive, decrypt and export TAURON AMIplus wireless M-Bus meter readings.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--config",
        type=Path,
        default=os.environ.get("AMIPLUS_CONFIG") or None,
        metavar="FILE",
        help=CONFIG_HELP,
    )
    parser.add_argument(
        "--listen", metavar="ADDRESS", help="where to serve HTTP, e.g. 127.0.0.1:9264 or :9264"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        sub = commands.add_parser(command.name, help=command.help, description=command.description)
        command.arguments(sub)
        sub.set_defaults(handler=command.handler)
    return parser


def _config_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """`--config` after a command that reads the configuration, as well as before it."""
    parser.add_argument(
        "--config",
        type=Path,
        default=argparse.SUPPRESS,
        metavar="FILE",
        help=f"{what} (also before the command; default: $AMIPLUS_CONFIG)",
    )


def _check_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", type=Path, nargs="?", help="the file to check (default: that of --config)"
    )
    _config_argument(parser, "the configuration file to check")


def _decode_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key",
        help="the AES key from eLicznik ('Klucz szyfrujący'): 32 hex digits or 16 characters",
    )
    parser.add_argument(
        "--qr", help="the text of the eLicznik QR code (address, factory number, key; ';')"
    )
    parser.add_argument(
        "--id",
        help="use the key only for this meter address (8 digits, either byte order)",
    )
    parser.add_argument("telegrams", nargs="*", metavar="TELEGRAM")


def _listen_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--receiver",
        action="append",
        default=[],
        metavar="TYPE:WHERE",
        help="a receiver to listen with (repeat for several; default: those of --config)",
    )
    parser.add_argument(
        "--id", action="append", default=[], help="your meter's address, to mark it (repeatable)"
    )
    parser.add_argument("--qr", help="the eLicznik QR code text, to mark your meter")
    parser.add_argument("--json", action="store_true", help="a JSON line per telegram")
    parser.add_argument(
        "--duration", type=float, metavar="SECONDS", help="stop after this long (default: Ctrl-C)"
    )
    _config_argument(parser, "the configuration whose receivers and meters to use")


def _simulate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--meters", type=int, default=1)
    parser.add_argument("--family", default=DEFAULT_FAMILY, choices=FAMILIES_BY_NAME)
    parser.add_argument(
        "--interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="seconds between the telegrams of one meter",
    )
    parser.add_argument("--count", type=int, help="stop after this many telegrams")
    parser.add_argument(
        "--realtime", action="store_true", help="wait in real time between telegrams"
    )


def _settle_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=argparse.SUPPRESS,
        help="the configuration with settlement: (and market_prices:, prices:)",
    )
    parser.add_argument(
        "--meter", metavar="ID", help="settle by this meter's rules (its id or name)"
    )
    parser.add_argument("--json", action="store_true", help="a JSON object per month")
    parser.add_argument("readings", type=Path, metavar="READINGS.csv")


@dataclass(frozen=True, slots=True)
class Command:
    """A command of the command line: its name, help, arguments and what runs it."""

    name: str
    help: str
    description: str
    arguments: Callable[[argparse.ArgumentParser], None]
    handler: Callable[[argparse.Namespace, TextIO, TextIO], int]


COMMANDS = (
    Command(
        "check-config",
        "check a configuration file and list every problem",
        "Check a configuration file; list every problem with its line. Exit 2 if any.",
        _check_config_arguments,
        run_check_config,
    ),
    Command(
        "decode",
        "decode telegrams given as arguments or one per line on standard input",
        "Decode telegrams (plain hex with or without block CRCs, rtl_wmbus lines, "
        "telegram=|HEX| lines, JSON objects with the frame, rtl_433 JSON lines) and print one "
        "JSON object per telegram. Exit status 0 when all decoded, 1 when any failed, 2 for "
        "usage errors.",
        _decode_arguments,
        run_decode,
    ),
    Command(
        "listen",
        "show every meter the receivers hear, live: how to find your meter",
        "Print every meter heard (ID, maker, version, type, RSSI, encrypted or not, "
        "telegram count, last seen) as a live table, or as JSON lines with --json. "
        "Receivers: " + ", ".join(TYPES) + ". Examples: --receiver im871a:/dev/ttyUSB0, "
        "--receiver 'lines:command=rtl_sdr -f 868.95M -s 1.6e6 - 2>/dev/null | rtl_wmbus', "
        "--receiver lines:listen=udp://0.0.0.0:9011, --receiver mqtt:192.168.1.10 (every ESP32 "
        "gateway publishing to that broker), --receiver simulator.",
        _listen_arguments,
        run_listen_command,
    ),
    Command(
        "simulate",
        "print simulated telegrams (hex lines) for other tools",
        "Print encrypted telegrams of simulated meters, one hex line each, from meter "
        f"12345678 upwards, with the key {DEFAULT_KEY.hex().upper()}.",
        _simulate_arguments,
        run_simulate,
    ),
    Command(
        "settle",
        "prosumer settlement of a CSV file of readings, per month",
        "Balance a file of readings (CSV: time,energy_imported_kwh,energy_exported_kwh; "
        "times ISO 8601 with an offset) per hour and settle it by the configuration's "
        "settlement: (net-billing deposit or net-metering bank), printing one line per "
        "Warsaw calendar month, or a JSON object per month with --json.",
        _settle_arguments,
        run_settle,
    ),
    Command(
        "addon",
        "run as a Home Assistant add-on (options from DATA/options.json)",
        "Run the exporter as a Home Assistant add-on: the configuration from the options "
        "the Supervisor keeps in DATA/options.json, the state and the InfluxDB spool in "
        "DATA, MQTT to the broker Home Assistant offers unless the options name one, and "
        "the status page also on the ingress listener for the Supervisor's proxy.",
        addon_arguments,
        run_addon,
    ),
)


def run_exporter(args: argparse.Namespace) -> int:
    """No command: the exporter itself, configured or on the built-in simulated meter."""
    if args.config is None:
        return daemon.run(daemon.default_config(), None, args.listen)
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(error, file=sys.stderr)
        print(
            f"The configuration has {len(error.problems)} problem(s); nothing started.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if not config.receivers:
        print(f"{args.config}: {daemon.NO_RECEIVERS}", file=sys.stderr)
        return EXIT_USAGE
    return daemon.run(config, args.config, args.listen)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        return run_exporter(args)
    try:
        code: int = args.handler(args, sys.stdin, sys.stdout)
    except UsageError as error:
        print(f"amiplus-exporter {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (BrokenPipeError, KeyboardInterrupt):
        return EXIT_OK
    return code
