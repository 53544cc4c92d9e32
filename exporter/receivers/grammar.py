"""Receivers as users describe them: one table of receiver types and their keys, read from the
YAML file and from `--receiver TYPE:...` on the command line alike. Pure data: checking a
description builds and opens nothing.

    im871a:/dev/serial/by-id/usb-IMST_...    (also iu891a, amber, cul, rc1180; socket://, rfc2217://)
    im871a:/dev/ttyUSB0,baudrate=57600,mode=c1+t1
    lines:command=rtl_sdr -f 868.95M -s 1.6e6 - 2>/dev/null | rtl_wmbus
    lines:listen=udp://0.0.0.0:9011          lines:listen=tcp://0.0.0.0:9022
    lines:connect=tcp://192.168.1.50:8888    lines:stdin
    replay:captures.txt   replay:captures.txt,realtime
    simulator   simulator:meters=3,family=nes,interval=1
    mqtt:192.168.1.10      mqtt:broker.lan:1884/wmbus/+/telegram,username=amiplus,password_file=pw
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..amiplus import DEFAULT_FAMILY, FAMILIES_BY_NAME
from ..net import DEFAULT_PORT, DEFAULT_TLS_PORT, Broker, TlsFiles
from ..plumbing import did_you_mean
from ..wmbus import shown
from .amber import Amber
from .base import Dialect, LinkMode
from .cul import Cul
from .imst import Im871a, Iu891a
from .rc1180 import Rc1180
from .topics import DEFAULT_TOPICS, filter_problem


class ReceiverSpecError(ValueError):
    """A receiver description that cannot be used; the message says what to write."""


class Kind(enum.Enum):
    """How an option's value is written."""

    TEXT = "text"
    NUMBER = "number"
    INTEGER = "whole number"
    FLAG = "true or false"
    CHOICE = "choice"
    PATH = "file"
    KEYS = "list of keys"  # YAML only
    TOPICS = "list of topic filters"  # YAML only (the command line takes one after the host)
    SECRET = "secret"  # YAML only: never on a command line, where others can read it


@dataclass(frozen=True, slots=True)
class Option:
    """One key a receiver description may carry."""

    name: str
    kind: Kind
    low: float = 0.0
    high: float = 0.0
    choices: tuple[str, ...] = ()
    rest_of_line: bool = False  # on the command line, takes everything after `name=`


_MODES = {"t1": LinkMode.T1, "c1+t1": LinkMode.C1_T1}

OPTIONS: dict[str, Option] = {
    option.name: option
    for option in (
        Option("name", Kind.TEXT),
        Option("silence_timeout", Kind.NUMBER, 1, 86400),
        Option("device", Kind.TEXT),
        Option("baudrate", Kind.INTEGER, 1200, 4_000_000),
        Option("mode", Kind.CHOICE, choices=tuple(_MODES)),
        Option("command", Kind.TEXT, rest_of_line=True),
        Option("listen", Kind.TEXT),
        Option("connect", Kind.TEXT),
        Option("stdin", Kind.FLAG),
        Option("file", Kind.PATH),
        Option("realtime", Kind.FLAG),
        Option("meters", Kind.INTEGER, 1, 100_000),
        Option("family", Kind.CHOICE, choices=tuple(FAMILIES_BY_NAME)),
        Option("interval", Kind.NUMBER, 0.01, 86400),
        Option("keys", Kind.KEYS),
        Option("host", Kind.TEXT),
        Option("port", Kind.INTEGER, 1, 65535),
        Option("tls", Kind.FLAG),
        Option("username", Kind.TEXT),
        Option("password", Kind.SECRET),
        Option("password_file", Kind.PATH),
        Option("client_id", Kind.TEXT),
        Option("qos", Kind.INTEGER, 0, 2),
        Option("topics", Kind.TOPICS),
    )
}
COMMON = ("name", "silence_timeout")
#: Options the command line does not take as `KEY=VALUE`.
YAML_ONLY = frozenset({Kind.KEYS, Kind.TOPICS, Kind.SECRET})
#: The options of an MQTT broker (the configuration reads them with the mqtt: section's rules).
BROKER_OPTIONS = ("host", "port", "tls", "username", "password", "password_file", "client_id")


