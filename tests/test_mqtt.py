"""The MQTT output against Debian's mosquitto: the retained discovery and state messages byte
for byte, the last will of a killed exporter, re-discovery when Home Assistant comes online,
staleness, a broker restart, a wrong password (log and status page), TLS with a throw-away CA
and a client certificate, a meter removed by a reload, and a settled meter's figures."""

from __future__ import annotations

import getpass
import json
import re
import signal
import ssl
import subprocess
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from itertools import takewhile
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from selenium.webdriver.common.by import By

import exporter
from exporter.amiplus.families import FAMILIES_BY_NAME
from exporter.amiplus.simulated import SimulatedMeter
from exporter.config import Scheme, load_config, parse_config
from exporter.config.mqtt import MqttConfig
from exporter.net import Broker
from exporter.outputs.mqtt import MAX_PENDING, RESYNC_INTERVAL, MqttOutput, settled_keys
from exporter.pipeline.state import State

from .conftest import configured_meter, free_port, require, wait_until
from .ledgers import DAY, kept_until_now, price_file
from .mosquitto import PASSWORD, USER, BrokerTls, Mosquitto, Subscriber
from .servers import SIMULATED_KEY, ExporterProcess, Start
from .test_daemon import _certificates
from .test_deploy import DEPLOY, host_path, services
from .test_mqtt_discovery import check_discovery, merged, update
from .test_status_page import browser

FIXED = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
ORIGIN = f'"origin":{{"name":"amiplus-exporter","sw_version":"{exporter.__version__}"}}'
#: The state after an Otus's two record sets (docs/contracts.md, section 7), {received_at} apart.
STATE = (
    '{{"meter_id":"12345678","manufacturer":"APA","version":1,"device_type":2,'
    '"access_number":84,"rssi_dbm":-69.0,"meter_time":"2026-07-01T12:00:00+02:00",'
    '"serial_number":"12345678","energy_imported_kwh":3580.245,'
    '"energy_imported_tariff_kwh":{{"1":2345.678,"2":1234.567,"3":0.0}},'
    '"energy_exported_kwh":555.564,"energy_exported_tariff_kwh":{{"1":456.799,"2":98.765,'
    '"3":0.0}},"power_imported_w":0.0,"power_exported_w":1208.0,'
    '"voltage_v":{{"L1":237.0,"L2":235.0,"L3":238.0}},"received_at":"{received_at}"}}'
)
ENTITIES = (
    "rssi_dbm",
    "meter_time",
    "energy_imported_kwh",
    "energy_imported_t1_kwh",
    "energy_imported_t2_kwh",
    "energy_imported_t3_kwh",
    "energy_exported_kwh",
    "energy_exported_t1_kwh",
    "energy_exported_t2_kwh",
    "energy_exported_t3_kwh",
    "power_imported_w",
    "power_exported_w",
    "voltage_l1_v",
    "voltage_l2_v",
    "voltage_l3_v",
    "last_telegram",
)
DEVICE = (
    '"device":{"identifiers":["amiplus_12345678"],"name":"home","manufacturer":"Apator",'
    '"model":"Otus 1/3","serial_number":"12345678","via_device":"amiplus_exporter_contract"}'
)
AVAILABILITY = (
    '"availability":[{"topic":"contract/status"},{"topic":"contract/12345678/availability"}],'
    '"availability_mode":"all","qos":1'
)
TAIL = f"{AVAILABILITY},{DEVICE},{ORIGIN}}}"
#: Discovery documents of the contract test (base topic `contract`), by topic.
DISCOVERY = {
    "sensor/amiplus_12345678/energy_imported_t2_kwh": (
        '{"name":"Energy imported tariff 2",'
        '"unique_id":"amiplus_12345678_energy_imported_t2_kwh",'
        '"state_topic":"contract/12345678/state",'
        '"value_template":"{{ value_json.energy_imported_tariff_kwh[\'2\'] }}",'
        '"device_class":"energy","state_class":"total_increasing","unit_of_measurement":"kWh",'
        f'"suggested_display_precision":3,{TAIL}'
    ),
    "sensor/amiplus_12345678/voltage_l3_v": (
        '{"name":"Voltage L3","unique_id":"amiplus_12345678_voltage_l3_v",'
        '"state_topic":"contract/12345678/state",'
        '"value_template":"{{ value_json.voltage_v.L3 }}",'
        '"device_class":"voltage","state_class":"measurement","unit_of_measurement":"V",'
        f'"suggested_display_precision":1,{TAIL}'
    ),
    "sensor/amiplus_12345678/rssi_dbm": (
        '{"name":"Signal","unique_id":"amiplus_12345678_rssi_dbm",'
        '"state_topic":"contract/12345678/state","value_template":"{{ value_json.rssi_dbm }}",'
        '"device_class":"signal_strength","state_class":"measurement",'
        '"unit_of_measurement":"dBm","suggested_display_precision":0,'
        f'"entity_category":"diagnostic",{TAIL}'
    ),
    "sensor/amiplus_12345678/last_telegram": (
        '{"name":"Last telegram","unique_id":"amiplus_12345678_last_telegram",'
        '"state_topic":"contract/12345678/state",'
        '"value_template":"{{ value_json.received_at }}","device_class":"timestamp",'
        f'"entity_category":"diagnostic",{TAIL}'
    ),
}
EXPORTER = (
    '{"name":"Status","unique_id":"amiplus_exporter_contract_status",'
    '"state_topic":"contract/status","payload_on":"online","payload_off":"offline",'
    '"device_class":"connectivity","entity_category":"diagnostic","qos":1,'
    '"device":{"identifiers":["amiplus_exporter_contract"],"name":"amiplus-exporter contract",'
    '"manufacturer":"amiplus-exporter","model":"wireless M-Bus receiver",'
    f'"sw_version":"{exporter.__version__}"}},{ORIGIN}}}'
)
RECEIVED_AT = re.compile(rb'"received_at":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00)"')


