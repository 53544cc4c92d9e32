"""The `addon` command: the exporter as a Home Assistant add-on (docs/home-assistant.md).

It reads the options the Supervisor keeps in `<data>/options.json` into a configuration (the
YAML file's reader and messages; a problem names its option), keeps the calendar's state and
the InfluxDB spool in `<data>`, and serves the page a second time on the ingress listener.
When the options name no MQTT broker it asks the Supervisor for the one Home Assistant has
(`GET $SUPERVISOR_URL/services/mqtt` with the add-on's token); without one it runs without
MQTT and says what to install. The answer is read by plain code, `broker_from_answer`, around
one thin urllib call.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .. import daemon
from ..config import ConfigError, Problem, ServiceBroker, parse_options, wants_broker
from ..web import INGRESS_LISTEN, SUPERVISOR, Ingress
from .exits import EXIT_USAGE, UsageError

log = logging.getLogger(__name__)

DEFAULT_DATA = Path("/data")
DEFAULT_LISTEN = "0.0.0.0:9264"
SUPERVISOR_URL = "http://supervisor"  # the Supervisor's API on Home Assistant's network
ANSWER_LIMIT = 1 << 16  # bytes of the Supervisor's answer read at most
TIMEOUT = 10.0  # seconds for the Supervisor to answer
NOT_ENABLED = "Service not enabled"  # the Supervisor's words when no add-on provides MQTT
WITHOUT_MQTT = "running without MQTT (the page and /metrics work)"


@dataclass(frozen=True, slots=True)
class NoBroker:
    """Why the Supervisor offers no broker, and what to do, in words for the add-on's log."""

    reason: str


def broker_from_answer(status: int, body: bytes) -> ServiceBroker | NoBroker:
    """The broker in the Supervisor's answer to `GET /services/mqtt`: `{"result": "ok", "data":
    {"host", "port", "ssl", "username", "password", ...}}`, or an error with its message."""
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    message = document.get("message") if isinstance(document, dict) else None
    if status == 200 and isinstance(document, dict):
        broker = _broker(document.get("data"))
        if broker is not None:
            return broker
        return NoBroker("the Supervisor's answer names no broker (host and port)")
    if status == 400 and message == NOT_ENABLED:
        return NoBroker(
            f"no MQTT broker is installed in Home Assistant (the Supervisor: {NOT_ENABLED}): "
            "install the Mosquitto broker add-on and restart this add-on, or give another "
            "broker's host in the mqtt option"
        )
    if status in (401, 403):
        return NoBroker(
            f"the Supervisor refused this add-on's token (HTTP {status}): restart the add-on; "
            "or give the broker's host, username and password in the mqtt option"
        )
    said = message if isinstance(message, str) else body[:200].decode("utf-8", "replace")
    return NoBroker(f"the Supervisor answered HTTP {status} ({said.strip() or 'no message'})")


def _broker(data: Any) -> ServiceBroker | None:
    if not isinstance(data, Mapping):
        return None
    host = data.get("host")
    try:
        number = int(str(data.get("port")))  # the Supervisor's examples give it as text
    except ValueError:
        return None
    if not isinstance(host, str) or not host or not 0 < number < 65536:
        return None
    return ServiceBroker(
        host,
        number,
        data.get("ssl") is True,
        str(data.get("username") or ""),
        str(data.get("password") or ""),
    )


def ask_supervisor(url: str, token: str, timeout: float = TIMEOUT) -> ServiceBroker | NoBroker:
    """`GET <url>/services/mqtt` with the add-on's token (no proxy: the Supervisor is local)."""
    request = urllib.request.Request(
        f"{url.rstrip('/')}/services/mqtt", headers={"Authorization": f"Bearer {token}"}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            return broker_from_answer(response.status, response.read(ANSWER_LIMIT))
    except urllib.error.HTTPError as error:
        return broker_from_answer(error.code, error.read(ANSWER_LIMIT))
    except (OSError, ValueError) as error:  # URLError, a timeout, a malformed URL
        reason = getattr(error, "reason", None) or error
        return NoBroker(f"the Supervisor at {url} cannot be reached ({reason})")


def supervisor_broker(env: Mapping[str, str]) -> ServiceBroker | None:
    """The broker Home Assistant offers, or None with the reason logged."""
    token = env.get("SUPERVISOR_TOKEN")
    if token:
        answer = ask_supervisor(env.get("SUPERVISOR_URL") or SUPERVISOR_URL, token)
    else:
        answer = NoBroker(
            "no SUPERVISOR_TOKEN: not started by Home Assistant's Supervisor, so give the "
            "broker's host in the mqtt option"
        )
    if isinstance(answer, NoBroker):
        log.warning("MQTT: %s; %s", answer.reason, WITHOUT_MQTT)
        return None
    user = f" as {answer.username}" if answer.username else ""
    log.info("MQTT: the broker Home Assistant offers, %s%s", answer.where, user)
    return answer


def read_options(path: Path) -> dict[str, Any]:
    """The options the Supervisor wrote; ConfigError when they cannot be read."""
    try:
        options = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(str(path), [Problem(None, f"cannot read it: {error.strerror}")]) from None
    except ValueError as error:
        raise ConfigError(str(path), [Problem(None, f"not valid JSON: {error}")]) from None
    if not isinstance(options, dict):
        raise ConfigError(str(path), [Problem(None, "the options must be a JSON object")])
    return options


def addon_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options (`--listen` before the command counts as well)."""
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"default: {DEFAULT_DATA}")
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        default=argparse.SUPPRESS,  # the option before the command counts as well
        help=f"where to serve /metrics and the page (default: {DEFAULT_LISTEN})",
    )
    parser.add_argument(
        "--ingress-listen",
        metavar="HOST:PORT",
        default=INGRESS_LISTEN,
        help=f"where to serve the page to Home Assistant's ingress (default: {INGRESS_LISTEN})",
    )
    parser.add_argument(
        "--ingress-allow",
        metavar="ADDRESS",
        nargs="+",
        action="extend",
        help=f"who may use the ingress listener; others get 403 (default: {SUPERVISOR})",
    )


def run_addon(args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> int:
    daemon.setup_logging("info", "text")
    try:
        ingress = Ingress.parse(args.ingress_listen, args.ingress_allow or [SUPERVISOR])
    except ValueError as error:
        raise UsageError(str(error)) from None
    data: Path = args.data
    try:
        options = read_options(data / "options.json")
        broker = supervisor_broker(os.environ) if wants_broker(options) else None
        config = parse_options(options, data, broker)
    except ConfigError as error:
        print(error, file=sys.stderr)
        print(
            f"{len(error.problems)} problem(s) in the add-on's options; nothing started. "
            "Correct them on the add-on's Configuration tab and start it again.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return daemon.run(config, None, args.listen or DEFAULT_LISTEN, ingress)