@dataclass(frozen=True, slots=True)
class ReceiverType:
    """A kind of receiver: the options it takes, the one written right after `TYPE:` on the
    command line, its serial dialect (sticks), whether its input ends by itself, and the
    optional library it needs (a module of `plumbing.EXTRAS`)."""

    options: tuple[str, ...]
    positional: str | None = None
    dialect: type[Dialect] | None = None
    finite: bool = False
    extra: str | None = None


_STICK = ("device", "baudrate", "mode")
RECEIVER_TYPES: dict[str, ReceiverType] = {
    "im871a": ReceiverType(_STICK, "device", Im871a),
    "iu891a": ReceiverType(_STICK, "device", Iu891a),
    "amber": ReceiverType(_STICK, "device", Amber),
    "cul": ReceiverType(_STICK, "device", Cul),
    "rc1180": ReceiverType(_STICK, "device", Rc1180),
    "lines": ReceiverType(("command", "listen", "connect", "stdin")),
    "mqtt": ReceiverType((*BROKER_OPTIONS, "qos", "topics"), "host", extra="paho.mqtt.client"),
    "replay": ReceiverType(("file", "realtime"), "file", finite=True),
    "simulator": ReceiverType(("meters", "family", "interval", "realtime", "keys")),
}
TYPES = tuple(RECEIVER_TYPES)
#: Where a `lines` receiver reads, the first given of these.
LINE_INPUTS = ("command", "listen", "connect", "stdin")


@dataclass(frozen=True, slots=True)
class ReceiverSpec:
    """One receiver as configured: its type and whichever options it takes."""

    type: str
    name: str = ""
    device: str | None = None  # sticks: a tty, a by-id link, socket://, rfc2217://
    baudrate: int | None = None  # sticks: when the stick was set to another rate
    command: str | None = None  # lines: a command printing telegram lines
    listen: str | None = None  # lines: udp://host:port or tcp://host:port to listen on
    connect: str | None = None  # lines: tcp://host:port to connect to
    stdin: bool = False  # lines: read standard input
    file: str | None = None  # replay: a file of telegram lines
    realtime: bool | None = None  # replay: honour `+N` offsets (default no); simulator:
    # wall-clock pacing (default yes)
    mode: LinkMode = LinkMode.T1
    silence_timeout: float | None = 600.0  # reopen after this long without a frame
    meters: int = 1  # simulator
    family: str = DEFAULT_FAMILY  # simulator
    interval: float = 5.0  # simulator: seconds between telegrams of a meter
    keys: tuple[bytes, ...] = field(default=(), repr=False)  # simulator: a key per meter
    broker: Broker | None = None  # mqtt: where to subscribe (the configuration resolves it)
    topics: tuple[str, ...] = ()  # mqtt: topic filters (default: every known gateway's)
    qos: int = 0  # mqtt: the subscription's quality of service

    @property
    def label(self) -> str:
        """The receiver's name in metrics and logs."""
        return self.name or self.type

    @property
    def where(self) -> str:
        """Where it receives, as a summary line shows it: the device, command, address, file."""
        if self.type == "simulator":
            return f"{self.meters} simulated meter{'s' if self.meters > 1 else ''}"
        if self.stdin:
            return "standard input"
        if self.broker is not None:
            return f"{self.broker.where} {' '.join(self.topics)}"
        found = (self.device, self.command, self.listen, self.connect, self.file)
        return next((str(value) for value in found if value), "")

    @property
    def receiver_type(self) -> ReceiverType:
        return RECEIVER_TYPES[self.type]

    @property
    def extra(self) -> str | None:
        """The optional module it needs (see `plumbing.missing_extra`), if any."""
        return self.receiver_type.extra