def otus_frames(count: int, meter_id: str = "12345678") -> list[str]:
    """Telegrams of a simulated Apator Otus (two record sets) at fixed moments, as hex."""
    meter = SimulatedMeter(FAMILIES_BY_NAME["otus"], meter_id=meter_id)
    return [
        meter.telegram(FIXED + timedelta(seconds=30 * n))[0].hex().upper() for n in range(count)
    ]


def mqtt_section(broker: Mosquitto, base: str, *, password: str = PASSWORD, extra: str = "") -> str:
    return (
        f"mqtt:\n  host: 127.0.0.1\n  port: {broker.port}\n  username: {USER}\n"
        f"  password: {password}\n  base_topic: {base}\n  discovery_prefix: {base}-ha\n{extra}"
    )


def replay_config(replay: Path, mqtt: str, *, realtime: bool = False, extra: str = "") -> str:
    return f"""meters:
  - id: "12345678"
    key: "{SIMULATED_KEY}"
    name: home
receivers:
  - type: replay
    file: {replay}
    realtime: {str(realtime).lower()}
{mqtt}{extra}"""


def simulator_config(mqtt: str, meters: int = 1, interval: float = 1.0) -> str:
    listed = "".join(
        f'  - id: "{12345678 + n}"\n    key: "{SIMULATED_KEY}"\n    name: meter{n}\n'
        for n in range(meters)
    )
    return (
        f"meters:\n{listed}receivers:\n  - type: simulator\n    meters: {meters}\n"
        f"    interval: {interval}\n{mqtt}"
    )


def mqtt_status(process: ExporterProcess) -> dict[str, object]:
    """The MQTT output's status (the web server answers a moment before the outputs start)."""
    found: dict[str, object] = {}
    assert wait_until(lambda: found.update(process.status().get("mqtt") or {}) or found, 20)
    return found


def metric(process: ExporterProcess, line: str) -> float | None:
    body = process.get("/metrics")[1].decode()
    found = re.search(rf"^{re.escape(line)} (\S+)$", body, re.MULTILINE)
    return float(found.group(1)) if found else None


