"""Command line (design.md 3.1). Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TextIO

from . import __version__, daemon
from .config import ConfigError, load_config
from .credentials import CredentialsError, id_variants, normalise_meter_id, parse_qr
from .decode_command import KeyRing, available_cpus, render, run_stream
from .families import FAMILIES_BY_NAME
from .listen_command import run_listen
from .receiving import TYPES, ReceiverSpecError, build_source, parse_spec
from .simulator import DEFAULT_FAMILY, DEFAULT_KEY, SimulatorSource, simulated_meters
from .transports import SourceFinished
from .wmbus import KeyFormatError, MeterKey

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """A command-line value that cannot be used; the message says what to give instead."""


def key_ring(args: argparse.Namespace) -> KeyRing:
    """The key and meter IDs of --key, --qr and --id."""
    try:
        if args.qr is not None:
            if args.key is not None:
                raise UsageError("give either --key or --qr, not both")
            credentials = parse_qr(args.qr)
            ids = id_variants(args.id) if args.id is not None else credentials.meter_ids
            return KeyRing(credentials.key, ids)
        key = MeterKey.parse(args.key) if args.key is not None else None
        return KeyRing(key, id_variants(args.id) if args.id is not None else frozenset())
    except (KeyFormatError, CredentialsError) as error:
        raise UsageError(str(error)) from None


def run_decode(args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> int:
    keys = key_ring(args)
    if args.telegrams:
        text, failed = render(args.telegrams, keys)
        stdout.write(text)
    else:
        if stdin.isatty():
            print(
                "Reading telegrams from standard input, one per line (Ctrl-D ends).",
                file=sys.stderr,
            )
        failed = run_stream(stdin.buffer, keys, stdout, available_cpus())
    return EXIT_FAILURE if failed else EXIT_OK


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
    return parser


def run_listen_command(args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> int:
    config = None
    if args.config is not None:
        try:
            config = load_config(args.config)
        except ConfigError as error:
            raise UsageError(f"the configuration has problems:\n{error}") from None
    if not args.receiver and config is None:
        raise UsageError(
            "say which receiver to listen with, e.g. --receiver im871a:/dev/ttyUSB0, or give "
            "--config with receivers"
        )
    try:
        specs = [parse_spec(text) for text in args.receiver] or list(
            config.receivers if config else ()
        )
        for spec in specs:
            build_source(spec)  # complete: a listen address, a device, a file
        configured = {normalise_meter_id(text) for text in args.id}
        configured |= {meter.meter_id for meter in config.meters} if config else set()
        if args.qr:
            credentials = parse_qr(args.qr)
            configured |= {n for n in (credentials.address, credentials.factory_number) if n}
    except (ReceiverSpecError, CredentialsError) as error:
        raise UsageError(str(error)) from None
    return run_listen(
        specs, frozenset(configured), stdout, as_lines=args.json, duration=args.duration
    )


def run_simulate(args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> int:
    if args.meters < 1:
        raise UsageError("--meters must be at least 1")
    source = SimulatorSource(
        simulated_meters(args.meters, args.family),
        interval=args.interval,
        realtime=args.realtime,
        count=args.count,
    )
    source.open()
    try:
        while True:
            for chunk in source.read(timeout=1.0):
                stdout.write(chunk.data.decode())
                stdout.flush()
    except SourceFinished:
        return EXIT_OK


def run_check_config(args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as error:
        for problem in error.problems:
            print(problem.format(error.source), file=sys.stderr)
        print(f"{len(error.problems)} problem(s) found.", file=sys.stderr)
        return EXIT_USAGE
    stdout.write(f"{args.file}: OK\n")
    for meter in config.meters:
        found = f" (the QR text holds: {meter.recognised})" if meter.recognised else ""
        stdout.write(
            f"  meter {meter.name}: address {meter.meter_id}, key {meter.key.fingerprint}…{found}\n"
        )
    for spec in config.receivers:
        stdout.write(f"  receiver {spec.label}: {spec.type}\n")
    return EXIT_OK


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
