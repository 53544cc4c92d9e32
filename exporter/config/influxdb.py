"""The `influxdb:` section: where readings go in InfluxDB (docs/contracts.md, section 5)."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..amiplus import SPOOL_UNWRITABLE
from ..wmbus import shown
from .places import check_directory, default_spool
from .reader import Reader

if TYPE_CHECKING:
    from yaml import Node

_INFLUX = (
    "url",
    "api",
    "bucket",
    "org",
    "token",
    "token_file",
    "database",
    "retention_policy",
    "username",
    "password",
    "password_file",
    "spool",
    "spool_max_mb",
    "batch_size",
    "flush_interval",
    "timeout",
    "ca_file",
    "verify_tls",
)


@dataclass(frozen=True, slots=True)
class InfluxConfig:
    """Where readings go in InfluxDB (docs/contracts.md, section 5); written by `outputs.influx`."""

    url: str = field(repr=False)  # it may hold a user and password: `where` shows it
    api: str = "v2"
    bucket: str = ""
    org: str = ""
    token: str = field(default="", repr=False)
    database: str = ""
    retention_policy: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    spool: Path = field(default_factory=default_spool)
    spool_max_mb: float = 100.0
    batch_size: int = 500
    flush_interval: float = 5.0
    timeout: float = 10.0
    ca_file: Path | None = None
    verify_tls: bool = True

    @property
    def where(self) -> str:
        """The URL for logs and the status page."""
        return without_credentials(self.url)


def without_credentials(url: str) -> str:
    """A URL without the user and password it may hold, nor its query."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def influx_section(reader: Reader, node: Node) -> InfluxConfig | None:
    where = "influxdb"
    fields = reader.mapping(node, where, _INFLUX)
    if "url" not in fields:
        reader.problem(node, "influxdb: give its url, e.g. http://localhost:8086")
        return None
    url = reader.text(fields["url"], "influxdb url") or ""
    if not re.match(r"^https?://[^/]+", url):
        reader.problem(
            fields["url"],
            "influxdb url must start with http:// or https://, not "
            + shown(without_credentials(url)),
        )
    options: dict[str, Any] = {"url": url}
    api = reader.optional(fields, "api", partial(reader.choice, choices=("v1", "v2")), where)
    options["api"] = api or "v2"
    for key in ("bucket", "org", "database", "retention_policy", "username"):
        value = reader.optional(fields, key, reader.text, where)
        if value is not None:
            options[key] = value
    for key in ("token", "password"):
        _, value = reader.secret(fields, key, where)
        if value is not None:
            options[key] = value
    for key, low, high in (
        ("spool_max_mb", 0.001, 1_000_000),
        ("flush_interval", 0.1, 3600),
        ("timeout", 1, 600),
    ):
        number = reader.optional(fields, key, partial(reader.number, low=low, high=high), where)
        if number is not None:
            options[key] = number
    batch = reader.optional(
        fields, "batch_size", partial(reader.number, low=1, high=100_000), where
    )
    if batch is not None:
        options["batch_size"] = int(batch)
    for key in ("spool", "ca_file"):
        path = reader.optional(fields, key, reader.path, where)
        if path is not None:
            options[key] = path
    verify = reader.optional(fields, "verify_tls", reader.boolean, where)
    if verify is not None:
        options["verify_tls"] = verify
    options.setdefault("spool", default_spool(reader.environment))
    check_directory(reader, fields.get("spool", node), options["spool"], SPOOL_UNWRITABLE)
    if options["api"] == "v2" and not options.get("bucket"):
        reader.problem(
            node, "influxdb: api v2 needs a bucket (for InfluxDB 1.8: database/retention)"
        )
    if options["api"] == "v1" and not options.get("database"):
        reader.problem(node, "influxdb: api v1 needs a database")
    return InfluxConfig(**options)