def test_retained_discovery_and_state_match_the_contract(
    broker: Mosquitto, start_exporter: Start, tmp_path: Path
) -> None:
    base = "contract"
    replay = tmp_path / "otus.txt"
    lines = [
        f"T1;1;1;2026-07-01 10:00:00.00Z;{rssi};;;0x{frame}"
        for frame, rssi in zip(otus_frames(2), (-71, -69), strict=True)
    ]
    replay.write_text("\n".join(lines) + "\n")
    began = time.time()
    state_topic = f"{base}/12345678/state"
    live = Subscriber(broker, state_topic)
    try:
        process = start_exporter(replay_config(replay, mqtt_section(broker, base)))
        assert live.wait(lambda: b'"rssi_dbm":-69.0' in (live.latest(state_topic) or b""))
    finally:
        live.close()

    retained = Subscriber(broker, f"{base}/#", f"{base}-ha/#")
    try:
        assert retained.wait(lambda: len(retained.topics_under("")) == len(ENTITIES) + 4)
        messages = retained.topics_under("")
        assert all(m.retain for m in retained.messages)
        state = messages[state_topic]
        moment = RECEIVED_AT.search(state)
        assert moment, state
        received = datetime.fromisoformat(moment.group(1).decode()).timestamp()
        assert began - 1 <= received <= time.time()
        assert state == STATE.format(received_at=moment.group(1).decode()).encode()
        assert messages[f"{base}/status"] == b"online"
        assert messages[f"{base}/12345678/availability"] == b"online"

        prefix = f"{base}-ha/sensor/amiplus_12345678"
        assert {t for t in messages if t.startswith(prefix)} == {
            f"{prefix}/{key}/config" for key in ENTITIES
        }
        for topic, payload in messages.items():
            if topic.endswith("/config"):
                check_discovery(topic, payload, f"{base}-ha")
        for key, expected in DISCOVERY.items():
            assert messages[f"{base}-ha/{key}/config"] == expected.encode(), key
        assert messages[f"{base}-ha/binary_sensor/amiplus_exporter_contract/status/config"] == (
            EXPORTER.encode()
        )

        assert metric(process, "amiplus_mqtt_connected") == 1
        assert wait_until(  # /metrics is rendered at most once a second: it may lag a little
            lambda: (
                (metric(process, "amiplus_mqtt_messages_published_total") or 0) >= len(ENTITIES) + 4
            ),
            10,
        )
        assert metric(process, 'amiplus_mqtt_errors_total{reason="queue_full"}') == 0
        status = mqtt_status(process)
        assert (status["connected"], status["broker"]) == (True, f"mqtt://127.0.0.1:{broker.port}")
        assert PASSWORD not in process.get("/api/status")[1].decode()

        assert process.stop() == 0
        assert retained.wait(lambda: retained.latest(f"{base}/status") == b"offline")
    finally:
        retained.close()


def test_home_assistant_online_brings_discovery_again_and_a_killed_exporter_its_will(
    broker: Mosquitto, start_exporter: Start
) -> None:
    base = "will"
    live = Subscriber(broker, f"{base}/#", f"{base}-ha/#")
    try:
        process = start_exporter(simulator_config(mqtt_section(broker, base)))
        config = f"{base}-ha/sensor/amiplus_12345678/energy_imported_kwh/config"
        assert live.wait(lambda: len(live.on(config)) == 1)
        states = len(live.on(f"{base}/12345678/state"))
        live.publish(f"{base}-ha/status", "online")
        assert live.wait(lambda: len(live.on(config)) == 2)
        assert live.on(config)[0].payload == live.on(config)[1].payload
        assert len(live.on(f"{base}-ha/binary_sensor/amiplus_exporter_will/status/config")) == 2
        assert len(live.on(f"{base}/12345678/state")) > states
        assert live.latest(f"{base}/status") == b"online"

        assert process.process is not None
        process.process.send_signal(signal.SIGKILL)
        process.process.wait(timeout=10)
        process.process = None  # killed on purpose: no clean exit to check
        assert live.wait(lambda: live.latest(f"{base}/status") == b"offline")
    finally:
        live.close()
    retained = Subscriber(broker, f"{base}/status")
    try:
        assert retained.wait(lambda: retained.latest(f"{base}/status") == b"offline")
        assert retained.on(f"{base}/status")[0].retain
    finally:
        retained.close()


