"""Many receivers, one exporter: a meter heard by three antennas is one reading, and the installer
sees which antenna hears it best. Real UDP senders into a real exporter process."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

from prometheus_client.parser import text_string_to_metric_families

from exporter.amiplus.simulated import simulated_meters

from .conftest import free_port, wait_until
from .servers import SIMULATED_KEY, Start

ANTENNAS = {"roof": -62.0, "cellar": -91.0, "garage": -77.0}


def samples(body: bytes, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
        if sample.name == name
    }


def test_one_reading_from_three_antennas_and_the_best_of_them(start_exporter: Start) -> None:
    ports = {name: free_port() for name in ANTENNAS}
    receivers = "".join(
        f"  - type: lines\n    name: {name}\n    listen: udp://127.0.0.1:{port}\n"
        for name, port in ports.items()
    )
    exporter = start_exporter(
        f'meters:\n  - id: "12345678"\n    key: "{SIMULATED_KEY}"\n    name: home\n'
        f"receivers:\n{receivers}"
    )
    assert wait_until(lambda: all(r["up"] for r in exporter.status()["receivers"]), 20)
    (meter,) = simulated_meters(1)
    frames = [meter.telegram(datetime.now(UTC))[0] for _ in range(2)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for frame in frames:
            for name, rssi in ANTENNAS.items():  # rtl_wmbus lines carry the signal
                line = f"T1;1;1;2026-01-01 10:00:00.00Z;{rssi:.0f};;;0x{frame.hex().upper()}\n"
                sender.sendto(line.encode(), ("127.0.0.1", ports[name]))

    def metrics() -> bytes:
        return exporter.get("/metrics")[1]

    best = "amiplus_meter_best_receiver_info"
    ident = (("meter_id", "12345678"),)

    def settled() -> bool:
        """Six frames in: four duplicates, two readings (the receivers' threads race, so a
        duplicate may be counted while the other antenna's copy is still being decoded)."""
        body = metrics()
        return (
            samples(body, "amiplus_duplicate_frames_total")[()] == 4.0
            and sum(samples(body, "amiplus_meter_telegrams_total").values()) >= 2
        )

    assert wait_until(settled, 20), exporter.log()
    body = metrics()
    assert samples(body, "amiplus_meter_telegrams_total") == {ident: 2.0}  # not six
    assert samples(body, "amiplus_meter_receiver_rssi_dbm") == {
        (("meter_id", "12345678"), ("receiver", name)): rssi for name, rssi in ANTENNAS.items()
    }
    assert samples(body, best) == {(("meter_id", "12345678"), ("receiver", "roof")): 1.0}
    frames_by_receiver = samples(body, "amiplus_receiver_frames_total")
    assert set(frames_by_receiver.values()) == {2.0}  # every antenna delivered both
    (status,) = exporter.status()["meters"]
    assert status["best_receiver"] == "roof"
    assert {name: r["rssi_dbm"] for name, r in status["receptions"].items()} == ANTENNAS
