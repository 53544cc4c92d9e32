"""Where to listen: the address family of a host to bind, as the resolver gives it."""

from __future__ import annotations

import socket


def listening_family(host: str, port: int, kind: socket.SocketKind) -> socket.AddressFamily:
    """The family of the first address `host` resolves to for binding (`0.0.0.0`, `::1`,
    `localhost`, a name); all interfaces (an empty host) listen on IPv4. An unknown name raises
    `OSError` (`socket.gaierror`) with the resolver's words."""
    if not host:
        return socket.AF_INET
    found = socket.getaddrinfo(host, port, type=kind, flags=socket.AI_PASSIVE)
    return socket.AddressFamily(found[0][0])