def test_a_burst_of_home_assistant_births_resends_everything_at_most_twice(
    broker: Mosquitto, start_exporter: Start
) -> None:
    """Issue 23, item 13: each non-retained `online` on Home Assistant's status topic used to
    resend everything (100 of them: 1,030 messages). A burst is answered at once and once more
    when RESYNC_INTERVAL is over, and the last resend comes after the last birth."""
    base = "burst"
    live = Subscriber(broker, f"{base}/#", f"{base}-ha/#")
    try:
        start_exporter(simulator_config(mqtt_section(broker, base)))
        device = f"{base}-ha/binary_sensor/amiplus_exporter_{base}/status/config"
        prefix = f"{base}-ha/sensor/amiplus_12345678/"
        assert live.wait(lambda: live.on(f"{prefix}energy_imported_kwh/config"))
        announced = len(live.topics_under(prefix))
        before = len(live.on(device))
        burst_start = time.time()
        for _ in range(100):
            live.publish(f"{base}-ha/status", "online")
        burst_end = time.time()
        assert live.wait(lambda: live.on(device)[-1].at > burst_end, RESYNC_INTERVAL + 15)
        assert not live.wait(lambda: len(live.on(device)) > before + 2, RESYNC_INTERVAL + 2)
        resent = [m for m in live.messages if m.topic.startswith(prefix) and m.at >= burst_start]
        assert len(resent) <= 2 * announced, len(resent)
    finally:
        live.close()


def test_a_silent_meter_goes_offline_and_comes_back_with_its_next_telegram(
    broker: Mosquitto, start_exporter: Start, tmp_path: Path
) -> None:
    base = "stale"
    replay = tmp_path / "later.txt"
    offsets = (0.0, 0.2, 5.0)
    frames = otus_frames(3)
    replay.write_text(
        "".join(f"telegram=|{f}|+{s}\n" for f, s in zip(frames, offsets, strict=True))
    )
    live = Subscriber(broker, f"{base}/#")
    availability = f"{base}/12345678/availability"
    try:
        start_exporter(
            replay_config(
                replay,
                mqtt_section(broker, base),
                realtime=True,
                extra="state:\n  stale_after: 2\n",
            )
        )
        assert live.wait(lambda: [m.payload for m in live.on(availability)] == [b"online"])
        assert live.wait(lambda: live.latest(availability) == b"offline")
        went_offline = live.on(availability)[-1].at
        states = live.on(f"{base}/12345678/state")
        assert went_offline - states[-1].at >= 2 - 0.1  # silent longer than stale_after
        assert live.wait(lambda: len(live.on(availability)) == 3)
        assert [m.payload for m in live.on(availability)] == [b"online", b"offline", b"online"]
        assert live.wait(lambda: len(live.on(f"{base}/12345678/state")) == len(states) + 1)
    finally:
        live.close()


def test_the_output_reconnects_after_the_broker_restarts(
    start_exporter: Start, tmp_path: Path
) -> None:
    own = Mosquitto(tmp_path / "broker")
    try:
        process = start_exporter(simulator_config(mqtt_section(own, "restart")))
        assert wait_until(lambda: mqtt_status(process)["connected"])
        own.stop()
        assert wait_until(lambda: not mqtt_status(process)["connected"])
        assert wait_until(lambda: "was lost" in process.log())
        assert metric(process, "amiplus_mqtt_connected") == 0
        assert mqtt_status(process)["last_error"]
        own.start()  # without persistence: whatever is retained now was published again
        assert wait_until(lambda: mqtt_status(process)["connected"], 30)
        retained = Subscriber(own, "restart/#", "restart-ha/#")
        try:
            assert retained.wait(lambda: retained.latest("restart/12345678/state") is not None)
            assert retained.wait(
                lambda: (
                    retained.latest("restart-ha/sensor/amiplus_12345678/energy_imported_kwh/config")
                    is not None
                )
            )
            assert retained.latest("restart/status") == b"online"
        finally:
            retained.close()
        log = process.log()
        assert log.count("was lost") == 1
        assert "MQTT: connected to mqtt://127.0.0.1" in log and "again" in log
        assert metric(process, 'amiplus_mqtt_errors_total{reason="connection_lost"}') == 1
    finally:
        own.stop()


