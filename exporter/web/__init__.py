"""The HTTP server: metrics, health, the status page and its data."""

from .history import PageHistory
from .ingress import DEFAULT_LISTEN as INGRESS_LISTEN
from .ingress import SUPERVISOR, Ingress
from .page import render
from .server import Listener, Routes, SecurityFile, WebConfigError, WebServer, parse_listen
from .status import status

__all__ = [
    "INGRESS_LISTEN",
    "SUPERVISOR",
    "Ingress",
    "Listener",
    "PageHistory",
    "Routes",
    "SecurityFile",
    "WebConfigError",
    "WebServer",
    "parse_listen",
    "render",
    "status",
]
