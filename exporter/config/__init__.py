"""Configuration (design.md 3.3): one YAML file, `${ENV}` substitution, `*_file` secrets.

Every problem is collected with its line and what to do, so `check-config` can list them all at
once; unknown keys are rejected with a "did you mean". Keys and tokens never appear in messages.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..amiplus.clock import WARSAW
from ..amiplus.credentials import (
    CredentialsError,
    id_variants,
    normalise_meter_id,
    parse_key,
    parse_qr,
)
from ..amiplus.families import FAMILIES_BY_NAME
from ..amiplus.simulated import DEFAULT_FAMILY
from ..receivers.base import LinkMode
from ..receivers.build import build_source
from ..receivers.grammar import STICKS, TYPES, ReceiverSpec, ReceiverSpecError
from ..wmbus import MeterKey

if TYPE_CHECKING:
    from yaml import Node

DEFAULT_LISTEN = ":9264"
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the configuration, with its line (1-based) when known."""

    line: int | None
    message: str

    def format(self, source: str) -> str:
        return f"{source}:{self.line}: {self.message}" if self.line else f"{source}: {self.message}"


class ConfigError(Exception):
    """The configuration cannot be used; `problems` lists every reason at once."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(p.format(source) for p in problems))


@dataclass(frozen=True, slots=True)
class MeterConfig:
    """A meter to decode: its address (either byte order matches), key and display name."""

    name: str
    meter_id: str
    ids: frozenset[str]
    key: MeterKey = field(repr=False)
    recognised: str = ""  # what a QR text turned out to hold, for check-config


@dataclass(frozen=True, slots=True)
class WebConfig:
    listen: str = DEFAULT_LISTEN
    config_file: Path | None = None  # exporter-toolkit web config: TLS and basic auth


@dataclass(frozen=True, slots=True)
class InfluxConfig:
    """Where readings go in InfluxDB (design.md 3.5); written by `outputs.influx`."""

    url: str
    api: str = "v2"
    bucket: str = ""
    org: str = ""
    token: str = field(default="", repr=False)
    database: str = ""
    retention_policy: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    spool: Path = Path("/var/lib/amiplus-exporter/spool")
    spool_max_mb: float = 100.0
    batch_size: int = 500
    flush_interval: float = 5.0
    timeout: float = 10.0
    ca_file: Path | None = None
    verify_tls: bool = True


@dataclass(frozen=True, slots=True)
class Config:
    meters: tuple[MeterConfig, ...]
    receivers: tuple[ReceiverSpec, ...]
    web: WebConfig = WebConfig()
    influxdb: InfluxConfig | None = None
    timezone: ZoneInfo = WARSAW
    stale_after: float | None = None  # None: derived from each meter's observed interval
    dedupe_window: float = 5.0
    log_level: str = "info"
    log_format: str = "text"
    source: str = "<built-in>"
    _by_id: dict[str, MeterConfig] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id = {meter_id: meter for meter in self.meters for meter_id in meter.ids}
        object.__setattr__(self, "_by_id", by_id)

    def meter_for(self, meter_id: str) -> MeterConfig | None:
        """The configured meter with this ID in either byte order."""
        return self._by_id.get(meter_id)


class _Reader:
    """Walks the YAML node tree, converting values and collecting problems with lines."""

    def __init__(self, env: Mapping[str, str], base: Path) -> None:
        import yaml  # noqa: PLC0415 (only when a file is read: the built-in setup needs none)

        self.yaml = yaml
        self.env = env
        self.base = base
        self.problems: list[Problem] = []

    def problem(self, node: Node | None, message: str) -> None:
        self.problems.append(Problem(node.start_mark.line + 1 if node else None, message))

    def mapping(self, node: Node, where: str, allowed: tuple[str, ...]) -> dict[str, Node]:
        if not isinstance(node, self.yaml.MappingNode):
            self.problem(node, f"{where} must be a mapping (key: value lines)")
            return {}
        out: dict[str, Node] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in out:
                self.problem(key_node, f"{where}: '{key}' is given twice")
            elif key not in allowed:
                import difflib  # noqa: PLC0415 (only for mistakes: keeps the daemon small)

                close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                hint = (
                    f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(allowed)}"
                )
                self.problem(key_node, f"{where}: unknown key '{key}'{hint}")
            else:
                out[key] = value_node
        return out

    def text(self, node: Node, where: str, *, secret: bool = False) -> str | None:
        if not isinstance(node, self.yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:null":
            self.problem(node, f"{where} must be a single value")
            return None
        missing: list[str] = []

        def substitute(match: re.Match[str]) -> str:
            value = self.env.get(match.group(1), match.group(2))
            if value is None:
                missing.append(match.group(1))
                return ""
            return value

        value = _ENV.sub(substitute, str(node.value))
        for name in missing:
            self.problem(node, f"{where}: the environment variable {name} is not set")
        if missing:
            return None
        return value if secret else value.strip()

    def number(self, node: Node, where: str, low: float, high: float) -> float | None:
        value = self.text(node, where)
        if value is None:
            return None
        try:
            number = float(value)
        except ValueError:
            self.problem(node, f"{where} must be a number, not {value!r}")
            return None
        if not low <= number <= high:
            self.problem(node, f"{where} must be between {low:g} and {high:g}, not {number:g}")
            return None
        return number

    def boolean(self, node: Node, where: str) -> bool | None:
        value = self.text(node, where)
        if value is None:
            return None
        lowered = value.lower()
        if lowered in ("true", "yes", "on", "1"):
            return True
        if lowered in ("false", "no", "off", "0"):
            return False
        self.problem(node, f"{where} must be true or false, not {value!r}")
        return None

    def choice(self, node: Node, where: str, choices: tuple[str, ...]) -> str | None:
        value = self.text(node, where)
        if value is not None and value.lower() not in choices:
            self.problem(node, f"{where} must be one of {', '.join(choices)}, not {value!r}")
            return None
        return value.lower() if value is not None else None

    def path(self, node: Node, where: str) -> Path | None:
        value = self.text(node, where)
        return None if value is None else (self.base / value).expanduser()

    def secret(
        self, fields: dict[str, Node], name: str, where: str
    ) -> tuple[Node | None, str | None]:
        """`name` given inline (or from ${ENV}), or `name_file` read from a file (Docker
        secrets); never both. The value is never echoed."""
        inline, from_file = fields.get(name), fields.get(f"{name}_file")
        if inline is not None and from_file is not None:
            self.problem(from_file, f"{where}: give either {name} or {name}_file, not both")
            return inline, None
        if inline is not None:
            return inline, self.text(inline, f"{where} {name}", secret=True)
        if from_file is not None:
            path = self.path(from_file, f"{where} {name}_file")
            if path is None:
                return from_file, None
            try:
                return from_file, path.read_text().strip()
            except OSError as error:
                self.problem(
                    from_file, f"{where}: cannot read {name}_file {path}: {error.strerror}"
                )
                return from_file, None
        return None, None

    def optional(
        self,
        fields: dict[str, Node],
        key: str,
        convert: Callable[[Node, str], T | None],
        where: str,
    ) -> T | None:
        node = fields.get(key)
        return None if node is None else convert(node, f"{where} {key}")


_TOP = ("meters", "receivers", "web", "influxdb", "timezone", "state", "log")
_METER = ("id", "key", "key_file", "qr", "qr_file", "name")
_COMMON_RECEIVER = ("type", "name", "silence_timeout")
_RECEIVER_KEYS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(STICKS, ("device", "baudrate", "mode")),
    "lines": ("command", "listen", "connect", "stdin"),
    "replay": ("file", "realtime"),
    "simulator": ("meters", "family", "interval", "realtime", "keys"),
}
_WEB = ("listen", "config_file")
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
_STATE = ("stale_after", "dedupe_window")
_LOG = ("level", "format")
_MODES = {"t1": LinkMode.T1, "c1+t1": LinkMode.C1_T1}


def _meter(reader: _Reader, node: Node, number: int) -> MeterConfig | None:
    fields = reader.mapping(node, f"meter {number}", _METER)
    name = reader.optional(fields, "name", reader.text, f"meter {number}")
    where = f"meter {name!r}" if name else f"meter {number}"
    key_node, key_text = reader.secret(fields, "key", where)
    qr_node, qr_text = reader.secret(fields, "qr", where)
    meter_id: str | None = None
    key: MeterKey | None = None
    ids: frozenset[str] = frozenset()
    recognised = ""
    if qr_text is not None:
        try:
            credentials = parse_qr(qr_text)
        except CredentialsError as error:
            reader.problem(qr_node, f"{where}: {error}")
            return None
        recognised = credentials.describe()
        meter_id, key, ids = credentials.address, credentials.key, credentials.meter_ids
    reported = False  # a problem with the id or key is already said; check the other anyway
    if "id" in fields:
        text = reader.text(fields["id"], f"{where} id")
        try:
            meter_id = None if text is None else normalise_meter_id(text)
        except CredentialsError as error:
            reader.problem(fields["id"], f"{where}: {error}")
        reported = meter_id is None
        ids = id_variants(meter_id) if meter_id else frozenset()
    if key_text is not None:
        if key is not None:
            reader.problem(key_node, f"{where}: the QR text already holds the key; remove key")
        try:
            key = parse_key(key_text)
        except CredentialsError as error:
            reader.problem(key_node, f"{where}: {error}")
            return None
    elif key_node is not None:
        return None  # the key's environment variable or file is missing: already reported
    if reported:
        return None
    if meter_id is None:
        reader.problem(
            qr_node or node,
            f"{where}: give the meter's id (eLicznik 'adres komunikacyjny', 8 digits)",
        )
        return None
    if key is None:
        reader.problem(
            qr_node or node,
            f"{where}: give its key (eLicznik 'Klucz szyfrujący'), key_file, or the QR text",
        )
        return None
    return MeterConfig(name or meter_id, meter_id, ids, key, recognised)


def _simulator_keys(reader: _Reader, node: Node, where: str) -> tuple[bytes, ...]:
    """The simulated meters' keys, in meter order (32 hex digits each)."""
    if not isinstance(node, reader.yaml.SequenceNode):
        reader.problem(node, f"{where} keys must be a list of 32-digit hex keys, one per meter")
        return ()
    keys = []
    for item in node.value:
        text = reader.text(item, f"{where} keys", secret=True)
        try:
            keys.append(bytes.fromhex(text or ""))
        except ValueError:
            keys.append(b"")
        if len(keys[-1]) != 16:
            reader.problem(item, f"{where}: each simulator key is 32 hex digits")
    return tuple(keys)


