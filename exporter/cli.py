"""Command line (design.md 3.1). Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from . import __version__
from .credentials import CredentialsError, id_variants, parse_qr
from .decode_command import KeyRing, available_cpus, render, run_stream
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
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "decode":
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return run_decode(args, sys.stdin, sys.stdout)
    except UsageError as error:
        print(f"amiplus-exporter decode: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK
