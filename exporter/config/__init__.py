"""Configuration (docs/contracts.md, section 3): one YAML file, read into plain data.

Every problem is collected with its line and what to do, so `check-config` can list them all at
once; unknown keys are rejected with a "did you mean". Reading builds and opens nothing (a
receiver is checked against its grammar, not started). Keys and tokens never appear in
messages. Each section has its module here; this one holds the whole and the small sections.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..amiplus import STATE_UNWRITABLE, WARSAW
from ..plumbing import collector_paused
from ..receivers import ReceiverSpec
from ..wmbus import shown
from .addon import ADDON_SOURCE, OptionsTree, ServiceBroker, wants_broker
from .influxdb import InfluxConfig, influx_section
from .market_prices import MarketPrices, PriceSource, QuarterSeries, market_prices_section
from .meter_table import meters_from_files
from .meters import MeterConfig, meters_section
from .mqtt import DEFAULT_BASE_TOPIC, MqttConfig, mqtt_section
from .places import check_directory, default_state_directory
from .prices import PriceEntry, Prices, TariffPrice, prices_section
from .prometheus import PrometheusConfig, prometheus_section
from .reader import ConfigError, ConfigWarning, Problem, Reader, yaml_problem
from .receivers import receivers_section
from .settlement import (
    Coefficient,
    Entries,
    ExportPrice,
    NegativeQuarters,
    Scheme,
    Settlement,
    common_settlement,
)
from .web import WebConfig, web_section

if TYPE_CHECKING:
    from yaml import Node

__all__ = [
    "DEFAULT_BASE_TOPIC",
    "FORGET_AFTER",
    "OUTPUT_SECTIONS",
    "Coefficient",
    "Config",
    "ConfigError",
    "ConfigWarning",
    "ExportPrice",
    "InfluxConfig",
    "MarketPrices",
    "MeterConfig",
    "MqttConfig",
    "NegativeQuarters",
    "PriceEntry",
    "PriceSource",
    "Prices",
    "Problem",
    "PrometheusConfig",
    "QuarterSeries",
    "Scheme",
    "ServiceBroker",
    "Settlement",
    "TariffPrice",
    "WebConfig",
    "wants_broker",
]

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
#: The outputs' sections, each read by its module here: a new output adds its row (and its
#: row in `outputs.OUTPUTS`, which builds the output from what this reads).
OUTPUT_SECTIONS: dict[str, Callable[[Reader, Node], Any]] = {
    "influxdb": influx_section,
    "mqtt": mqtt_section,
}
#: Other sections read by a module of their own, each into the `Config` field of its name.
SECTIONS: dict[str, Callable[[Reader, Node], Any]] = {
    "prometheus": prometheus_section,
}
_TOP = (
    "meters",
    "meters_file",
    "receivers",
    "web",
    *OUTPUT_SECTIONS,
    *SECTIONS,
    "timezone",
    "state",
    "prices",
    "settlement",
    "market_prices",
    "log",
)
#: Sections that make a file enough for `settle` without receivers (the exporter needs them).
SETTLE_ONLY = ("settlement", "market_prices")
_STATE = ("directory", "stale_after", "dedupe_window", "forget_after_days")
#: How long a meter no longer configured keeps its entries in the state directory (seconds), and
#: what `forget_after_days` may say (a day to ten years).
FORGET_AFTER = 40 * 86400.0
FORGET_AFTER_DAYS = (1.0, 3660.0)
_LOG = ("level", "format")


@dataclass(frozen=True, slots=True)
class Config:
    meters: tuple[MeterConfig, ...]
    receivers: tuple[ReceiverSpec, ...]
    web: WebConfig = field(default_factory=WebConfig)
    outputs: Mapping[str, Any] = field(default_factory=dict)  # section name -> its settings
    prometheus: PrometheusConfig = field(default_factory=PrometheusConfig)
    timezone: ZoneInfo = WARSAW
    stale_after: float | None = None  # None: derived from each meter's observed interval
    state_directory: Path | None = None  # None: calendar periods are kept in memory only
    warnings: tuple[ConfigWarning, ...] = ()  # what to mend, though the exporter can run
    forget_after: float = FORGET_AFTER  # seconds, for meters no longer configured
    prices: Prices = field(default_factory=Prices)
    settlement: Settlement | None = None  # the settlement: section's own rules (for `settle`)
    market_prices: MarketPrices | None = None  # None: nothing is priced at the market
    dedupe_window: float = 5.0
    log_level: str = "info"
    log_format: str = "text"
    source: str = "<built-in>"
    _by_id: dict[str, MeterConfig] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id = {meter_id: meter for meter in self.meters for meter_id in meter.ids}
        object.__setattr__(self, "_by_id", by_id)

    @property
    def influxdb(self) -> InfluxConfig | None:
        found: InfluxConfig | None = self.outputs.get("influxdb")
        return found

    @property
    def mqtt(self) -> MqttConfig | None:
        found: MqttConfig | None = self.outputs.get("mqtt")
        return found

    @property
    def meter_ids(self) -> tuple[str, ...]:
        """The configured meters' addresses (the state's keys)."""
        return tuple(meter.meter_id for meter in self.meters)

    def meter_for(self, meter_id: str) -> MeterConfig | None:
        """The configured meter with this ID in either byte order."""
        return self._by_id.get(meter_id)

    @property
    def settled(self) -> tuple[MeterConfig, ...]:
        """The meters kept by prosumer settlement."""
        return tuple(meter for meter in self.meters if meter.settlement is not None)


def _settings(reader: Reader, top: dict[str, Node]) -> dict[str, Any]:
    """The optional sections: web, the outputs', `SECTIONS`, timezone, state, prices, log."""
    options: dict[str, Any] = {"state_directory": default_state_directory(reader.environment)}
    if "web" in top:
        options["web"] = web_section(reader, top["web"])
    options["outputs"] = {
        name: read(reader, top[name]) for name, read in OUTPUT_SECTIONS.items() if name in top
    }
    options.update(
        (name, read(reader, top[name])) for name, read in SECTIONS.items() if name in top
    )
    zone = reader.optional(top, "timezone", reader.text, "the configuration")
    if zone is not None:
        try:
            options["timezone"] = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            reader.problem(
                top["timezone"], f"timezone: unknown zone {shown(zone)}, e.g. Europe/Warsaw"
            )
    state: dict[str, Node] = {}
    if "state" in top:
        state = reader.mapping(top["state"], "state", _STATE)
        directory = reader.optional(state, "directory", reader.path, "state")
        if directory is not None:
            options["state_directory"] = directory
        stale = state.get("stale_after")
        if stale is not None and reader.text(stale, "state stale_after") != "auto":
            options["stale_after"] = reader.number(stale, "state stale_after", 1, 7 * 86400)
        window = reader.optional(
            state, "dedupe_window", partial(reader.number, low=0, high=3600), "state"
        )
        if window is not None:
            options["dedupe_window"] = window
        low, high = FORGET_AFTER_DAYS
        days = reader.optional(
            state, "forget_after_days", partial(reader.number, low=low, high=high), "state"
        )
        if days is not None:
            options["forget_after"] = days * 86400
    check_directory(reader, state.get("directory"), options["state_directory"], STATE_UNWRITABLE)
    if "prices" in top:
        options["prices"] = prices_section(reader, top["prices"])
    if "market_prices" in top:
        options["market_prices"] = market_prices_section(reader, top["market_prices"])
    if "log" in top:
        log = reader.mapping(top["log"], "log", _LOG)
        level = reader.optional(log, "level", partial(reader.choice, choices=LOG_LEVELS), "log")
        form = reader.optional(log, "format", partial(reader.choice, choices=LOG_FORMATS), "log")
        options.update({k: v for k, v in (("log_level", level), ("log_format", form)) if v})
    return options


