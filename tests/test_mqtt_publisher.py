"""The MQTT publisher without a broker, threads or paho: every behaviour of docs/contracts.md
section 7 (what is sent after a connect, with a reading, when a meter falls silent, after a
reload, for Home Assistant's birth message; a settled meter's figures and their entities; what
a dropped message brings back), told events and a clock and answering with the messages to
send."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from exporter.amiplus.families import FAMILIES_BY_NAME
from exporter.amiplus.reading import read_meter
from exporter.amiplus.simulated import DEFAULT_KEY, SimulatedMeter
from exporter.config import ExportPrice, Scheme, Settlement
from exporter.config.mqtt import MqttConfig
from exporter.net import Broker
from exporter.outputs.mqtt import (
    RESYNC_INTERVAL,
    Kind,
    Message,
    Publisher,
    entities,
    entity_keys,
    settled_keys,
    settlement_payload,
    state_payload,
)
from exporter.pipeline.handoff import MeterUpdate
from exporter.pipeline.state import Silence, State
from exporter.settlement import Ledger, LedgerView, PriceBook
from exporter.wmbus import MeterKey, decode

CONFIG = MqttConfig(Broker("127.0.0.1"))
STARTED = 1_782_900_000.0  # the wall clock when the output started
HOME, SHED = "12345678", "12345679"
STATUS = "amiplus/status"
EXPORTER = "homeassistant/binary_sensor/amiplus_exporter_amiplus/status/config"
UTC_ZONE = ZoneInfo("UTC")


def updates(family: str = "otus", meter_id: str = HOME, count: int = 2) -> list[MeterUpdate]:
    """The updates a simulated meter's first `count` telegrams give, a second apart."""
    meter = SimulatedMeter(FAMILIES_BY_NAME[family], meter_id=meter_id)
    state = State()
    start = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
    found = []
    for n in range(count):
        frame, _ = meter.telegram(start + timedelta(seconds=30 * n))
        reading = read_meter(decode(frame, MeterKey.from_bytes(DEFAULT_KEY)), rssi_dbm=-71.0)
        at = STARTED + 1 + n
        accepted, values = state.record(meter_id, "home", reading, at, "sim")
        assert accepted is not None
        found.append(MeterUpdate(meter_id, "home", accepted, values, at, "sim"))
    return found


def publisher(config: MqttConfig = CONFIG, meters: tuple[str, ...] = (HOME, SHED)) -> Publisher:
    return Publisher(config, meters, STARTED)


def topics(messages: list[Message]) -> list[str]:
    return [m.topic for m in messages]


def discovery(meter: str, entity: str) -> str:
    return f"homeassistant/sensor/amiplus_{meter}/{entity}/config"


def announced(update: MeterUpdate) -> list[str]:
    return [discovery(update.meter_id, key) for key in entity_keys(update.values)]


def meter_topics(update: MeterUpdate) -> list[str]:
    """What a meter's first reading on a connection sends, in order."""
    key = update.meter_id
    return [*announced(update), f"amiplus/{key}/availability", f"amiplus/{key}/state"]


def payloads(messages: list[Message]) -> dict[str, bytes]:
    return {m.topic: m.payload for m in messages}


# --- the connection ---------------------------------------------------------------------------


def test_a_connect_says_online_and_announces_the_exporter_and_the_will_says_offline() -> None:
    p = publisher()
    sent = p.connect(0.0)
    assert topics(sent) == [STATUS, EXPORTER]
    assert sent[0].payload == b"online"
    assert all((m.qos, m.retain) == (1, True) for m in sent)
    assert (p.will.topic, p.will.payload, p.will.qos, p.will.retain) == (
        STATUS,
        b"offline",
        1,
        True,
    )
    assert p.subscriptions == ("homeassistant/status",)
    goodbye = p.goodbye()
    assert (goodbye.topic, goodbye.payload, goodbye.qos, goodbye.retain) == (
        STATUS,
        b"offline",
        1,
        True,
    )


def test_a_first_reading_announces_its_entities_then_online_then_its_state() -> None:
    p = publisher()
    p.connect(0.0)
    update = updates(count=1)[0]
    sent = p.reading(update)
    assert topics(sent) == meter_topics(update)
    assert sent[-2].payload == b"online"
    assert sent[-1].payload == state_payload(update)
    assert all(m.payload for m in sent)
    assert p.stated == 1