@pytest.mark.integration
def test_a_stalled_broker_holds_at_most_max_pending_messages_and_gets_the_rest_after(
    tmp_path: Path,
) -> None:
    """A broker that stops answering (SIGSTOP): the output hands paho MAX_PENDING messages and
    waits for room, so the rest of the readings stay in the bounded queue; once the broker
    answers again every reading goes out, none dropped."""
    own = Mosquitto(tmp_path / "broker")
    state = State()
    state.reconfigure(None, [configured_meter("12345678", "home")])
    broker = Broker("127.0.0.1", own.port, username=USER, password=PASSWORD)
    output = MqttOutput(MqttConfig(broker, base_topic="stall", discovery_prefix=None), state)
    live = Subscriber(own, "stall/12345678/state")
    output.start()
    try:
        assert wait_until(lambda: output.status()["connected"])
        assert own.process is not None
        reading, values = merged("otus")
        own.process.send_signal(signal.SIGSTOP)
        extra = 100
        began = time.time()
        for n in range(MAX_PENDING + extra):
            output.submit(update(reading, values, at=began + n))

        def queued() -> int:
            count = output.status()["queued_updates"]
            assert isinstance(count, int)
            return count

        # the first reading sends `online` besides its state; the status message may be pending
        assert wait_until(lambda: extra - 3 <= queued() <= extra + 1, 30), queued()
        assert not wait_until(lambda: queued() < extra - 3, 1.0)  # held back, not dropped
        own.process.send_signal(signal.SIGCONT)
        newest = datetime.fromtimestamp(began + MAX_PENDING + extra - 1, UTC)
        last = f'"received_at":"{newest.isoformat(timespec="milliseconds")}"'
        assert live.wait(lambda: last.encode() in (live.latest("stall/12345678/state") or b""))
        assert output.status()["updates_dropped"] == 0
        assert output.errors["queue_full"] == 0
    finally:
        if own.process is not None:
            own.process.send_signal(signal.SIGCONT)
        output.stop()
        live.close()
        own.stop()


def test_a_wrong_password_is_said_once_and_shown_while_receiving_goes_on(
    broker: Mosquitto, start_exporter: Start
) -> None:
    wrong = "not-the-Passw0rd"
    process = start_exporter(
        simulator_config(mqtt_section(broker, "wrong", password=wrong), 1, 0.5)
    )

    def refusals() -> int:
        errors = mqtt_status(process)["errors"]
        assert isinstance(errors, dict)
        count = errors.get("unauthorized", 0)
        assert isinstance(count, int)
        return count

    assert wait_until(lambda: refusals() >= 2, 30)  # refused, and refused again after backoff
    status = mqtt_status(process)
    assert status["connected"] is False and status["error_reason"] == "unauthorized"
    message = str(status["last_error"])
    assert "refused the connection: Not authorized" in message, message
    assert process.log().count(message) == 1  # once, not at every attempt
    heard = process.status()["meters"][0]["telegrams"]
    assert wait_until(lambda: process.status()["meters"][0]["telegrams"] > heard)
    for text in (
        process.log(),
        process.get("/api/status")[1].decode(),
        process.get("/metrics")[1].decode(),
    ):
        assert wrong not in text
    assert metric(process, "amiplus_mqtt_connected") == 0

    driver = browser()
    try:
        driver.get(process.url + "/")
        shown = driver.find_element(By.CSS_SELECTOR, "[data-output=mqtt] [data-field=mqtt-error]")
        assert "Not authorized" in shown.text
        card = driver.find_element(By.CSS_SELECTOR, "[data-output=mqtt]").text
        assert "not connected" in card
    finally:
        driver.quit()