def _without_clashes(
    reader: Reader, meters: list[MeterConfig], table: list[MeterConfig]
) -> list[MeterConfig]:
    """The CSV files' meters whose address the YAML file does not already configure."""
    taken = {meter_id: meter.name for meter in meters for meter_id in meter.ids}
    out = []
    for meter in table:
        clash = next((taken[i] for i in meter.ids if i in taken), None)
        if clash is None:
            out.append(meter)
        else:
            reader.problems.append(
                Problem(
                    None,
                    f"meters_file: the address {meter.meter_id} (either byte order) is already "
                    f"meter {shown(clash)}'s; give each meter once, with its own key",
                )
            )
    return out


def _needs_market(meters: list[MeterConfig], options: dict[str, Any]) -> bool:
    """Whether something is priced at the market (RCE for net-billing, a dynamic tariff)."""
    rules = [meter.settlement for meter in meters] + [options.get("settlement")]
    rce = any(
        rule is not None
        and rule.scheme is Scheme.NET_BILLING
        and rule.export_price is ExportPrice.RCE
        for rule in rules
    )
    prices: Prices = options.get("prices", Prices())
    return rce or prices.market


def parse_config(
    text: str,
    source: str = "<config>",
    env: Mapping[str, str] | None = None,
    base: Path | None = None,
) -> Config:
    """A configuration from YAML text; raises `ConfigError` listing every problem."""
    reader = Reader(os.environ if env is None else env, base or Path.cwd())
    with collector_paused():  # a fleet's file is 100,000 nodes
        try:
            root = reader.compose(text)
        except reader.yaml.YAMLError as error:
            raise ConfigError(source, [yaml_problem(error, text)]) from None
        if root is None:
            raise ConfigError(source, [Problem(None, "the file is empty; see README.md")])
        return _read(reader, root, source)