def test_a_later_reading_announces_only_new_entities_and_sends_its_state() -> None:
    p = publisher()
    p.connect(0.0)
    first = updates(count=1)[0]
    p.reading(first)
    values = {**first.values, "power_imported_max_w": 4200.0}  # a field it had not sent
    grown = MeterUpdate(HOME, "home", first.reading, values, first.received_at + 1, "sim")
    new = discovery(HOME, "power_imported_max_w")
    assert new not in announced(first)
    assert topics(p.reading(grown)) == [new, f"amiplus/{HOME}/state"]
    assert topics(p.reading(grown)) == [f"amiplus/{HOME}/state"]


def test_a_changed_device_entry_announces_every_entity_again() -> None:
    p = publisher()
    p.connect(0.0)
    update = updates(count=1)[0]
    p.reading(update)
    renamed = MeterUpdate(HOME, "kitchen", update.reading, update.values, update.received_at, "")
    sent = p.reading(renamed)
    assert topics(sent) == [*announced(update), f"amiplus/{HOME}/state"]
    assert b'"name":"kitchen"' in sent[0].payload


def test_while_disconnected_nothing_is_sent_and_a_connect_sends_the_latest_of_everything() -> None:
    p = publisher()
    first, second = updates(count=2)
    assert state_payload(first) != state_payload(second)
    assert p.reading(first) == p.reading(second) == []
    sent = p.connect(0.0)
    assert topics(sent) == [STATUS, EXPORTER, *meter_topics(second)]
    assert payloads(sent)[f"amiplus/{HOME}/state"] == state_payload(second)


def test_every_connect_sends_everything_again() -> None:
    p = publisher()
    p.connect(0.0)
    update = updates(count=1)[0]
    p.reading(update)
    p.disconnected()
    assert p.reading(update) == []
    assert topics(p.connect(100.0)) == [STATUS, EXPORTER, *meter_topics(update)]


# --- silence ----------------------------------------------------------------------------------


def test_a_silent_meter_goes_offline_once_and_online_with_its_next_reading() -> None:
    p = publisher()
    p.connect(0.0)
    update = updates(count=1)[0]
    p.reading(update)
    heard = update.received_at
    assert p.silence(heard + 60, [Silence(HOME, heard, 60)]) == []
    sent = p.silence(heard + 61, [Silence(HOME, heard, 60)])
    assert [(m.topic, m.payload) for m in sent] == [(f"amiplus/{HOME}/availability", b"offline")]
    assert p.silence(heard + 62, [Silence(HOME, heard, 60)]) == []
    back = p.reading(update)
    assert [(m.topic, m.payload) for m in back] == [
        (f"amiplus/{HOME}/availability", b"online"),
        (f"amiplus/{HOME}/state", state_payload(update)),
    ]


def test_a_meter_never_heard_counts_its_silence_from_the_start() -> None:
    p = publisher()
    p.connect(0.0)
    never = [Silence(SHED, None, 60)]
    assert p.silence(STARTED + 60, never) == []
    sent = p.silence(STARTED + 61, never)
    assert [(m.topic, m.payload) for m in sent] == [(f"amiplus/{SHED}/availability", b"offline")]
    p.disconnected()
    again = p.connect(1.0)  # its availability is known now, though it has no state
    assert (f"amiplus/{SHED}/availability", b"offline") in [(m.topic, m.payload) for m in again]
    assert f"amiplus/{SHED}/state" not in topics(again)


def test_a_meter_falling_silent_while_disconnected_is_offline_after_the_connect() -> None:
    p = publisher()
    update = updates(count=1)[0]
    p.reading(update)
    assert p.silence(update.received_at + 61, [Silence(HOME, update.received_at, 60)]) == []
    assert payloads(p.connect(0.0))[f"amiplus/{HOME}/availability"] == b"offline"


# --- Home Assistant's birth message -----------------------------------------------------------


def test_home_assistant_online_brings_everything_again_but_not_a_retained_one() -> None:
    p = publisher()
    p.connect(0.0)
    update = updates(count=1)[0]
    p.reading(update)
    later = RESYNC_INTERVAL + 1
    assert p.home_assistant(b"online", True, later) == []  # the broker remembering it
    assert p.home_assistant(b"offline", False, later) == []
    assert topics(p.home_assistant(b"online", False, later)) == [
        STATUS,
        EXPORTER,
        *meter_topics(update),
    ]