def test_tls_with_a_throwaway_ca_and_a_client_certificate(
    start_exporter: Start, tmp_path: Path
) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    _certificates(certs)
    tls = BrokerTls(certs / "ca.crt", certs / "server.crt", certs / "server.key", True)
    secure = Mosquitto(tmp_path / "broker", tls)
    try:
        files = (
            f"  tls:\n    ca_file: {certs / 'ca.crt'}\n    cert_file: {certs / 'client.crt'}\n"
            f"    key_file: {certs / 'client.key'}\n"
        )
        good = start_exporter(simulator_config(mqtt_section(secure, "tls", extra=files)))
        untrusting = start_exporter(
            simulator_config(mqtt_section(secure, "untrusting", extra="  tls: true\n"))
        )
        assert wait_until(lambda: mqtt_status(good)["connected"])
        assert mqtt_status(good)["broker"] == f"mqtts://127.0.0.1:{secure.port}"
        context = ssl.create_default_context(cafile=str(certs / "ca.crt"))
        context.load_cert_chain(certs / "client.crt", certs / "client.key")
        retained = Subscriber(secure, "tls/#", "tls-ha/#", context=context)
        try:
            assert retained.wait(lambda: retained.latest("tls/12345678/state") is not None)
            topic = "tls-ha/sensor/amiplus_12345678/energy_imported_kwh/config"
            assert retained.wait(lambda: retained.latest(topic) is not None)
        finally:
            retained.close()

        assert wait_until(lambda: mqtt_status(untrusting)["error_reason"] == "tls")
        message = str(mqtt_status(untrusting)["last_error"])
        assert "certificate that is not trusted" in message, message
        assert untrusting.status()["meters"][0]["telegrams"] >= 1  # receiving is not held up
    finally:
        secure.stop()


def test_a_meter_removed_by_a_reload_leaves_the_broker(
    broker: Mosquitto, start_exporter: Start
) -> None:
    base = "reload"
    process = start_exporter(simulator_config(mqtt_section(broker, base), meters=2))
    gone = f"{base}-ha/sensor/amiplus_12345679"
    live = Subscriber(broker, f"{base}/#", f"{base}-ha/#")
    try:
        assert live.wait(lambda: live.latest(f"{gone}/energy_imported_kwh/config"))
        assert live.wait(lambda: live.latest(f"{base}/12345679/state"))
        kept = simulator_config(mqtt_section(broker, base), meters=1).replace(
            "meters: 1", "meters: 2"
        )  # the simulator still sends both; only one stays configured
        process.config_path.write_text(kept)
        assert live.wait(lambda: live.latest(f"{gone}/energy_imported_kwh/config") == b"")
        assert live.wait(lambda: live.latest(f"{base}/12345679/state") == b"")
        assert live.latest(f"{base}/12345679/availability") == b""
        assert "meter 12345679 is no longer configured" in process.log()
    finally:
        live.close()
    after = Subscriber(broker, f"{base}/#", f"{base}-ha/#")
    try:
        assert after.wait(lambda: after.latest(f"{base}/12345678/state") is not None)
        assert not [t for t in after.topics_under("") if "12345679" in t]
    finally:
        after.close()


def test_a_settled_meters_figures_reach_home_assistant_and_leave_with_its_settlement(
    broker: Mosquitto, start_exporter: Start, tmp_path: Path
) -> None:
    base = "settled"
    now = time.time()
    prices = price_file(tmp_path / "prices.csv", now - 50 * DAY, now + 2 * DAY)
    settled = simulator_config(mqtt_section(broker, base)).replace(
        "name: meter0\n", "name: meter0\n    settlement: {scheme: net-billing}\n"
    ) + (
        f"state: {{directory: {tmp_path / 'state'}}}\n"
        f"market_prices: {{source: file, file: {prices}}}\n"
        "prices: [{from: 2020-01-01, tariffs: {1: {energy: 0.6}}}]\n"
    )
    kept_until_now(parse_config(settled, env={}), prices)  # 45 days kept before this start
    topic = f"{base}/12345678/settlement"
    deposit = f"{base}-ha/sensor/amiplus_12345678/deposit_pln/config"
    live = Subscriber(broker, f"{base}/#", f"{base}-ha/#")
    try:
        process = start_exporter(settled)
        assert live.wait(lambda: live.latest(topic) and live.latest(deposit))
        figures = json.loads(live.latest(topic) or b"")
        assert figures["scheme"] == "net-billing" and figures["deposit_pln"] > 0
        assert figures["balanced_exported_total_kwh"] > 1 and "bank_kwh" not in figures
        document = check_discovery(deposit, live.latest(deposit) or b"", f"{base}-ha")
        assert document["state_topic"] == topic
        status = process.status()["meters"][0]["settlement"]
        assert status["deposit_pln"] == pytest.approx(figures["deposit_pln"], abs=0.01)
        assert (metric(process, 'amiplus_settlement_deposit_pln{meter_id="12345678"}') or 0) > 0
        process.config_path.write_text(
            settled.replace("    settlement: {scheme: net-billing}\n", "")
        )

        def cleared(topic: str) -> bool:
            return live.latest(topic) == b""

        for key in settled_keys(Scheme.NET_BILLING):  # cleared with the next reading
            config = f"{base}-ha/sensor/amiplus_12345678/{key}/config"
            assert live.wait(partial(cleared, config)), key
        assert live.wait(partial(cleared, topic))
        assert live.latest(f"{base}-ha/sensor/amiplus_12345678/energy_imported_kwh/config")
        assert "settlement" not in process.status()["meters"][0]
    finally:
        live.close()