def _receiver(reader: _Reader, node: Node, number: int) -> ReceiverSpec | None:
    where = f"receiver {number}"
    allowed = _COMMON_RECEIVER + tuple(k for keys in _RECEIVER_KEYS.values() for k in keys)
    fields = reader.mapping(node, where, tuple(dict.fromkeys(allowed)))
    if "type" not in fields:
        reader.problem(node, f"{where}: say its type: one of {', '.join(TYPES)}")
        return None
    kind = reader.choice(fields["type"], f"{where} type", TYPES)
    if kind is None:
        return None
    for key in fields.keys() - set(_COMMON_RECEIVER) - set(_RECEIVER_KEYS[kind]):
        reader.problem(fields[key], f"{where}: a {kind} receiver takes no '{key}'")
    text = reader.text
    options: dict[str, Any] = {"type": kind}
    name = reader.optional(fields, "name", text, where)
    options["name"] = name or ""
    silence = reader.optional(
        fields, "silence_timeout", partial(reader.number, low=1, high=86400), where
    )
    if silence is not None:
        options["silence_timeout"] = silence
    for key in ("device", "command", "listen", "connect"):
        value = reader.optional(fields, key, text, where)
        if value is not None:
            options[key] = value
    if "file" in fields:
        path = reader.path(fields["file"], f"{where} file")
        options["file"] = str(path) if path else None
    for key in ("stdin", "realtime"):
        flag = reader.optional(fields, key, reader.boolean, where)
        if flag is not None:
            options[key] = flag
    if "mode" in fields:
        mode = reader.choice(fields["mode"], f"{where} mode", tuple(_MODES))
        if mode is not None:
            options["mode"] = _MODES[mode]
    baudrate = reader.optional(
        fields, "baudrate", partial(reader.number, low=1200, high=4_000_000), where
    )
    if baudrate is not None:
        options["baudrate"] = int(baudrate)
    meters = reader.optional(fields, "meters", partial(reader.number, low=1, high=100_000), where)
    if meters is not None:
        options["meters"] = int(meters)
    interval = reader.optional(
        fields, "interval", partial(reader.number, low=0.01, high=86400), where
    )
    if interval is not None:
        options["interval"] = interval
    if "family" in fields:
        family = reader.choice(fields["family"], f"{where} family", tuple(FAMILIES_BY_NAME))
        options["family"] = family or DEFAULT_FAMILY
    if "keys" in fields:
        options["keys"] = _simulator_keys(reader, fields["keys"], where)
    if kind == "replay":
        options.setdefault("silence_timeout", None)
    spec = ReceiverSpec(**options)
    try:
        build_source(spec)  # checks what is required, e.g. a device or a listen address
    except ReceiverSpecError as error:
        reader.problem(node, f"{where}: {error}")
        return None
    return spec