def test_births_within_the_interval_are_answered_together_once_it_is_over() -> None:
    """A burst of `online` (100 in a second) costs one resend at once and one after the
    interval, not one each."""
    p = publisher()
    p.connect(0.0)
    p.reading(updates(count=1)[0])
    first = 10.0
    resends = [p.home_assistant(b"online", False, first + n / 100) for n in range(100)]
    assert [bool(sent) for sent in resends] == [True] + [False] * 99
    assert p.due(first + RESYNC_INTERVAL - 0.01) == []
    assert topics(p.due(first + RESYNC_INTERVAL))[:2] == [STATUS, EXPORTER]
    assert p.due(first + RESYNC_INTERVAL + 0.01) == []
    assert p.due(first + 10 * RESYNC_INTERVAL) == []  # nothing waits any more


def test_a_steady_stream_of_births_resends_at_most_once_an_interval() -> None:
    p = publisher()
    p.connect(0.0)
    resends = 0
    for tenth in range(600):  # a minute of `online` ten times a second
        now = tenth / 10
        resends += bool(p.home_assistant(b"online", False, now)) + bool(p.due(now))
    assert resends <= 60 / RESYNC_INTERVAL + 1


def test_a_birth_soon_after_a_connect_waits_for_the_interval() -> None:
    p = publisher()
    p.connect(100.0)
    assert p.home_assistant(b"online", False, 101.0) == []
    assert topics(p.due(100.0 + RESYNC_INTERVAL))[:2] == [STATUS, EXPORTER]


def test_a_lost_connection_forgets_a_waiting_resend() -> None:
    p = publisher()
    p.connect(0.0)
    assert p.home_assistant(b"online", False, 1.0) == []
    p.disconnected()
    assert p.due(RESYNC_INTERVAL) == []
    assert p.home_assistant(b"online", False, RESYNC_INTERVAL) == []  # not connected
    p.connect(2 * RESYNC_INTERVAL)
    assert p.due(3 * RESYNC_INTERVAL) == []


# --- reloads ----------------------------------------------------------------------------------


def removals(meter: str) -> list[str]:
    every = [discovery(meter, key) for key in entities()]
    own = ("state", "availability", "settlement")
    return [*(f"amiplus/{meter}/{topic}" for topic in own), *every]


def test_a_removed_meter_is_cleared_at_once_and_its_queued_readings_ignored() -> None:
    p = publisher(MqttConfig(Broker("127.0.0.1"), retain=False))
    p.connect(0.0)
    shed = updates(meter_id=SHED, count=1)[0]
    p.reading(updates(count=1)[0])
    p.reading(shed)
    assert p.stated == 2
    sent = p.meters_changed([HOME])
    assert topics(sent) == removals(SHED)
    assert all((m.payload, m.retain, m.kind) == (b"", True, Kind.REMOVAL) for m in sent)
    assert p.reading(shed) == []
    assert p.stated == 1
    assert p.meters_changed([HOME]) == []  # cleared once
    assert not [t for t in topics(p.connect(1.0)) if SHED in t]


def test_a_meter_removed_while_disconnected_is_cleared_after_the_next_connect() -> None:
    p = publisher()
    assert p.meters_changed([HOME]) == []
    assert topics(p.connect(0.0)) == [STATUS, *removals(SHED), EXPORTER]


def test_a_meter_configured_again_before_the_connect_keeps_its_messages() -> None:
    p = publisher()
    p.meters_changed([HOME])
    p.meters_changed([HOME, SHED])
    assert topics(p.connect(0.0)) == [STATUS, EXPORTER]


def test_a_new_meter_after_a_reload_is_published() -> None:
    p = publisher(meters=(HOME,))
    p.connect(0.0)
    shed = updates(meter_id=SHED, count=1)[0]
    assert p.reading(shed) == []
    assert p.meters_changed([HOME, SHED]) == []
    assert topics(p.reading(shed)) == meter_topics(shed)


# --- the configuration ------------------------------------------------------------------------


def test_without_discovery_nothing_is_announced_nor_subscribed() -> None:
    p = publisher(MqttConfig(Broker("127.0.0.1"), discovery_prefix=None))
    assert p.subscriptions == ()
    assert topics(p.connect(0.0)) == [STATUS]
    update = updates(count=1)[0]
    assert topics(p.reading(update)) == [f"amiplus/{HOME}/availability", f"amiplus/{HOME}/state"]
    assert topics(p.meters_changed([SHED])) == [
        f"amiplus/{HOME}/state",
        f"amiplus/{HOME}/availability",
        f"amiplus/{HOME}/settlement",
    ]