def _read(reader: Reader, root: Node, source: str) -> Config:
    """A configuration from a node tree: a YAML file's, or the one the add-on's options
    become; raises `ConfigError` listing every problem."""
    top = reader.mapping(root, "the configuration", _TOP)
    common: Entries = {}
    options: dict[str, Any] = {}
    if "settlement" in top:
        common, options["settlement"] = common_settlement(reader, top["settlement"])
    meters = meters_section(reader, top.get("meters"), common)
    if "meters_file" in top:
        table = meters_from_files(reader, top["meters_file"])
        if options.get("settlement") is not None:
            table = [replace(meter, settlement=options["settlement"]) for meter in table]
        meters += _without_clashes(reader, meters, table)
    settle_only = "receivers" not in top and any(key in top for key in SETTLE_ONLY)
    options.update(_settings(reader, top))
    mqtt: MqttConfig | None = options["outputs"].get("mqtt")
    shared = mqtt.broker if mqtt is not None else None
    receivers = [] if settle_only else receivers_section(reader, top.get("receivers"), root, shared)
    if "market_prices" not in options and _needs_market(meters, options):
        options["market_prices"] = MarketPrices()
    if reader.problems:
        ordered = sorted(reader.problems, key=lambda p: (p.source or "", p.line or 0))
        raise ConfigError(source, ordered)
    return Config(
        tuple(meters),
        tuple(receivers),
        source=source,
        warnings=tuple(reader.warnings),
        **options,
    )


def load_config(path: Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and check a configuration file."""
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(str(path), [Problem(None, f"cannot read it: {error.strerror}")]) from None
    return parse_config(text, str(path), env, path.parent)


def parse_options(
    options: Mapping[str, Any], data: Path, broker: ServiceBroker | None = None
) -> Config:
    """A configuration from the Home Assistant add-on's options (`<data>/options.json`), read
    by the same reader with the same messages; a problem names its option (`meters[1].key`)
    where a file's names its line. `broker`: the MQTT broker the Supervisor offers, used when
    the options name none. Raises `ConfigError` listing every problem."""
    tree = OptionsTree(data)
    root = tree.configuration(options, broker)
    return _read(Reader(None, data, tree.names), root, ADDON_SOURCE)
