"""Every frame's way in: normalised once, deduplicated, heard, decoded, named, kept, handed on.

Called from the receivers' threads. A failure is counted against the meter that sent it (or as
undecodable); an accepted reading goes to the state, then to the calendar (its periods and
running cost), then to every output.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime

from ..amiplus.reading import read_meter
from ..config import Config, MeterConfig
from ..outputs.base import MeterUpdate, Output
from ..receivers.base import Frame
from ..wmbus import Address, MeterKey, Peek, WMBusError, decode, peek
from .calendar import Calendar
from .dedupe import Deduplicator
from .heard import HeardMeters
from .state import State

log = logging.getLogger("amiplus_exporter")


class Intake:
    """The frame sink of every receiver; `config` and `outputs` may be replaced at any time."""

    def __init__(
        self,
        config: Config,
        state: State,
        outputs: Sequence[Output] = (),
        calendar: Calendar | None = None,
    ) -> None:
        self.config = config
        self.state = state
        self.calendar = calendar
        self.outputs: Sequence[Output] = outputs
        self.heard = HeardMeters()
        self.dedupe = Deduplicator(config.dedupe_window)
        self._dedupe_lock = threading.Lock()

    def _key(self, address: Address) -> MeterKey | None:
        meter = self.config.meter_for(address.meter_id)
        return meter.key if meter else None

    def on_frame(self, receiver: str, frame: Frame) -> None:
        """One frame from a receiver: dedupe, decode, name, keep, hand on."""
        peeked: Peek | None = None
        try:
            peeked = peek(frame.data)
        except WMBusError as error:
            failure = error
        with self._dedupe_lock:
            first = self.dedupe.first(peeked.frame if peeked else frame.data, frame.received_at)
        if not first:
            with self.state.lock:
                self.state.duplicates += 1
            return
        self.heard.hear(receiver, frame, peeked)
        if peeked is None:
            self._failed(failure, frame)
            return
        config = self.config
        try:
            telegram = decode(peeked, self._key)
        except WMBusError as error:
            self._failed(error, frame)
            return
        meter = config.meter_for(telegram.address.meter_id)
        if meter is None:
            with self.state.lock:
                self.state.unconfigured_telegrams += 1
            return
        reading = read_meter(
            telegram,
            zone=config.timezone,
            received_at=datetime.fromtimestamp(frame.received_at, UTC),
            rssi_dbm=frame.rssi_dbm,
        )
        at = frame.received_at
        accepted, values = self.state.record(meter.meter_id, meter.name, reading, at, receiver)
        cost: dict[str, float] = {}
        if self.calendar is not None:
            silent = self.state.silent_after(meter.meter_id)
            cost = self.calendar.record(meter.meter_id, values, at, silent)
        update = MeterUpdate(
            meter.meter_id, meter.name, accepted, values, at, receiver, cost, meter.contracted_power
        )
        self._hand_on(update)

    def _hand_on(self, update: MeterUpdate) -> None:
        for output in self.outputs:
            try:
                output.submit(update)
            except Exception:  # one output's bug must not stop the others or the receiver
                log.exception("output %s failed to take a reading", output.name)

    def _failed(self, error: WMBusError, frame: Frame) -> None:
        address = error.address
        meter: MeterConfig | None = self.config.meter_for(address.meter_id) if address else None
        if meter is not None:
            self.state.record_failure(
                meter.meter_id, meter.name, error.code, error.message, frame.received_at
            )
            log.warning("meter %s: %s", meter.name, error.message)
            return
        with self.state.lock:
            if address is not None:
                self.state.unconfigured_telegrams += 1
            else:
                self.state.undecodable[error.code] += 1
