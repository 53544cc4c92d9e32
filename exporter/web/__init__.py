"""The HTTP server: metrics, health, the status page and its data."""

from .history import PageHistory
from .page import render
from .server import Routes, SecurityFile, WebConfigError, WebServer, parse_listen
from .status import status

__all__ = [
    "PageHistory",
    "Routes",
    "SecurityFile",
    "WebConfigError",
    "WebServer",
    "parse_listen",
    "render",
    "status",
]