def _influx(reader: _Reader, node: Node) -> InfluxConfig | None:
    where = "influxdb"
    fields = reader.mapping(node, where, _INFLUX)
    if "url" not in fields:
        reader.problem(node, "influxdb: give its url, e.g. http://localhost:8086")
        return None
    url = reader.text(fields["url"], "influxdb url") or ""
    if not re.match(r"^https?://[^/]+", url):
        reader.problem(
            fields["url"], f"influxdb url must start with http:// or https://, not {url!r}"
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
    if options["api"] == "v2" and not options.get("bucket"):
        reader.problem(
            node, "influxdb: api v2 needs a bucket (for InfluxDB 1.8: database/retention)"
        )
    if options["api"] == "v1" and not options.get("database"):
        reader.problem(node, "influxdb: api v1 needs a database")
    return InfluxConfig(**options)


def _meters(reader: _Reader, node: Node | None) -> list[MeterConfig]:
    if node is None:
        return []
    if not isinstance(node, reader.yaml.SequenceNode):
        reader.problem(node, "meters must be a list (lines starting with '- ')")
        return []
    meters: list[MeterConfig] = []
    owner: dict[str, str] = {}
    for number, item in enumerate(node.value, start=1):
        meter = _meter(reader, item, number)
        if meter is None:
            continue
        clash = next((owner[i] for i in meter.ids if owner.get(i, meter.name) != meter.name), None)
        if clash is not None:
            reader.problem(
                item, f"meter {meter.name!r}: the address {meter.meter_id} is also {clash!r}'s"
            )
        owner.update(dict.fromkeys(meter.ids, meter.name))
        meters.append(meter)
    return meters


def _receivers(reader: _Reader, node: Node | None, root: Node) -> list[ReceiverSpec]:
    if not isinstance(node, reader.yaml.SequenceNode) or not node.value:
        reader.problem(node or root, "no receivers: add at least one (see README.md, 'Receivers')")
        return []
    receivers = [
        spec
        for number, item in enumerate(node.value, start=1)
        if (spec := _receiver(reader, item, number)) is not None
    ]
    names = [spec.label for spec in receivers]
    for name in sorted({n for n in names if names.count(n) > 1}):
        reader.problem(node, f"two receivers are called {name!r}: give each a name")
    return receivers


def _settings(reader: _Reader, top: dict[str, Node]) -> dict[str, Any]:
    """The optional sections: web, influxdb, timezone, state, log."""
    options: dict[str, Any] = {}
    if "web" in top:
        web = reader.mapping(top["web"], "web", _WEB)
        listen = reader.optional(web, "listen", reader.text, "web")
        config_file = reader.optional(web, "config_file", reader.path, "web")
        options["web"] = WebConfig(listen or DEFAULT_LISTEN, config_file)
    if "influxdb" in top:
        options["influxdb"] = _influx(reader, top["influxdb"])
    zone = reader.optional(top, "timezone", reader.text, "the configuration")
    if zone is not None:
        try:
            options["timezone"] = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            reader.problem(top["timezone"], f"timezone: unknown zone {zone!r}, e.g. Europe/Warsaw")
    if "state" in top:
        state = reader.mapping(top["state"], "state", _STATE)
        stale = state.get("stale_after")
        if stale is not None and reader.text(stale, "state stale_after") != "auto":
            options["stale_after"] = reader.number(stale, "state stale_after", 1, 7 * 86400)
        window = reader.optional(
            state, "dedupe_window", partial(reader.number, low=0, high=3600), "state"
        )
        if window is not None:
            options["dedupe_window"] = window
    if "log" in top:
        log = reader.mapping(top["log"], "log", _LOG)
        level = reader.optional(log, "level", partial(reader.choice, choices=LOG_LEVELS), "log")
        form = reader.optional(log, "format", partial(reader.choice, choices=LOG_FORMATS), "log")
        options.update({k: v for k, v in (("log_level", level), ("log_format", form)) if v})
    return options


def parse_config(
    text: str,
    source: str = "<config>",
    env: Mapping[str, str] | None = None,
    base: Path | None = None,
) -> Config:
    """A configuration from YAML text; raises `ConfigError` listing every problem."""
    reader = _Reader(os.environ if env is None else env, base or Path.cwd())
    try:
        root = reader.yaml.compose(text)
    except reader.yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = f"not valid YAML: {getattr(error, 'problem', error)}"
        raise ConfigError(source, [Problem(line, problem)]) from None
    if root is None:
        raise ConfigError(source, [Problem(None, "the file is empty; see README.md")])
    top = reader.mapping(root, "the configuration", _TOP)
    meters = _meters(reader, top.get("meters"))
    receivers = _receivers(reader, top.get("receivers"), root)
    options = _settings(reader, top)
    if reader.problems:
        raise ConfigError(source, sorted(reader.problems, key=lambda p: p.line or 0))
    return Config(tuple(meters), tuple(receivers), source=source, **options)


def load_config(path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and check a configuration file."""
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(str(path), [Problem(None, f"cannot read it: {error.strerror}")]) from None
    return parse_config(text, str(path), env, path.parent)
