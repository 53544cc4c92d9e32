"""What protects the status in a browser: the response headers every answer carries, and the
Host check that keeps other web sites from reading the status through DNS rebinding.

A page that shows when a household is at home must not be framed by another site, sniffed into
another type, leak its address in a Referer, run any script but its own, or talk to any server
but this one. A web site can make its own name resolve to this exporter's address (DNS
rebinding); the browser then lets it read the answers, but it still sends its own name in
`Host`, so without basic auth only the server's own names and addresses are answered.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .page import INLINE_SOURCES

#: The page's policy: its own inline script and style (by hash), requests to this server only.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        f"script-src {INLINE_SOURCES['script-src']}",
        f"style-src {INLINE_SOURCES['style-src']}",
        "connect-src 'self'",
        "img-src 'self' data:",
        "base-uri 'none'",
        "form-action 'none'",
    )
)
HSTS_MAX_AGE = 31_536_000  # a year, as browsers expect for Strict-Transport-Security


@dataclass(frozen=True, slots=True)
class Listener:
    """What one listening address allows; the defaults suit the exporter's own port.

    `frame_protection`: no other page may show the answers in a frame (off for a listener whose
    page a proxy shows in a frame, as Home Assistant's ingress does). `allowed_hosts`: names
    answered besides the server's own without basic auth; None answers every name (a listener
    only a proxy can reach). `sources`: the client addresses answered (None: any; others get
    403, as the add-on's ingress listener answers only the Supervisor: web/ingress.py)."""

    frame_protection: bool = True
    allowed_hosts: tuple[str, ...] | None = ()
    sources: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] | None = None

    def answers(self, address: str) -> bool:
        """Whether a client at `address` is one this listener serves."""
        if self.sources is None:
            return True
        try:
            source = ipaddress.ip_address(address.partition("%")[0])
        except ValueError:
            return False
        if isinstance(source, ipaddress.IPv6Address) and source.ipv4_mapped is not None:
            source = source.ipv4_mapped  # an IPv4 client of a dual-stack socket
        return any(source in network for network in self.sources)


MAIN_LISTENER = Listener()


def response_headers(
    listener: Listener, *, tls: bool, configured: Mapping[str, str]
) -> list[tuple[str, str]]:
    """The headers of every answer; those of the web config file replace the server's own."""
    policy = CONTENT_SECURITY_POLICY
    headers = {
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    if listener.frame_protection:
        headers["X-Frame-Options"] = "DENY"
        policy += "; frame-ancestors 'none'"
    headers["Content-Security-Policy"] = policy
    if tls:
        headers["Strict-Transport-Security"] = f"max-age={HSTS_MAX_AGE}"
    headers.update(configured)
    return list(headers.items())


class HostCheck:
    """The names this server answers to without basic auth: every IP address, `localhost`, the
    machine's host name (also with `.local`, and its first label when it is a dotted name), the
    host of the listen address, and the names the configuration adds."""

    def __init__(self, listen_host: str, extra: Iterable[str]) -> None:
        machine = socket.gethostname().lower()
        names = {"localhost", machine, f"{machine}.local", machine.partition(".")[0]}
        names.update(name.lower().rstrip(".") for name in (listen_host, *extra) if name)
        self.names = frozenset(names)

    def allows(self, host: str | None) -> bool:
        """Whether a request's `Host` (with or without its port) names this server; a request
        without one (HTTP/1.0) is no browser's."""
        if host is None:
            return True
        name = _without_port(host.strip()).lower().rstrip(".")
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return name in self.names
        return True


def _without_port(host: str) -> str:
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    name, colon, port = host.rpartition(":")
    return name if colon and port.isdigit() else host
