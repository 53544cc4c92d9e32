"""The exporter as it runs in the field, scraped by a real Prometheus server on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from exporter.amiplus.families import FAMILIES_BY_NAME
from exporter.amiplus.simulated import SimulatedMeter
from exporter.config import Prices
from exporter.daemon import EXAMPLE_PRICES, Exporter, default_config

from .conftest import basic_auth, free_port, require, wait_until
from .emulators.imst import Im871aEmulator
from .servers import CONSOLE_SCRIPT, SIMULATED_KEY, Prometheus, Start, job, simulated_config

KEY = SIMULATED_KEY
SIMULATED = simulated_config(0.3)


def test_the_built_in_meter_counts_with_example_prices() -> None:
    """`make run` shows cost: G12 prices (two zones and export) that the status calls examples;
    the same prices written in a configuration are the user's own."""
    config = default_config()
    entry = config.prices.at(datetime.date(2026, 6, 1))
    assert entry is not None and entry.export
    zones = dict(entry.tariffs)
    assert set(zones) == {1, 2} and zones[1].total > zones[2].total > 0  # day dearer than night
    shown = Exporter(config).status()["exporter"]
    assert (shown["prices"], shown["example_prices"]) == (True, True)
    own = Exporter(dataclasses.replace(config, prices=Prices(EXAMPLE_PRICES.entries)))
    assert own.status()["exporter"]["example_prices"] is False


def test_prometheus_scrapes_the_simulated_meter(
    prometheus: Prometheus, start_exporter: Start
) -> None:
    exporter = start_exporter(SIMULATED)
    prometheus.scrape(job("simulated", exporter.port))
    assert wait_until(
        lambda: len(prometheus.values('amiplus_voltage_volts{job="simulated"}')) == 3, 30
    )
    volts = prometheus.values('amiplus_voltage_volts{job="simulated"}')
    assert {dict(labels)["phase"] for labels in volts} == {"L1", "L2", "L3"}
    assert all(224 <= v <= 252 for v in volts.values())
    (energy,) = prometheus.values('amiplus_energy_imported_joules_total{job="simulated"}').values()
    (meter,) = exporter.status()["meters"]
    assert abs(energy / 3.6e6 - meter["values"]["energy_imported_kwh"]) < 1.0  # it moves on
    (labels,) = prometheus.values('amiplus_meter_info{job="simulated"}')
    info = dict(labels)
    assert (info["name"], info["manufacturer"], info["meter_id"]) == ("home", "APA", "12345678")
    assert prometheus.values('amiplus_receiver_up{job="simulated"}') == {
        (
            ("instance", f"127.0.0.1:{exporter.port}"),
            ("job", "simulated"),
            ("receiver", "simulator"),
        ): 1.0
    }
    tariffs = prometheus.values('amiplus_energy_imported_tariff_joules_total{job="simulated"}')
    assert {dict(labels)["tariff"] for labels in tariffs} >= {"1", "2"}


@pytest.fixture
def stick() -> Iterator[Im871aEmulator]:
    emulator = Im871aEmulator()
    yield emulator
    emulator.close()


def stick_config(device: str, extra: str = "") -> str:
    return f"""
meters:
  - id: "20240001"
    key: "{KEY}"
    name: flat
receivers:
  - type: im871a
    device: {device}
    name: stick
{extra}"""


def test_values_from_a_usb_stick_reach_prometheus(
    prometheus: Prometheus, start_exporter: Start, stick: Im871aEmulator
) -> None:
    exporter = start_exporter(stick_config(stick.path))
    prometheus.scrape(job("stick", exporter.port))
    assert wait_until(lambda: stick.mode is not None)
    meter = SimulatedMeter(FAMILIES_BY_NAME["otus"], meter_id="20240001")
    frame, reading = meter.telegram(datetime.datetime.now(datetime.UTC))
    assert stick.telegram(frame)
    query = 'amiplus_power_imported_watts{job="stick",meter_id="20240001"}'
    assert wait_until(lambda: prometheus.values(query), 30)
    assert list(prometheus.values(query).values()) == [reading.get("power_imported_w")]
    assert list(prometheus.values('amiplus_receiver_frames_total{job="stick"}').values()) == [1.0]


