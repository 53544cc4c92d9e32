"""The `influxdb:` section: where readings go in InfluxDB (docs/contracts.md, section 5)."""

from __future__ import annotations

import os
import re
import urllib.parse
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..wmbus import shown
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


DEFAULT_SPOOL = Path("/var/lib/amiplus-exporter/spool")


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
    spool: Path = DEFAULT_SPOOL
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
    problem = spool_problem(options.get("spool", DEFAULT_SPOOL))
    if problem:
        reader.problem(fields.get("spool", node), f"influxdb spool: {problem}")
    if options["api"] == "v2" and not options.get("bucket"):
        reader.problem(
            node, "influxdb: api v2 needs a bucket (for InfluxDB 1.8: database/retention)"
        )
    if options["api"] == "v1" and not options.get("database"):
        reader.problem(node, "influxdb: api v1 needs a database")
    return InfluxConfig(**options)


def spool_problem(path: Path) -> str | None:
    """What would stop the exporter from using `path` as its spool, found by looking only
    (nothing is created): a file in its place, a read-only disk, no permission."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a directory; give a directory for the spool"
    try:
        read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
    except OSError as error:
        return f"{existing} cannot be examined ({error.strerror})"
    if read_only:
        return (
            f"{existing} is on a read-only file system; give a directory on a writable disk "
            "(in a container: a volume)"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        made = "" if existing == path else f" to create {path}"
        return (
            f"{existing} is not writable for this user (uid {os.getuid()}){made}; make it "
            "writable for the exporter's user or give another directory"
        )
    return None
