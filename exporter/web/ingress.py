"""The status page in Home Assistant's sidebar, through the Supervisor's ingress proxy
(docs/home-assistant.md, section 4).

The proxy takes the browser's request for `/api/hassio_ingress/<token>/...`, strips that prefix
and forwards the rest to the add-on's ingress port, naming the prefix in `X-Ingress-Path`. The
page's URLs are all relative and the server never redirects, so the browser stays under the
prefix without the server reading the header. This listener serves the page and its data
only (`/metrics` stays on the exporter's own port) and only to the Supervisor's address:
Home Assistant has authenticated the user, and any other source gets 403.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial

from ..plumbing import parse_listen
from .browser import Listener
from .page import render
from .server import Page, Routes

#: The Supervisor's address on Home Assistant's internal network: the only source ingress has.
SUPERVISOR = "172.30.32.2"
DEFAULT_LISTEN = "0.0.0.0:8099"  # the port Home Assistant's ingress expects by default
#: What the ingress listener serves: the page and the data it asks for.
SERVED = frozenset({"/", "/index.html", "/api/status"})
NOT_SERVED = Page(404, "text/plain; charset=utf-8", b"not found\n")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class IngressRoutes(Routes):
    """The page (without its `/metrics` link) and `/api/status`; 404 for anything else. Its
    clients are Home Assistant's users, whom Home Assistant authenticated: they see what a
    client with a password sees (device paths, the configuration's place)."""

    def get(self, path: str, gzip_accepted: bool = False, private: bool = False) -> Page:
        if path.partition("?")[0] not in SERVED:
            return NOT_SERVED
        return super().get(path, gzip_accepted, private=True)


@dataclass(frozen=True)
class Ingress:
    """Where the ingress listener listens and whom it answers."""

    address: tuple[str, int]
    allowed: tuple[Network, ...]

    @classmethod
    def parse(cls, listen: str, allowed: Iterable[str]) -> Ingress:
        """From `--ingress-listen` and `--ingress-allow`; ValueError says what is wrong."""
        networks = []
        for text in allowed:
            try:
                networks.append(ipaddress.ip_network(text.strip(), strict=False))
            except ValueError:
                raise ValueError(
                    f"--ingress-allow {text!r} is not an address (e.g. {SUPERVISOR}) or a "
                    "network (e.g. 172.30.32.0/23)"
                ) from None
        return cls(parse_listen(listen), tuple(networks))

    @property
    def listener(self) -> Listener:
        """Only the allowed sources, any name (only the proxy reaches it), framed by Home
        Assistant's page."""
        return Listener(frame_protection=False, allowed_hosts=None, sources=self.allowed)

    def routes(self, routes: Routes) -> IngressRoutes:
        """The exporter's routes as the ingress listener serves them."""
        return IngressRoutes(
            routes.metrics, routes.status, partial(render, metrics=False), routes.ready
        )

    def describe(self) -> str:
        host, port = self.address
        return f"{host or '*'}:{port}, for {', '.join(str(n) for n in self.allowed)} only"
