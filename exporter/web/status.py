"""The status of the exporter as plain data: for `/api/status` and the status page.

Built from snapshots at request time. No key or token ever goes in: only IDs, names and the
fingerprints that tell keys apart.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from ..amiplus import fields
from ..amiplus.explain import advice
from ..config import Config
from ..outputs.base import Output
from ..pipeline.heard import HeardMeter
from ..pipeline.state import MeterState, State
from ..receivers.receiver import ReceiverStats
from .history import PageHistory


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
        for row in fields.FIELDS
    ]


def _meter(
    meter: MeterState, state: State, now: float, history: PageHistory | None
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
        "today": meter.today(),
    }
    if history is not None:
        out["history"] = history.columns(meter.key)
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
        }
    return out


def _receiver(stats: ReceiverStats) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": stats.name,
        "description": stats.description,
        "up": stats.up,
        "down_reason": stats.down_reason,
        "frames": stats.frames,
        "errors": dict(stats.errors),
        "reconnects": stats.reconnects,
        "last_frame_at": stats.last_frame_at,
    }
    if stats.closed_connections is not None:
        out["connections_closed"] = dict(stats.closed_connections)
    return out


def yaml_snippet(meter_id: str) -> str:
    """What to paste into the configuration to add a heard meter (the key is the user's)."""
    return (
        f'  - id: "{meter_id}"\n'
        '    key: "<the 32-digit key from eLicznik, Licznik / HAN>"\n'
        f"    name: meter-{meter_id}\n"
    )


def _heard(meter: HeardMeter, config: Config) -> dict[str, Any]:
    configured = config.meter_for(meter.meter_id) is not None
    out: dict[str, Any] = {
        "meter_id": meter.meter_id,
        "manufacturer": meter.manufacturer,
        "version": meter.version,
        "device_type": meter.device_type_name,
        "encrypted": meter.encrypted,
        "rssi_dbm": meter.rssi_dbm,
        "count": meter.count,
        "last_seen": meter.last_seen,
        "configured": configured,
    }
    if not configured:
        out["yaml"] = yaml_snippet(meter.meter_id)
    return out


def status(
    config: Config,
    state: State,
    *,
    receivers: list[ReceiverStats],
    heard: list[HeardMeter],
    started_at: float,
    outputs: Iterable[Output] = (),
    history: PageHistory | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything the status page shows."""
    now = time.time()
    meters = sorted(state.snapshot(), key=lambda m: m.name)
    return {
        "exporter": {
            "started_at": started_at,
            "uptime_seconds": round(now - started_at),
            "config": config.source,
            "now": now,
        },
        "meters": [_meter(meter, state, now, history) for meter in meters],
        "receivers": [_receiver(stats) for stats in receivers],
        "heard": [_heard(meter, config) for meter in heard],
        "unconfigured_telegrams": state.unconfigured_telegrams,
        "duplicates": state.duplicates,
        "undecodable": dict(state.undecodable),
        "fields": fields_for_page(),
        **{output.name: shown for output in outputs if (shown := output.status()) is not None},
        **(extra or {}),
    }
