"""The HTTP server: metrics, health, the status page and its data."""

from .browser import Listener
from .history import PageHistory
from .page import render
from .security import SecurityFile, WebConfigError, WebSecurity
from .server import Routes, WebServer
from .status import status

__all__ = [
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
