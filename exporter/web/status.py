"""The status of the exporter as plain data: for `/api/status` and the status page.

Built from snapshots at request time. No key or token ever goes in: only IDs, names and the
fingerprints that tell keys apart.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from ..config import Config
from ..pipeline.heard import HeardMeter
from ..pipeline.state import HISTORY_FIELDS, MeterState, State
from ..receivers.receiver import ReceiverStats

#: Likely causes of decode failures, in words a user can act on.
LIKELY_CAUSES = {
    "decryption_failed": (
        "The key in the configuration does not decrypt this meter's telegrams: check the key "
        "eLicznik shows (Licznik / HAN). Re-activating HAN issues a new key."
    ),
    "crc": "Damaged radio frames: move the receiver or its antenna closer to the meter.",
    "truncated": "The receiver cut telegrams short: CUL and small CC1101 buffers do that.",
    "malformed": "Telegrams that cannot be read: a damaged frame or a wrong key.",
    "unsupported": "This device is not an AMIplus meter (another transport or encryption).",
    "register_decreased": (
        "A register went backwards and was ignored; if it persists the meter was replaced."
    ),
}


def _history(meter: MeterState) -> dict[str, list[float | None]]:
    """The meter's recent history by column, for charts."""
    return dict(zip(HISTORY_FIELDS, meter.history.columns(), strict=True))


def _meter(meter: MeterState, state: State, now: float, with_history: bool) -> dict[str, Any]:
    values = dict(meter.values)
    meter_time = values.pop("meter_time", None)
    stale_after = state.stale_after_for(meter)
    age = None if meter.last_telegram_at is None else now - meter.last_telegram_at
    out: dict[str, Any] = {
        "meter_id": meter.meter_id,
        "name": meter.name,
        "manufacturer": meter.manufacturer,
        "version": meter.version,
        "telegrams": meter.telegrams,
        "last_telegram_at": meter.last_telegram_at,
        "age_seconds": age,
        "stale": age is None or age > stale_after,
        "stale_after_seconds": stale_after,
        "rssi_dbm": meter.rssi_dbm,
        "receiver": meter.receiver,
        "values": {
            k: ({str(t): x for t, x in v.items()} if isinstance(v, dict) else v)
            for k, v in values.items()
        },
        "decrypt_failures": meter.decrypt_failures,
        "rejected": dict(meter.rejected),
        "key_variant": meter.key_variant,
        "today": meter.today(),
    }
    if with_history:
        out["history"] = _history(meter)
    if isinstance(meter_time, datetime):
        out["meter_time"] = meter_time.isoformat()
        if meter.last_telegram_at is not None:
            out["clock_skew_seconds"] = round(meter_time.timestamp() - meter.last_telegram_at, 1)
    if meter.last_failure is not None:
        out["last_failure"] = {
            "code": meter.last_failure.code,
            "message": meter.last_failure.message,
            "at": meter.last_failure.at,
            "likely_cause": LIKELY_CAUSES.get(meter.last_failure.code, ""),
        }
    return out


def _receiver(stats: ReceiverStats) -> dict[str, Any]:
    return {
        "name": stats.name,
        "description": stats.description,
        "up": stats.up,
        "down_reason": stats.down_reason,
        "frames": stats.frames,
        "errors": dict(stats.errors),
        "reconnects": stats.reconnects,
        "last_frame_at": stats.last_frame_at,
    }


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
    extra: dict[str, Any] | None = None,
    with_history: bool = False,
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
        "meters": [_meter(meter, state, now, with_history) for meter in meters],
        "receivers": [_receiver(stats) for stats in receivers],
        "heard": [_heard(meter, config) for meter in heard],
        "unconfigured_telegrams": state.unconfigured_telegrams,
        "duplicates": state.duplicates,
        "undecodable": dict(state.undecodable),
        **(extra or {}),
    }
