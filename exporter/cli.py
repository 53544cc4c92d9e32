"""Command line: argument parsing and dispatch to the commands (docs/contracts.md, section 1)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import __version__, daemon
from .amiplus.families import FAMILIES_BY_NAME
from .amiplus.simulated import DEFAULT_FAMILY, DEFAULT_KEY
from .commands import EXIT_OK, EXIT_USAGE, UsageError
from .commands.check_config import run_check_config
from .commands.decode import run_decode
from .commands.listen import run_listen_command
from .commands.settle import run_settle
from .commands.simulate import run_simulate
from .config import ConfigError, load_config
from .receivers.grammar import TYPES


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
        help="the configuration file (default: $AMIPLUS_CONFIG; without one: a simulated meter)",
    )
    parser.add_argument(
        "--listen", metavar="ADDRESS", help="where to serve HTTP, e.g. 127.0.0.1:9264 or :9264"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    check_parser = commands.add_parser(
        "check-config",
        help="check a configuration file and list every problem",
        description="Check a configuration file; list every problem with its line. Exit 2 if any.",
    )
    check_parser.add_argument("file", type=Path)
    check_parser.set_defaults(handler=run_check_config)
    decode_parser = commands.add_parser(
        "decode",
        help="decode telegrams given as arguments or one per line on standard input",
        description=(
            "Decode telegrams (plain hex with or without block CRCs, rtl_wmbus lines, "
            "telegram=|HEX| lines, rtl_433 JSON lines) and print one JSON object per "
            "telegram. Exit status 0 when all decoded, 1 when any failed, 2 for usage errors."
        ),
    )
    decode_parser.add_argument(
        "--key",
        help="the AES key from eLicznik ('Klucz szyfrujący'): 32 hex digits or 16 characters",
    )
    decode_parser.add_argument(
        "--qr", help="the text of the eLicznik QR code (address, factory number, key; ';')"
    )
    decode_parser.add_argument(
        "--id",
        help="use the key only for this meter address (8 digits, either byte order)",
    )
    decode_parser.add_argument("telegrams", nargs="*", metavar="TELEGRAM")
    decode_parser.set_defaults(handler=run_decode)

    listen_parser = commands.add_parser(
        "listen",
        help="show every meter the receivers hear, live: how to find your meter",
        description=(
            "Print every meter heard (ID, maker, version, type, RSSI, encrypted or not, "
            "telegram count, last seen) as a live table, or as JSON lines with --json. "
            "Receivers: " + ", ".join(TYPES) + ". Examples: --receiver im871a:/dev/ttyUSB0, "
            "--receiver 'lines:command=rtl_sdr -f 868.95M -s 1.6e6 - 2>/dev/null | rtl_wmbus', "
            "--receiver lines:listen=udp://0.0.0.0:9011, --receiver simulator."
        ),
    )
    listen_parser.add_argument(
        "--receiver",
        action="append",
        default=[],
        metavar="TYPE:WHERE",
        help="a receiver to listen with (repeat for several; default: those of --config)",
    )
    listen_parser.add_argument(
        "--id", action="append", default=[], help="your meter's address, to mark it (repeatable)"
    )
    listen_parser.add_argument("--qr", help="the eLicznik QR code text, to mark your meter")
    listen_parser.add_argument("--json", action="store_true", help="a JSON line per telegram")
    listen_parser.add_argument(
        "--duration", type=float, metavar="SECONDS", help="stop after this long (default: Ctrl-C)"
    )
    listen_parser.set_defaults(handler=run_listen_command)

    simulate_parser = commands.add_parser(
        "simulate",
        help="print simulated telegrams (hex lines) for other tools",
        description=(
            "Print encrypted telegrams of simulated meters, one hex line each, from meter "
            f"12345678 upwards, with the key {DEFAULT_KEY.hex().upper()}."
        ),
    )
    simulate_parser.add_argument("--meters", type=int, default=1)
    simulate_parser.add_argument("--family", default=DEFAULT_FAMILY, choices=FAMILIES_BY_NAME)
    simulate_parser.add_argument(
        "--interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="seconds between the telegrams of one meter",
    )
    simulate_parser.add_argument("--count", type=int, help="stop after this many telegrams")
    simulate_parser.add_argument(
        "--realtime", action="store_true", help="wait in real time between telegrams"
    )
    simulate_parser.set_defaults(handler=run_simulate)
    settle_parser = commands.add_parser(
        "settle",
        help="prosumer settlement of a CSV file of readings, per month",
        description=(
            "Balance a file of readings (CSV: time,energy_imported_kwh,energy_exported_kwh; "
            "times ISO 8601 with an offset) per hour and settle it by the configuration's "
            "settlement: (net-billing deposit or net-metering bank), printing one line per "
            "Warsaw calendar month, or a JSON object per month with --json."
        ),
    )
    settle_parser.add_argument(
        "--config",
        type=Path,
        default=argparse.SUPPRESS,
        help="the configuration with settlement: (and market_prices:, prices:)",
    )
    settle_parser.add_argument(
        "--meter", metavar="ID", help="settle by this meter's rules (its id or name)"
    )
    settle_parser.add_argument("--json", action="store_true", help="a JSON object per month")
    settle_parser.add_argument("readings", type=Path, metavar="READINGS.csv")
    settle_parser.set_defaults(handler=run_settle)
    return parser


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
