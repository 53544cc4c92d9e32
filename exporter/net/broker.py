"""Where an MQTT broker is and how to log in to it: plain data, read from the configuration and
used by every MQTT connection (the MQTT output, an MQTT-fed receiver)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PORT, DEFAULT_TLS_PORT = 1883, 8883
KEEPALIVE = 60  # seconds between the client's signs of life when it has nothing to send


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """TLS to the broker: the system's roots, or `ca_file`; a client certificate optional."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


@dataclass(frozen=True, slots=True)
class Broker:
    """One broker and the client's credentials; the password never appears in a repr."""

    host: str
    port: int = DEFAULT_PORT
    tls: TlsFiles | None = None
    username: str = ""
    password: str = field(default="", repr=False)
    client_id: str = ""  # empty: the user of these settings names itself
    keepalive: int = KEEPALIVE

    @property
    def where(self) -> str:
        """The broker's address for logs and the status page (no credentials)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{host}:{self.port}"
