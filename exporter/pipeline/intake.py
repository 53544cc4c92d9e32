"""Every frame's way in: normalised once, deduplicated, heard, decoded, named, kept, handed on.

Called from the receivers' threads. The same telegram heard by several receivers within the
dedupe window is one reading; each receiver's signal is kept, so the best receiver of a meter is
known. A failure is counted against the meter that sent it (or as undecodable) every time, but
logged only the first time and then as a summary every `REPEAT_SUMMARY` seconds while it goes on
(a wrong key fails every telegram, thousands a day); an accepted reading goes to the state, then
to the calendar (its periods and running cost), then to a settled meter's prosumer ledger, then
to every output.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from ..amiplus import NOT_ENCRYPTED, advice, read_meter, table
from ..config import Config, MeterConfig
from ..plumbing import RateLimit
from ..receivers import Frame
from ..settlement import LedgerView
from ..wmbus import Address, MeterKey, Peek, Telegram, WMBusError, decode, peek
from .calendar import Calendar
from .dedupe import Deduplicator
from .handoff import MeterUpdate, Output
from .heard import HeardMeters
from .settlement import Settlements
from .state import State

log = logging.getLogger(__name__)

REPEAT_SUMMARY = 900.0  # seconds between log lines about the same failure of the same meter
#: How a telegram that arrived in clear was sent, by its security mode (none, or mode 5).
_IN_CLEAR = {0: "without any encryption (security mode 0)", 5: "with its AES area already in clear"}


class Intake:
    """The frame sink of every receiver; `reconfigure` and `outputs` may change at any time."""

    def __init__(
        self,
        config: Config,
        state: State,
        outputs: Sequence[Output] = (),
        *,
        clock: Callable[[], float] = time.monotonic,
        calendar: Calendar | None = None,
        settlements: Settlements | None = None,
    ) -> None:
        self.config = config
        self.state = state
        self.calendar = calendar
        self.settlements = settlements
        self.outputs: Sequence[Output] = outputs
        self.heard = HeardMeters()
        self.dedupe = Deduplicator(config.dedupe_window)
        self._dedupe_lock = threading.Lock()
        self._repeated = RateLimit(REPEAT_SUMMARY, clock)

    def reconfigure(self, config: Config) -> None:
        """Take a new configuration (meters, keys, the dedupe window) for the next frame."""
        with self._dedupe_lock:
            self.dedupe.window = config.dedupe_window
        self.config = config

    def _key(self, address: Address) -> MeterKey | None:
        meter = self.config.meter_for(address.meter_id)
        return meter.key if meter else None

    def on_frame(self, receiver: str, frame: Frame) -> None:
        """One frame from a receiver: dedupe, decode, name, keep, hand on."""
        if log.isEnabledFor(logging.DEBUG):  # the telegram as `decode` takes it (troubleshooting)
            log.debug("receiver %s: telegram %s", receiver, frame.data.hex().upper())
        peeked: Peek | None = None
        try:
            peeked = peek(frame.data)
        except WMBusError as error:
            failure = error
        with self._dedupe_lock:
            first = self.dedupe.first(peeked.frame if peeked else frame.data, frame.received_at)
        if not first:
            self.state.count_duplicate()
            meter = self.config.meter_for(peeked.address.meter_id) if peeked else None
            if meter is not None:  # heard by another receiver too: which hears it best?
                self.state.heard_again(
                    meter.meter_id, meter.name, receiver, frame.rssi_dbm, frame.received_at
                )
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
            self.state.count_unconfigured()
            return
        if not telegram.encrypted:  # every configured meter has a key, and AMIplus encrypts
            self._reject(meter, NOT_ENCRYPTED, _in_clear(telegram), frame.received_at)
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
        settled: LedgerView | None = None
        settlements = self.settlements if meter.settlement is not None else None
        if self.calendar is not None or settlements is not None:
            silent = self.state.silent_after(meter.meter_id)
            if self.calendar is not None:
                cost = self.calendar.record(meter.meter_id, values, at, silent)
            if settlements is not None and (
                table().imported.key in accepted.values or table().exported.key in accepted.values
            ):
                settled = settlements.record(meter.meter_id, values, at, silent)
        update = MeterUpdate(
            meter.meter_id,
            meter.name,
            accepted,
            values,
            at,
            receiver,
            cost,
            meter.contracted_power,
            meter.settlement.scheme if meter.settlement is not None else None,
            settled,
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
            self._reject(meter, error.code, error.message, frame.received_at)
        elif address is not None:
            self.state.count_unconfigured()
        else:
            self.state.count_undecodable(error.code)

    def _reject(self, meter: MeterConfig, code: str, message: str, at: float) -> None:
        """Count a configured meter's telegram that was not taken; log the first of its kind,
        then a summary every `REPEAT_SUMMARY` seconds."""
        self.state.record_failure(meter.meter_id, meter.name, code, message, at)
        due = self._repeated.due((meter.meter_id, code))
        if due is None:
            return
        if not due.held_back:
            log.warning("meter %s: %s", meter.name, message)
            return
        log.warning(
            "meter %s: %s (and %d more telegrams failed the same way in the last %.0f minutes; "
            "the next summary in %.0f minutes if it goes on)",
            meter.name,
            message,
            due.held_back,
            due.seconds / 60,
            REPEAT_SUMMARY / 60,
        )


def _in_clear(telegram: Telegram) -> str:
    """Why a configured meter's telegram that arrived in clear is not taken."""
    mode = telegram.transport.configuration.security_mode
    how = _IN_CLEAR.get(mode, f"in clear (security mode {mode})")
    return (
        f"A telegram from meter {telegram.address.meter_id} arrived {how}, though a key is "
        f"configured for it: not taken. {advice(NOT_ENCRYPTED)}"
    )