def convert(option: Option, text: str) -> Any:
    """A value written as text, for an option; raises ReceiverSpecError saying what to write."""
    where = option.name
    if option.kind in (Kind.TEXT, Kind.PATH):
        return text
    if option.kind is Kind.FLAG:
        lowered = text.lower()
        if lowered in ("true", "yes", "on", "1", ""):
            return True
        if lowered in ("false", "no", "off", "0"):
            return False
        raise ReceiverSpecError(f"{where} must be true or false, not {shown(text)}")
    if option.kind is Kind.CHOICE:
        if text.lower() not in option.choices:
            hint = did_you_mean(text, option.choices, or_list=False)
            raise ReceiverSpecError(
                f"{where} must be one of {', '.join(option.choices)}, not {shown(text)}{hint}"
            )
        return _MODES[text.lower()] if option.name == "mode" else text.lower()
    if option.kind in (Kind.NUMBER, Kind.INTEGER):
        try:
            number = float(text)
        except ValueError:
            raise ReceiverSpecError(f"{where} must be a number, not {shown(text)}") from None
        if not option.low <= number <= option.high:
            raise ReceiverSpecError(
                f"{where} must be between {option.low:g} and {option.high:g}, not {number:g}"
            )
        if option.kind is Kind.INTEGER:
            if number != int(number):
                raise ReceiverSpecError(f"{where} must be a whole number, not {shown(text)}")
            return int(number)
        return number
    raise ReceiverSpecError(f"{where} cannot be given on the command line")


