"""The HTTP server: metrics, health, the status page and its data."""

from .browser import Listener
from .history import PageHistory
from .ingress import DEFAULT_LISTEN as INGRESS_LISTEN
from .ingress import SUPERVISOR, Ingress
from .page import render
from .security import SecurityFile, WebConfigError, WebSecurity
from .server import Routes, WebServer
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
    "WebSecurity",
    "WebServer",
    "render",
    "status",
]