@pytest.mark.integration
def test_the_compose_broker_wants_a_password_and_the_example_points_at_it(
    tmp_path: Path,
) -> None:
    """deploy/: the `mosquitto` service (profile mqtt) runs its mosquitto.conf, which Debian's
    mosquitto accepts and which lets nobody in without a password; the commented `mqtt:` of
    amiplus.example.yml, uncommented, passes check-config and names that service."""
    service = services("docker-compose.yml")["mosquitto"]
    assert service["profiles"] == ["mqtt"]
    folder = host_path(service, "/mosquitto/config")
    text = (folder / "mosquitto.conf").read_text()
    settings = dict(
        line.split(None, 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    assert settings["allow_anonymous"] == "false"
    assert host_path(service, settings["password_file"]).parent == folder
    assert service["ports"] == ["127.0.0.1:1883:1883/tcp"]  # this machine only, unless opened
    assert settings["listener"] == "1883"

    port = free_port()
    passwords = tmp_path / "passwd"
    subprocess.run(
        [require("mosquitto_passwd", "mosquitto"), "-c", "-b", str(passwords), USER, PASSWORD],
        check=True,
        capture_output=True,
        timeout=30,
    )
    local = (
        text.replace("listener 1883", f"listener {port} 127.0.0.1")
        .replace(settings["password_file"], str(passwords))
        .replace(settings["persistence_location"], f"{tmp_path}/")
    ) + f"user {getpass.getuser()}\n"
    (tmp_path / "mosquitto.conf").write_text(local)
    server = subprocess.Popen(
        [require("mosquitto", "mosquitto"), "-c", str(tmp_path / "mosquitto.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert [answer(port, None), answer(port, (USER, PASSWORD))] == ["Not authorized", "Success"]
    finally:
        server.terminate()
        server.wait(timeout=20)

    lines = (DEPLOY / "amiplus.example.yml").read_text().splitlines()
    start = lines.index("# mqtt:")
    block = [lines[start], *takewhile(lambda line: line.startswith("#   "), lines[start + 1 :])]
    assert len(block) >= 3  # host and credentials
    section = "\n".join(line.removeprefix("# ") for line in block)
    copy = tmp_path / "amiplus.yml"
    copy.write_text("\n".join(lines) + "\n" + section + "\n")
    config = load_config(copy, env={"MQTT_PASSWORD": "x"}).mqtt
    assert config is not None and (config.broker.host, config.broker.port) == ("mosquitto", 1883)
    assert config.broker.host in services("docker-compose.yml")


def answer(port: int, credentials: tuple[str, str] | None) -> str:
    """What a broker on 127.0.0.1 answers to a client with these credentials."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    if credentials:
        client.username_pw_set(*credentials)
    answers: list[str] = []
    client.on_connect = lambda c, userdata, flags, code, properties: answers.append(str(code))
    assert wait_until(lambda: client.connect("127.0.0.1", port) == 0)
    deadline = time.monotonic() + 10
    while not answers and time.monotonic() < deadline:
        client.loop(0.1)
    client.disconnect()
    return answers[0] if answers else "no answer"
