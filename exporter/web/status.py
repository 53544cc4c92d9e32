"""The status of the exporter as plain data: for `/api/status` and the status page.

Built from snapshots at request time. No key or token ever goes in: only IDs, names and the
fingerprints that tell keys apart.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ..amiplus import (
    ADVICE,
    NOT_HEARD,
    NOT_HEARD_NO_RECEIVER,
    OUTPUT_ADVICE,
    advice,
    device_type_words,
    midnight,
    period_start,
    table,
)
from ..config import Config, ConfigWarning
from ..pipeline import Calendar, Figure, HeardMeter, MeterState, Output, Settlements, State
from ..receivers import ReceiverStats
from ..settlement import LedgerView, PeriodTotals, Scope, SettlementFigure, figure_table
from .history import PageHistory

#: Which histories `/api/status?history=...` may ask for: the last hour, the last 24 hours.
HOUR, DAY = "1", "day"

#: What keeps an output from working now, read from its status (docs/contracts.md sections 6
#: and 7): the code of its plain words in `OUTPUT_ADVICE` is `output:reason`.
PROBLEM_OF: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "influxdb": lambda shown: shown.get("spool_problem") or shown.get("error_reason") or "",
    "mqtt": lambda shown: "" if shown.get("connected") else shown.get("error_reason") or "",
}


def _output(output: Output) -> dict[str, Any] | None:
    """An output's status, with its problem in plain words (`problem`: code, what, advice)
    when it has one."""
    shown = output.status()
    if shown is None:
        return None
    find = PROBLEM_OF.get(output.name)
    reason = find(shown) if find else ""
    words = OUTPUT_ADVICE.get(f"{output.name}:{reason}")
    if words is not None:
        shown = {**shown, "problem": {"code": reason, **words.as_json()}}
    return shown


def fields_for_page() -> list[dict[str, Any]]:
    """The field table as the page needs it: key, unit, shape and the labels in both
    languages."""
    return [
        {
            "key": row.key,
            "tariff_key": row.tariff_key or None,
            "unit": row.unit,
            "shape": row.shape.name.lower(),
            "label": {"en": row.label.en, "pl": row.label.pl},
        }
        for row in table().rows
    ]


def settlement_figures_for_page() -> list[dict[str, Any]]:
    """The settlement figure table as the page needs it: key, scope, unit, schemes, whether a
    period's figure is a column (and the figure shown under it), whether it is a warning, the
    labels in both languages."""
    return [
        {
            "key": row.key,
            "scope": "now" if row.scope is Scope.NOW else "period",
            "unit": row.unit,
            "schemes": sorted(scheme.value for scheme in row.schemes),
            "column": row.column,
            "detail": row.detail or None,
            "warning": row.warning,
            "label": {"en": row.label.en, "pl": row.label.pl},
        }
        for row in figure_table().rows
    ]


def _figures(rows: tuple[SettlementFigure, ...], source: Any, view: LedgerView) -> dict[str, Any]:
    """The figures of the meter's scheme in `source` (the view, or a period's totals)."""
    out = {}
    for row in rows:
        if view.scheme in row.schemes:
            value = row.read(source)
            out[row.key] = None if value is None else round(float(value), 4)
    return out


def _settled_period(period: PeriodTotals, view: LedgerView, zone: ZoneInfo) -> dict[str, Any]:
    end = period_start(period.period.kind, period.start, -1)
    return {
        "start": datetime.fromtimestamp(midnight(period.start, zone), zone).isoformat(),
        "end": datetime.fromtimestamp(midnight(end, zone), zone).isoformat(),
        "current": period.current,
        "partial": period.partial,
        "hours": period.totals.hours,
        **_figures(figure_table().period, period.totals, view),
    }


def _settled(view: LedgerView, zone: ZoneInfo) -> dict[str, Any]:
    """A settled meter's ledger as the page shows it: the scheme, the figures now, the hour
    counting, the latest reading and the calendar periods."""
    hour = None if view.hour is None else datetime.fromtimestamp(view.hour.start, zone)
    return {
        "scheme": view.scheme.value,
        **_figures(figure_table().now, view, view),
        "hour_start": None if hour is None else hour.isoformat(),
        "latest_at": view.latest_at,
        "periods": {p.period.name: _settled_period(p, view, zone) for p in view.periods},
    }


def _period(figure: Figure, zone: ZoneInfo, priced: bool) -> dict[str, Any]:
    """One calendar period of a meter: its bounds, kWh per register (field keys) and cost."""
    out: dict[str, Any] = {
        "start": datetime.fromtimestamp(figure.begins_at, zone).isoformat(),
        "end": datetime.fromtimestamp(figure.ends_at, zone).isoformat(),
        "current": figure.current,
        "partial": figure.partial,
    }
    for row in table().energy:
        if row.key in figure.energy:
            out[row.key] = round(figure.energy[row.key], 3)
        zones = figure.tariffs(row)
        if zones:
            out[row.tariff_key] = {str(t): round(kwh, 3) for t, kwh in zones.items()}
    if priced:
        cost = figure.cost
        out["cost_pln"] = {
            "tariffs": {
                str(zone): {
                    "energy": round(energy, 2),
                    "distribution": round(distribution, 2),
                    "total": round(energy + distribution, 2),
                }
                for zone, (energy, distribution) in cost.zones.items()
            },
            "imported": round(cost.imported, 2),
            "exported": round(cost.export, 2),
            "net": round(cost.net, 2),
            "unpriced_kwh": round(cost.unpriced_kwh, 3),
        }
    return out


def _meter(
    meter: MeterState,
    state: State,
    now: float,
    *,
    config: Config,
    calendar: Calendar | None,
    settlements: Settlements | None,
    history: PageHistory | None,
    day: PageHistory | None,
    receivers_down: bool = False,
) -> dict[str, Any]:
    values = dict(meter.values)
    meter_time = values.pop("meter_time", None)
    stale_after = state.stale_after_for(meter)
    age = None if meter.last_telegram_at is None else now - meter.last_telegram_at
    out: dict[str, Any] = {
        "meter_id": meter.meter_id,
        "name": meter.name,
        "site": meter.site,
        "manufacturer": meter.manufacturer,
        "version": meter.version,
        "telegrams": meter.telegrams,
        "last_telegram_at": meter.last_telegram_at,
        "age_seconds": age,
        "stale": age is None or age > stale_after,
        "stale_after_seconds": stale_after,
        "rssi_dbm": meter.rssi_dbm,
        "receiver": meter.receiver,
        "best_receiver": meter.best_receiver,
        "receptions": {
            name: {"rssi_dbm": r.rssi_dbm, "at": r.at} for name, r in meter.receptions.items()
        },
        "values": {
            k: ({str(t): x for t, x in v.items()} if isinstance(v, dict) else v)
            for k, v in values.items()
        },
        "decrypt_failures": meter.decrypt_failures,
        "rejected": dict(meter.rejected),
        "key_variant": meter.key_variant,
        "contracted_power_w": meter.contracted_power,
        "periods": {},
        "active_tariff": None,
    }
    if calendar is not None:
        priced = bool(config.prices.entries)
        out["periods"] = {
            figure.period.name: _period(figure, config.timezone, priced)
            for figure in calendar.figures(meter.key, now)
        }
        out["active_tariff"] = calendar.active_tariff(meter.key)
    view = settlements.view(meter.key) if settlements is not None else None
    if view is not None:
        out["settlement"] = _settled(view, config.timezone)
    if meter.telegrams == 0 and meter.last_failure is None:
        out["not_heard"] = ADVICE[NOT_HEARD_NO_RECEIVER if receivers_down else NOT_HEARD].as_json()
    if history is not None:
        out["history"] = history.columns(meter.key)
    if day is not None:
        out["day"] = day.day_columns(meter.key)
    if isinstance(meter_time, datetime):
        out["meter_time"] = meter_time.isoformat()
        if meter.last_telegram_at is not None:
            out["clock_skew_seconds"] = round(meter_time.timestamp() - meter.last_telegram_at, 1)
    if meter.last_failure is not None:
        out["last_failure"] = {
            "code": meter.last_failure.code,
            "message": meter.last_failure.message,
            "at": meter.last_failure.at,
            "likely_cause": advice(meter.last_failure.code),
            **(ADVICE[failure].as_json() if (failure := meter.last_failure.code) in ADVICE else {}),
        }
    return out


def _receiver(stats: ReceiverStats, private: bool) -> dict[str, Any]:
    known = ADVICE.get(stats.down_code or "")
    out: dict[str, Any] = {
        "name": stats.name,
        "description": stats.description if private else None,  # device paths, files
        "source": (
            {"en": stats.description, "pl": stats.description_pl or stats.description}
            if private
            else None
        ),
        "up": stats.up,
        "down_reason": stats.down_reason if private else None,  # they name them too
        "down_code": stats.down_code,
        **(known.as_json() if known and not stats.up else {}),
        "frames": stats.frames,
        "errors": dict(stats.errors),
        "reconnects": stats.reconnects,
        "last_frame_at": stats.last_frame_at,
    }
    if stats.closed_connections is not None:
        out["connections_closed"] = dict(stats.closed_connections)
    if stats.dropped is not None:
        out["messages_dropped"] = stats.dropped
    if stats.gateways_refused is not None:
        out["gateways_refused"] = stats.gateways_refused
    return out


#: The placeholders of the snippet that adds a heard meter, in the page's languages.
_SNIPPET = {
    "en": ("the 32-digit key from eLicznik, Licznik / HAN", "meter"),
    "pl": ("32-znakowy klucz z eLicznika, Licznik / HAN", "licznik"),
}


def yaml_snippet(meter_id: str, language: str = "en") -> str:
    """What to paste into the configuration to add a heard meter (the key is the user's)."""
    key, name = _SNIPPET[language]
    return f'  - id: "{meter_id}"\n    key: "<{key}>"\n    name: {name}-{meter_id}\n'


def _heard(meter: HeardMeter, config: Config) -> dict[str, Any]:
    configured = config.meter_for(meter.meter_id) is not None
    out: dict[str, Any] = {
        "meter_id": meter.meter_id,
        "manufacturer": meter.manufacturer,
        "version": meter.version,
        "device_type": meter.device_type_name,
        "device_type_words": device_type_words(meter.device_type),
        "encrypted": meter.encrypted,
        "rssi_dbm": meter.rssi_dbm,
        "count": meter.count,
        "last_seen": meter.last_seen,
        "configured": configured,
    }
    if not configured:
        out["yaml"] = yaml_snippet(meter.meter_id)
        out["yaml_words"] = {
            language: yaml_snippet(meter.meter_id, language) for language in _SNIPPET
        }
    return out


def _warning(warning: ConfigWarning, private: bool) -> dict[str, Any]:
    """A warning of the configuration (a directory this user cannot write), with its advice in
    both languages; its path only for a `private` client."""
    return {
        "code": warning.code,
        "path": warning.path if private else None,
        "line": warning.line,
        "message": warning.message if private else None,
        **ADVICE[warning.code].as_json(),
    }


def _settlement_status(settlements: Settlements | None) -> dict[str, Any]:
    """The figure table and where market prices come from, when a meter is settled."""
    if settlements is None or not settlements.keys():
        return {}
    shown = {"figures": settlement_figures_for_page(), "market_prices": settlements.status()}
    return {"settlement": shown}


def status(
    config: Config,
    state: State,
    *,
    receivers: list[ReceiverStats],
    heard: list[HeardMeter],
    started_at: float,
    outputs: Iterable[Output] = (),
    history: PageHistory | None = None,
    histories: frozenset[str] = frozenset(),
    calendar: Calendar | None = None,
    settlements: Settlements | None = None,
    example_prices: bool = False,
    extra: dict[str, Any] | None = None,
    private: bool = False,
) -> dict[str, Any]:
    """Everything the status page shows; `histories` says which of the page's charts'
    histories go in (HOUR, DAY); `example_prices`: the prices are the built-in examples; a
    settled meter's ledger comes from `settlements`. Paths (the configuration file, devices)
    only go in for a `private` client, one that proved who it is (a password, a client
    certificate)."""
    now = time.time()
    meters = sorted(state.snapshot(), key=lambda m: m.name)
    counts = state.counts()
    hour = history if HOUR in histories else None
    day = history if DAY in histories else None
    down = bool(receivers) and not any(stats.up for stats in receivers)
    return {
        "exporter": {
            "started_at": started_at,
            "uptime_seconds": round(now - started_at),
            "config": config.source if private else None,
            "now": now,
            "timezone": config.timezone.key,
            "prices": bool(config.prices.entries),
            "example_prices": example_prices,
        },
        "meters": [
            _meter(
                meter,
                state,
                now,
                config=config,
                calendar=calendar,
                settlements=settlements,
                history=hour,
                day=day,
                receivers_down=down,
            )
            for meter in meters
        ],
        "warnings": [_warning(warning, private) for warning in config.warnings],
        "receivers": [_receiver(stats, private) for stats in receivers],
        "heard": [_heard(meter, config) for meter in heard],
        "unconfigured_telegrams": counts.unconfigured_telegrams,
        "duplicates": counts.duplicates,
        "undecodable": dict(counts.undecodable),
        "fields": fields_for_page(),
        **_settlement_status(settlements),
        **{output.name: shown for output in outputs if (shown := _output(output)) is not None},
        **(extra or {}),
    }