@pytest.mark.parametrize(("qos", "retain"), [(0, False), (2, True)])
def test_every_message_has_the_configured_qos_and_retain_flag(qos: int, retain: bool) -> None:
    config = MqttConfig(Broker("127.0.0.1"), base_topic="home/energy", qos=qos, retain=retain)
    p = Publisher(config, [HOME, SHED], STARTED)
    sent = [*p.connect(0.0), *p.reading(updates(count=1)[0])]
    sent += p.silence(STARTED + 3600, [Silence(SHED, None, 60)])
    assert {(m.qos, m.retain) for m in sent} == {(qos, retain)}
    assert sent[0].topic == "home/energy/status"
    assert EXPORTER.replace("amiplus_exporter_amiplus", "amiplus_exporter_home_energy") in topics(
        sent
    )
    assert (p.will.qos, p.will.retain) == (qos, retain)
    assert {(m.qos, m.retain) for m in p.meters_changed([SHED])} == {(qos, True)}


# --- what was dropped comes back --------------------------------------------------------------


def sent_on(messages: list[Message], kind: Kind) -> Message:
    return next(m for m in messages if m.kind is kind)


def test_a_dropped_discovery_is_announced_with_the_next_reading() -> None:
    p = publisher()
    p.connect(0.0)
    update = updates(count=1)[0]
    dropped = sent_on(p.reading(update), Kind.DISCOVERY)
    p.dropped(dropped)
    assert topics(p.reading(update)) == [dropped.topic, f"amiplus/{HOME}/state"]


def test_a_dropped_state_is_sent_again_when_there_is_room() -> None:
    p = publisher()
    p.connect(0.0)
    update = updates(count=1)[0]
    p.dropped(sent_on(p.reading(update), Kind.STATE))
    assert p.retry(room=1) == []
    again = p.retry(room=2)
    assert [(m.topic, m.payload) for m in again] == [
        (f"amiplus/{HOME}/availability", b"online"),
        (f"amiplus/{HOME}/state", state_payload(update)),
    ]
    assert p.retry(room=100) == []


def test_a_dropped_availability_is_sent_with_the_next_reading() -> None:
    p = publisher()
    p.connect(0.0)
    update = updates(count=1)[0]
    p.dropped(sent_on(p.reading(update), Kind.AVAILABILITY))
    assert topics(p.reading(update)) == [f"amiplus/{HOME}/availability", f"amiplus/{HOME}/state"]
    assert p.retry(room=100) == []


def test_a_dropped_removal_is_sent_again() -> None:
    p = publisher()
    p.connect(0.0)
    removal = p.meters_changed([HOME])[0]
    p.dropped(removal)
    p.disconnected()
    assert topics(p.connect(1.0)) == [STATUS, *removals(SHED), EXPORTER]


def test_dropped_messages_of_the_exporter_or_of_a_removed_meter_change_nothing() -> None:
    p = publisher()
    p.connect(0.0)
    update = updates(meter_id=SHED, count=1)[0]
    state = sent_on(p.reading(update), Kind.STATE)
    p.meters_changed([HOME])
    p.dropped(state)
    p.dropped(p.goodbye())
    assert p.retry(room=100) == []
    assert p.meters_changed([HOME]) == []


# --- settled meters ---------------------------------------------------------------------------


def ledger_view(scheme: Scheme) -> LedgerView:
    """A settled meter's figures after two hours: 1.5 kWh fed in, at 0.5 PLN per kWh."""
    rules = Settlement(scheme, export_price=ExportPrice.FIXED, fixed_price=0.5)
    ledger = Ledger(rules, PriceBook(), UTC_ZONE)
    for hour, exported in enumerate((10.0, 11.0, 11.5)):
        ledger.feed(STARTED - 7200 + hour * 3600, 100.0, exported)
    return ledger.view(STARTED)


def settled(
    update: MeterUpdate, scheme: Scheme | None, figures: LedgerView | None = None
) -> MeterUpdate:
    return dataclasses.replace(update, scheme=scheme, settlement=figures)


def figures_of(meter: str, scheme: Scheme) -> list[str]:
    return [discovery(meter, key) for key in settled_keys(scheme)]


