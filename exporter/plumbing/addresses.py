"""Where to listen and where that is: the address family of a host to bind, as the resolver
gives it, and this machine's own addresses (where a listener on every interface is reachable)."""

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
