"""Network sessions shared by the receivers and the outputs: for MQTT, the broker's settings as
plain data (`Broker`, `TlsFiles`), a paho client built from them (TLS, credentials, last will),
the connection and the broker's answer, and every failure in plain words (`Problem`). No thread
lives here: the caller owns the client and its network loop. paho-mqtt is imported only when a
client is built."""

from .broker import DEFAULT_PORT, DEFAULT_TLS_PORT, KEEPALIVE, Broker, TlsFiles
from .session import (
    CONNACK_TIMEOUT,
    CONNECT_REASONS,
    STOPPED,
    Problem,
    Will,
    connect,
    connect_problem,
    lost,
    new_client,
    paho_client,
    refusal,
)

__all__ = [
    "CONNACK_TIMEOUT",
    "CONNECT_REASONS",
    "DEFAULT_PORT",
    "DEFAULT_TLS_PORT",
    "KEEPALIVE",
    "STOPPED",
    "Broker",
    "Problem",
    "TlsFiles",
    "Will",
    "connect",
    "connect_problem",
    "lost",
    "new_client",
    "paho_client",
    "refusal",
]