def test_a_settled_meter_announces_its_figures_and_sends_them_after_its_state() -> None:
    p = publisher()
    p.connect(0.0)
    first, second = updates()
    figures = ledger_view(Scheme.NET_BILLING)
    update = settled(first, Scheme.NET_BILLING, figures)
    sent = p.reading(update)
    assert topics(sent) == [
        *announced(first),
        *figures_of(HOME, Scheme.NET_BILLING),
        f"amiplus/{HOME}/availability",
        f"amiplus/{HOME}/state",
        f"amiplus/{HOME}/settlement",
    ]
    message = json.loads(sent[-1].payload)
    assert message["scheme"] == "net-billing"
    assert message["balanced_exported_total_kwh"] == 1.5
    assert message["deposit_waiting_pln"] == pytest.approx(0.75 * 1.23)  # this month's credit
    assert "bank_kwh" not in message and message["market_price_pln_per_kwh"] is None
    assert sent[-1].payload == settlement_payload(update)
    deposit = json.loads(payloads(sent)[discovery(HOME, "deposit_pln")])
    assert deposit["state_topic"] == f"amiplus/{HOME}/settlement"
    assert deposit["value_template"] == "{{ value_json.deposit_pln }}"
    assert (deposit["device_class"], deposit["state_class"]) == ("monetary", "total")
    assert deposit["unit_of_measurement"] == "PLN" and deposit["unique_id"].endswith("deposit_pln")
    total = json.loads(payloads(sent)[discovery(HOME, "balanced_imported_total_kwh")])
    assert (total["device_class"], total["state_class"]) == ("energy", "total_increasing")
    # the next reading of the hour changes no figure: only its state
    assert topics(p.reading(settled(second, Scheme.NET_BILLING))) == [f"amiplus/{HOME}/state"]
    again = p.connect(1.0)  # everything again, the figures after the state
    assert topics(again)[-2:] == [f"amiplus/{HOME}/state", f"amiplus/{HOME}/settlement"]


def test_a_settled_meter_without_figures_yet_announces_only_its_fields() -> None:
    p = publisher()
    p.connect(0.0)
    update = updates(count=1)[0]
    assert topics(p.reading(settled(update, Scheme.NET_METERING))) == meter_topics(update)


def test_a_meter_no_longer_settled_has_its_figures_cleared() -> None:
    p = publisher()
    p.connect(0.0)
    first, second = updates()
    p.reading(settled(first, Scheme.NET_BILLING, ledger_view(Scheme.NET_BILLING)))
    sent = p.reading(second)  # after a reload without `settlement:`
    assert topics(sent) == [
        *figures_of(HOME, Scheme.NET_BILLING),
        f"amiplus/{HOME}/settlement",
        f"amiplus/{HOME}/state",
    ]
    assert all((m.payload, m.retain, m.kind) == (b"", True, Kind.REMOVAL) for m in sent[:-1])
    assert f"amiplus/{HOME}/settlement" not in topics(p.connect(1.0))


def test_a_changed_scheme_clears_what_the_old_one_had_and_announces_the_new() -> None:
    p = publisher()
    p.connect(0.0)
    first, second = updates()
    p.reading(settled(first, Scheme.NET_BILLING, ledger_view(Scheme.NET_BILLING)))
    sent = p.reading(settled(second, Scheme.NET_METERING, ledger_view(Scheme.NET_METERING)))
    billing, metering = settled_keys(Scheme.NET_BILLING), settled_keys(Scheme.NET_METERING)
    removed = [discovery(HOME, key) for key in billing if key not in metering]
    added = [discovery(HOME, key) for key in metering if key not in billing]
    assert topics(sent) == [*removed, *added, f"amiplus/{HOME}/state", f"amiplus/{HOME}/settlement"]
    assert discovery(HOME, "deposit_pln") in removed and discovery(HOME, "bank_kwh") in added


def test_a_dropped_settlement_message_is_sent_again_with_the_state() -> None:
    p = publisher()
    p.connect(0.0)
    update = settled(updates(count=1)[0], Scheme.NET_BILLING, ledger_view(Scheme.NET_BILLING))
    p.dropped(sent_on(p.reading(update), Kind.SETTLEMENT))
    assert p.retry(room=2) == []  # availability, state and figures go together
    assert topics(p.retry(room=3)) == [
        f"amiplus/{HOME}/availability",
        f"amiplus/{HOME}/state",
        f"amiplus/{HOME}/settlement",
    ]
