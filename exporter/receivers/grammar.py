"""Receivers as users describe them: YAML or `--receiver TYPE:...` on the command line.

im871a:/dev/serial/by-id/usb-IMST_...    (also iu891a, amber, cul, rc1180; socket://, rfc2217://)
lines:command=rtl_sdr -f 868.95M -s 1.6e6 - 2>/dev/null | rtl_wmbus
lines:listen=udp://0.0.0.0:9011          lines:listen=tcp://0.0.0.0:9022
lines:connect=tcp://192.168.1.50:8888    lines:stdin
replay:captures.txt   replay:captures.txt,realtime
simulator   simulator:meters=3,family=nes,interval=1
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..amiplus.simulated import DEFAULT_FAMILY
from .amber import Amber
from .base import Dialect, LinkMode
from .cul import Cul
from .imst import Im871a, Iu891a
from .rc1180 import Rc1180

#: Receiver types with a serial dialect (sticks).
STICKS: dict[str, type[Dialect]] = {
    "im871a": Im871a,
    "iu891a": Iu891a,
    "amber": Amber,
    "cul": Cul,
    "rc1180": Rc1180,
}
TYPES = (*STICKS, "lines", "replay", "simulator")


class ReceiverSpecError(ValueError):
    """A receiver description that cannot be used; the message says what to write."""


@dataclass(frozen=True, slots=True)
class ReceiverSpec:
    """One receiver as configured: its type and whichever of the other fields it needs."""

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

    @property
    def label(self) -> str:
        """The receiver's name in metrics and logs."""
        return self.name or self.type


def host_port(url: str, what: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("udp", "tcp") or not parts.hostname or parts.port is None:
        raise ReceiverSpecError(
            f"{what} must look like udp://0.0.0.0:9011 or tcp://0.0.0.0:9022, not {url!r}"
        )
    return parts.hostname, parts.port, parts.scheme


def parse_spec(text: str) -> ReceiverSpec:
    """`TYPE[:ARGUMENT]` from the command line into a `ReceiverSpec`."""
    kind, _, argument = text.partition(":")
    kind = kind.strip().lower()
    if kind in STICKS:
        if not argument:
            raise ReceiverSpecError(f"say which device: {kind}:/dev/ttyUSB0")
        return ReceiverSpec(kind, device=argument)
    if kind == "lines":
        key, _, value = argument.partition("=")
        if key == "stdin" and not value:
            return ReceiverSpec(kind, stdin=True)
        if key == "command" and value:
            return ReceiverSpec(kind, command=value)
        if key == "listen" and value:
            return ReceiverSpec(kind, listen=value)
        if key == "connect" and value:
            return ReceiverSpec(kind, connect=value)
        raise ReceiverSpecError(
            "a lines receiver needs command=..., listen=udp://HOST:PORT, listen=tcp://HOST:PORT, "
            "connect=tcp://HOST:PORT or stdin"
        )
    if kind == "replay":
        path, _, option = argument.partition(",")
        if not path:
            raise ReceiverSpecError("say which file: replay:captures.txt")
        return ReceiverSpec(kind, file=path, realtime=option == "realtime", silence_timeout=None)
    if kind == "simulator":
        options = dict(item.partition("=")[::2] for item in argument.split(",") if item)
        unknown = set(options) - {"meters", "family", "interval", "realtime"}
        if unknown:
            raise ReceiverSpecError(f"unknown simulator options: {', '.join(sorted(unknown))}")
        try:
            return ReceiverSpec(
                kind,
                meters=int(options.get("meters", 1)),
                family=options.get("family", DEFAULT_FAMILY),
                interval=float(options.get("interval", 5.0)),
                realtime=options.get("realtime", "yes") != "no",
            )
        except ValueError as error:
            raise ReceiverSpecError(f"simulator options: {error}") from None
    raise ReceiverSpecError(f"unknown receiver type {kind!r}; one of: {', '.join(TYPES)}")
