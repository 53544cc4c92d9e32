"""Where to listen and where that is: a listen address, the address family of a host to bind
(as the resolver gives it), and this machine's own addresses (where a listener on every
interface is reachable)."""

from __future__ import annotations

import socket
import struct

#: Hosts that mean "every interface" to bind().
EVERY_INTERFACE = frozenset({"", "0.0.0.0", "::"})
SIOCGIFADDR = 0x8915  # Linux: an interface's IPv4 address


def listening_family(host: str, port: int, kind: socket.SocketKind) -> socket.AddressFamily:
    """The family of the first address `host` resolves to for binding (`0.0.0.0`, `::1`,
    `localhost`, a name); all interfaces (an empty host) listen on IPv4. An unknown name raises
    `OSError` (`socket.gaierror`) with the resolver's words."""
    if not host:
        return socket.AF_INET
    found = socket.getaddrinfo(host, port, type=kind, flags=socket.AI_PASSIVE)
    return socket.AddressFamily(found[0][0])


def interface_addresses() -> list[str]:
    """This machine's IPv4 addresses, one per interface that has one, loopback first, as the
    kernel gives them (Linux); none where it cannot be asked."""
    try:
        import fcntl  # noqa: PLC0415 (Unix only)

        names = [name for _, name in socket.if_nameindex()]
    except (ImportError, OSError):
        return []
    found: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for name in names:
            request = struct.pack("256s", name.encode()[:15])
            try:
                answer = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, request)
            except OSError:  # no IPv4 address, or not Linux
                continue
            found.append(socket.inet_ntoa(answer[20:24]))
    return sorted(dict.fromkeys(found), key=lambda a: (not a.startswith("127."), a))


def parse_listen(text: str) -> tuple[str, int]:
    """`:9264`, `0.0.0.0:9264`, `127.0.0.1:9264` or `[::1]:9264` to (host, port). A
    `ValueError` says what is wrong without repeating the text (the caller shows it as it may)."""
    host, colon, port = text.strip().rpartition(":")
    if not colon or not port.isdigit():
        raise ValueError("a listen address ends in :PORT, e.g. :9264 or 127.0.0.1:9264")
    number = int(port)
    if not 0 <= number <= 65535:
        raise ValueError(f"the port {number} is out of range (0-65535)")
    if host.startswith("[") != host.endswith("]") or (":" in host and not host.startswith("[")):
        raise ValueError("an IPv6 address is written in brackets, e.g. [::1]:9264")
    return host.strip("[]"), number