def host_port(url: str, what: str) -> tuple[str, int, str]:
    """(host, port, scheme) of `udp://HOST:PORT` or `tcp://HOST:PORT`."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        port = None
        parts = urlsplit("")
    if parts.scheme not in ("udp", "tcp") or not parts.hostname or port is None:
        raise ReceiverSpecError(
            f"{what} must look like udp://0.0.0.0:9011 or tcp://0.0.0.0:9022, not {shown(url)}"
        )
    return parts.hostname, port, parts.scheme


def problems(spec: ReceiverSpec) -> list[str]:
    """What a description lacks or gets wrong as a whole (each option is checked on reading)."""
    kind = spec.receiver_type
    if kind.dialect is not None and not spec.device:
        return [f"the {spec.type} receiver needs a device"]
    if spec.type == "lines":
        if not any(getattr(spec, name) for name in LINE_INPUTS):
            return [
                "a lines receiver needs command, listen, connect or stdin (listen: "
                "udp://HOST:PORT or tcp://HOST:PORT; connect: tcp://HOST:PORT)"
            ]
        try:
            if spec.listen:
                host_port(spec.listen, "listen")
            if spec.connect and host_port(spec.connect, "connect")[2] != "tcp":
                return ["connect takes tcp://HOST:PORT"]
        except ReceiverSpecError as error:
            return [str(error)]
    if spec.type == "replay" and not spec.file:
        return ["a replay receiver needs its file"]
    if spec.type == "mqtt":
        if spec.broker is None:
            return [
                "an mqtt receiver needs its broker's host (in a configuration file, it shares the "
                "mqtt: section's broker when it gives none)"
            ]
        return [problem for topic in spec.topics if (problem := filter_problem(topic))]
    return []


def build_spec(kind: str, values: Mapping[str, Any]) -> ReceiverSpec:
    """A description from converted option values; raises ReceiverSpecError."""
    options = dict(values)
    if RECEIVER_TYPES[kind].finite:
        options.setdefault("silence_timeout", None)
    if kind == "mqtt":
        options["topics"] = tuple(options.get("topics") or DEFAULT_TOPICS)
    spec = ReceiverSpec(kind, **options)
    found = problems(spec)
    if found:
        raise ReceiverSpecError("; ".join(found))
    return spec


def unknown_options(kind: str, names: set[str]) -> list[str]:
    """The options of `names` that a receiver of this type does not take."""
    allowed = {*COMMON, *RECEIVER_TYPES[kind].options}
    return sorted(names - allowed)


#: What a bare address on the command line most likely meant, by how it starts.
_MEANT = (
    ("udp://", "lines:listen={}"),
    ("tcp://", "lines:connect={} (or lines:listen={})"),
    ("/", "im871a:{}"),
    ("socket://", "im871a:{}"),
    ("rfc2217://", "im871a:{}"),
)


def _unknown_type(typed: str, text: str) -> ReceiverSpecError:
    """An unknown type, with the closest known one; a bare device or address gets the type
    written in front of it, as it is (device names keep their case)."""
    meant = next((form for start, form in _MEANT if text.startswith(start)), None)
    if meant is None:
        return ReceiverSpecError(
            f"unknown receiver type {shown(typed)}{did_you_mean(typed, TYPES)}"
        )
    others = [name for name, kind in RECEIVER_TYPES.items() if kind.dialect][1:]
    which = f" (or your stick's type: {', '.join(others)})" if meant.startswith("im871a") else ""
    return ReceiverSpecError(
        f"{shown(text)} needs its receiver type in front; did you mean "
        f"{meant.format(text, text)}?{which}"
    )


def parse_spec(text: str) -> ReceiverSpec:
    """`TYPE[:VALUE][,KEY=VALUE...]` from the command line."""
    typed, _, argument = text.partition(":")
    kind = typed.strip().lower()
    receiver_type = RECEIVER_TYPES.get(kind)
    if receiver_type is None:
        raise _unknown_type(typed.strip(), text.strip())
    values: dict[str, Any] = {}
    rest = argument
    while rest:
        key, equals, _ = rest.partition("=")
        option = OPTIONS.get(key.strip()) if equals else None
        if option is not None and option.rest_of_line:
            values[option.name] = rest.partition("=")[2]
            break
        item, _, rest = rest.partition(",")
        key, equals, value = item.partition("=")
        key = key.strip()
        if not equals and not values and receiver_type.positional and key not in OPTIONS:
            values[receiver_type.positional] = item
            continue
        option = OPTIONS.get(key)
        if option is None or option.kind in YAML_ONLY:
            known = (
                *COMMON,
                *(n for n in receiver_type.options if OPTIONS[n].kind not in YAML_ONLY),
            )
            raise ReceiverSpecError(
                f"{kind}: unknown option {shown(key)}{did_you_mean(key, known)}"
            )
        values[option.name] = convert(option, value)
    unknown = unknown_options(kind, set(values))
    if unknown:
        raise ReceiverSpecError(f"a {kind} receiver takes no {', '.join(unknown)}")
    return build_spec(kind, _command_line_broker(values) if kind == "mqtt" else values)


_ADDRESS = re.compile(r"(\[[^\]/]+\]|[^:/\[\]]+)(?::([0-9]{1,5}))?(?:/(.*))?")


def _command_line_broker(values: dict[str, Any]) -> dict[str, Any]:
    """An mqtt receiver's command-line options with its broker as one `Broker`: the host written
    `HOST[:PORT][/FILTER]` (an IPv6 address in brackets), a password read from its file."""
    address = _ADDRESS.fullmatch(values.get("host", ""))
    if address is None:
        raise ReceiverSpecError(
            "an mqtt receiver is written mqtt:HOST[:PORT][/FILTER], e.g. mqtt:192.168.1.10 or "
            f"mqtt:broker.lan:1884/wmbus/+/telegram, not {values.get('host')!r}"
        )
    host, port, topic = address.groups()
    tls = TlsFiles() if values.get("tls") else None
    port_number = values.get("port") or int(port or (DEFAULT_TLS_PORT if tls else DEFAULT_PORT))
    if not 1 <= port_number <= 65535:
        raise ReceiverSpecError(f"the broker's port must be between 1 and 65535, not {port}")
    password = ""
    if values.get("password_file"):
        try:
            password = Path(values["password_file"]).read_text().strip()
        except OSError as error:
            raise ReceiverSpecError(
                f"cannot read password_file {values['password_file']}: {error.strerror}"
            ) from None
    options = {name: value for name, value in values.items() if name not in BROKER_OPTIONS}
    options["broker"] = Broker(
        host.strip("[]"),
        port_number,
        tls,
        values.get("username", ""),
        password,
        values.get("client_id", ""),
    )
    if topic:
        options["topics"] = (topic,)
    return options