def test_a_silent_meter_goes_stale_but_stays_known(
    prometheus: Prometheus, start_exporter: Start, stick: Im871aEmulator
) -> None:
    exporter = start_exporter(stick_config(stick.path, "state:\n  stale_after: 3\n"))
    prometheus.scrape(job("stale", exporter.port))
    assert wait_until(lambda: stick.mode is not None)
    meter = SimulatedMeter(FAMILIES_BY_NAME["otus"], meter_id="20240001")
    power = 'amiplus_power_imported_watts{job="stale"}'

    def heard() -> bool:  # the meter sends until Prometheus has scraped it, then falls silent
        assert stick.telegram(meter.telegram(datetime.datetime.now(datetime.UTC))[0])
        return bool(prometheus.values(power))

    assert wait_until(heard, 30, every=0.5)
    assert wait_until(lambda: not prometheus.values(power), 30)  # silent for 3 s: gone
    assert prometheus.values('amiplus_voltage_volts{job="stale"}') == {}
    assert prometheus.values('amiplus_meter_info{job="stale"}')
    assert prometheus.values('amiplus_meter_last_telegram_timestamp_seconds{job="stale"}')
    assert list(prometheus.values('amiplus_meter_stale{job="stale"}').values()) == [1.0]


class UdpFeeder:
    """A meter that outlives the exporter: `amiplus-exporter simulate` lines sent over UDP."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.process = subprocess.Popen(
            [str(CONSOLE_SCRIPT), "simulate", "--realtime", "--interval", "0.3"],
            stdout=subprocess.PIPE,
        )
        self.thread = threading.Thread(target=self._forward, daemon=True)
        self.thread.start()

    def _forward(self) -> None:
        assert self.process.stdout is not None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for line in self.process.stdout:
                sender.sendto(line, ("127.0.0.1", self.port))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def test_counter_rates_stay_sane_across_an_exporter_restart(
    prometheus: Prometheus, start_exporter: Start
) -> None:
    udp = free_port()
    feeder = UdpFeeder(udp)
    try:
        config = SIMULATED.replace(
            "  - type: simulator\n    interval: 0.3\n",
            f"  - type: lines\n    listen: udp://127.0.0.1:{udp}\n",
        )
        exporter = start_exporter(config)
        prometheus.scrape(job("restart", exporter.port))
        energy = 'amiplus_energy_imported_joules_total{job="restart"}'
        up = 'up{job="restart"}'

        def samples() -> float:
            return prometheus.value(f"count_over_time({energy}[1m])") or 0.0

        assert wait_until(lambda: samples() >= 4, 30)  # a few scrapes before the stop
        assert exporter.stop() == 0
        assert wait_until(lambda: prometheus.value(up) == 0.0, 30)  # a scrape failed meanwhile
        before = samples()
        exporter.start()
        assert wait_until(lambda: samples() >= before + 5, 30)  # and some after the restart
    finally:
        feeder.stop()
    assert prometheus.values(f"resets({energy}[1m])") == {
        (
            ("instance", f"127.0.0.1:{exporter.port}"),
            ("job", "restart"),
            ("meter_id", "12345678"),
        ): 0.0
    }
    rates = prometheus.values(f"max_over_time(rate({energy}[4s])[1m:1s])")
    (peak,) = rates.values()
    assert 0 <= peak < 20_000  # watts: a household, not a reset artefact
    (low,) = prometheus.values(f"min_over_time(rate({energy}[4s])[1m:1s])").values()
    assert low >= 0


Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _certificates(directory: Path, *, server_rsa: bool = False) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files; keys
    ECDSA P-256, the server's RSA 2048 if asked."""
    now = datetime.datetime.now(datetime.UTC)

    def issue(
        name: str,
        key: Key,
        issuer: tuple[x509.Name, Key] | None,
        *,
        ca: bool = False,
        usage: list[x509.ObjectIdentifier] | None = None,
    ) -> x509.Certificate:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        issuer_name, issuer_key = issuer or (subject, key)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if usage:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        if name == "127.0.0.1":
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        return builder.sign(issuer_key, hashes.SHA256())

    def write(stem: str, key: Key, certificate: x509.Certificate) -> None:
        (directory / f"{stem}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        (directory / f"{stem}.crt").write_bytes(
            certificate.public_bytes(serialization.Encoding.PEM)
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = issue("test CA", ca_key, None, ca=True)
    write("ca", ca_key, ca)
    for stem, usage in (
        ("server", ExtendedKeyUsageOID.SERVER_AUTH),
        ("client", ExtendedKeyUsageOID.CLIENT_AUTH),
    ):
        key: Key = ec.generate_private_key(ec.SECP256R1())
        if server_rsa and stem == "server":
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = "127.0.0.1" if stem == "server" else "prometheus"
        write(stem, key, issue(name, key, (ca.subject, ca_key), usage=[usage]))


def _web_config(path: Path, password: str) -> None:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()
    path.write_text(
        "tls_server_config:\n"
        "  cert_file: server.crt\n"
        "  key_file: server.key\n"
        "  client_auth_type: RequireAndVerifyClientCert\n"
        "  client_ca_file: ca.crt\n"
        "basic_auth_users:\n"
        f"  prometheus: '{hashed}'\n"
    )


def test_tls_client_certificates_and_basic_auth(
    prometheus: Prometheus, start_exporter: Start, tmp_path: Path
) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    _certificates(certs)
    web = certs / "web.yml"
    _web_config(web, "s3cret-password")
    context = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    context.load_cert_chain(certs / "client.crt", certs / "client.key")
    exporter = start_exporter(
        SIMULATED + f"web:\n  config_file: {web}\n",
        ssl_context=context,
        headers=basic_auth("prometheus", "s3cret-password"),
    )
    assert exporter.get("/metrics")[0] == 200
    assert exporter.get("/metrics", headers=basic_auth("prometheus", "wrong"))[0] == 401
    assert exporter.get("/", headers={})[0] == 401
    without_certificate = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    with pytest.raises(OSError):
        exporter.get("/metrics", context=without_certificate)
    prometheus.scrape(
        job(
            "tls",
            exporter.port,
            scheme="https",
            tls_config={
                "ca_file": str(certs / "ca.crt"),
                "cert_file": str(certs / "client.crt"),
                "key_file": str(certs / "client.key"),
            },
            basic_auth={"username": "prometheus", "password": "s3cret-password"},
        )
    )
    up = 'up{job="tls"}'
    assert wait_until(lambda: list(prometheus.values(up).values()) == [1.0], 30), (
        prometheus.targets()
    )
    assert wait_until(lambda: prometheus.values('amiplus_meter_info{job="tls"}'), 30)
    _web_config(web, "changed-password")  # read again without a restart
    later = web.stat().st_mtime + 2  # a new modification time even on a coarse clock
    os.utime(web, (later, later))
    assert wait_until(
        lambda: (
            exporter.get("/metrics", headers=basic_auth("prometheus", "changed-password"))[0] == 200
        ),
        10,
    )
    assert exporter.get("/metrics", headers=basic_auth("prometheus", "s3cret-password"))[0] == 401
    exporter.headers = basic_auth("prometheus", "changed-password")  # for the clean stop's checks


def test_promtool_finds_nothing_to_criticise(start_exporter: Start) -> None:
    promtool = require("promtool", "prometheus")
    exporter = start_exporter(SIMULATED)
    assert wait_until(lambda: exporter.status()["meters"][0]["telegrams"] > 2, 30)
    code, body = exporter.get("/metrics")
    assert code == 200 and b"amiplus_energy_imported_joules_total" in body
    check = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=60, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout == b"" and check.stderr == b""


def test_a_wrong_key_is_explained_and_a_corrected_key_is_taken_on_sighup(
    prometheus: Prometheus, start_exporter: Start
) -> None:
    wrong = "F0" * 16
    exporter = start_exporter(SIMULATED.replace(KEY, wrong))
    prometheus.scrape(job("keys", exporter.port))
    assert wait_until(lambda: exporter.status()["meters"][0]["decrypt_failures"] >= 2, 30)
    (meter,) = exporter.status()["meters"]
    assert meter["telegrams"] == 0
    assert meter["last_failure"]["code"] == "decryption_failed"
    assert "Re-activating HAN issues a new key" in meter["last_failure"]["likely_cause"]
    code, page = exporter.get("/")
    assert code == 200 and b"does not decrypt" in page and b"Re-activating HAN" in page
    failures = 'amiplus_meter_decrypt_failures_total{job="keys"}'
    assert wait_until(
        lambda: (prometheus.value(failures) or 0) > 0,
        30,
    )
    for path in ("/", "/api/status", "/metrics"):
        body = exporter.get(path)[1].decode()
        assert wrong not in body and wrong.lower() not in body and KEY not in body
    pid = exporter.process.pid if exporter.process else None
    exporter.config_path.write_text(SIMULATED)
    exporter.signal(signal.SIGHUP)
    assert wait_until(lambda: exporter.status()["meters"][0]["telegrams"] >= 2, 30), exporter.log()
    assert exporter.process is not None and exporter.process.pid == pid
    (receiver,) = exporter.status()["receivers"]
    assert receiver["reconnects"] == 0 and receiver["up"]  # the receiver kept running
    assert "configuration reloaded" in exporter.log()
    assert wrong not in exporter.log() and KEY not in exporter.log()


def test_health_readiness_status_page_and_api(start_exporter: Start) -> None:
    exporter = start_exporter(SIMULATED)
    assert exporter.get("/healthz") == (200, b"ok\n")
    assert wait_until(lambda: exporter.get("/readyz")[0] == 200, 30)
    code, page = exporter.get("/")
    assert code == 200 and b"<h1>amiplus-exporter</h1>" in page and b"home" in page
    status = exporter.status()
    assert status["receivers"][0]["up"] is True
    assert status["meters"][0]["name"] == "home"
    assert exporter.get("/nothing-here")[0] == 404


def test_readyz_fails_while_no_receiver_is_up(start_exporter: Start, tmp_path: Path) -> None:
    exporter = start_exporter(stick_config(str(tmp_path / "no-such-stick")))
    # receivers start before the server answers: its first status already lists them
    assert [r["name"] for r in exporter.status()["receivers"]] == ["stick"]
    code, body = exporter.get("/readyz")
    assert code == 503 and b"no receiver is up" in body
    # the reason follows once the receiver thread has tried the device ("starting" before);
    # without basic auth it is its kind, not the words that name the device
    unavailable = b"no receiver is up (stick: unavailable)\n"
    assert wait_until(lambda: exporter.get("/readyz")[1] == unavailable, 10), body
    assert exporter.get("/readyz")[0] == 503
    (receiver,) = exporter.status()["receivers"]
    assert (receiver["down_code"], receiver["description"], receiver["down_reason"]) == (
        "unavailable",
        None,
        None,
    )
    assert str(tmp_path).encode() not in exporter.get("/api/status")[1]
    assert "plug the stick in" in exporter.log()  # the log has the whole reason


def test_json_logs_and_simulated_meters_with_their_own_keys(start_exporter: Start) -> None:
    other = "F0" * 16
    exporter = start_exporter(f"""
meters:
  - id: "12345678"
    key: "{KEY}"
  - id: "12345679"
    key: "{other}"
receivers:
  - type: simulator
    meters: 2
    interval: 0.5
    keys: ["{KEY}", "{other}"]
log:
  format: json
""")
    assert wait_until(lambda: all(m["telegrams"] >= 2 for m in exporter.status()["meters"]), 30), (
        exporter.log()
    )
    assert [m["decrypt_failures"] for m in exporter.status()["meters"]] == [0, 0]
    entries = [json.loads(line) for line in exporter.log().splitlines() if line.startswith("{")]
    assert entries and all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    assert any("receiver simulator started" in e["message"] for e in entries)
    assert KEY not in exporter.log() and other not in exporter.log()


ARENA_PROBE = """
import ctypes, sys, threading
from exporter.plumbing import limit_malloc_arenas
if sys.argv[1] == "limited":
    limit_malloc_arenas()
barrier = threading.Barrier(8)
def work():
    barrier.wait()
    kept = [bytes(2000) for _ in range(2000)]  # malloc'd, each thread at once
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
ctypes.CDLL(None).malloc_stats()  # glibc: one "Arena N:" block per arena, on stderr
"""


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["limited", "free"])
def test_the_daemon_keeps_two_malloc_arenas(mode: str) -> None:
    """Eight threads allocating at once get more arenas from glibc ("free", the control), two
    in the daemon (each arena keeps the megabytes its thread freed)."""
    run = subprocess.run(
        [sys.executable, "-c", ARENA_PROBE, mode],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"},
        check=True,
    )
    arenas = run.stderr.count("Arena ")
    assert arenas <= 2 if mode == "limited" else arenas > 2, run.stderr[-500:]
