"""AMIplus meaning: records to named fields, units, tariffs, derived totals and meter time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from exporter.amiplus.clock import local_time
from exporter.amiplus.reading import MeterReading, read_meter
from exporter.wmbus import decode
from exporter.wmbus.encoder import encode_frame, encode_record
from exporter.wmbus.link import Address, manufacturer_code
from exporter.wmbus.records import Value
from exporter.wmbus.timepoint import TimePoint, TimeType


def reading(*records: tuple[str, Value], maker: str = "APA", **kwargs: Any) -> MeterReading:
    address = Address(manufacturer_code(maker), bytes.fromhex("21120857"), 1, 2)
    payload = b"".join(encode_record(bytes.fromhex(key), value) for key, value in records)
    return read_meter(decode(encode_frame(address, payload, access_number=3, key=None)), **kwargs)


def time_i(*fields: int, summer: bool = False, invalid: bool = False) -> TimePoint:
    year, month, day, hour, minute, second = fields
    return TimePoint(TimeType.I, year, month, day, hour, minute, second, invalid, summer)


def test_single_registers_power_and_phases() -> None:
    r = reading(
        ("0E03", 15694050),
        ("0E833C", 7480),
        ("0B2B", 330),
        ("0BAB3C", 12),
        ("1B2B", 22852),
        ("0AFDC9FC01", 236),
        ("0AFDC8FC02", 2462),
        ("0BFDDAFC01", 1234),
        ("0BFDDBFC03", 56),
        ("0C78", 86041237),
    )
    assert r.get("energy_imported_kwh") == 15694.05 and not r.get("energy_imported_derived")
    assert r.get("energy_exported_kwh") == 7.48
    assert (
        r.get("power_imported_w"),
        r.get("power_exported_w"),
        r.get("power_imported_max_w"),
    ) == (330, 12, 22852)
    assert r.get("voltage_v", {}) == {"L1": 236.0, "L2": 246.2}
    assert r.get("current_a", {}) == {"L1": 12.34, "L3": 5.6}
    assert r.get("serial_number") == "86041237"
    assert r.unknown == ()
    assert r.meter_id == "57081221" and r.manufacturer == "APA" and r.access_number == 3


def test_tariffs_and_exactly_derived_totals() -> None:
    r = reading(
        ("8E1003", 25011061),
        ("8E2003", 18530681),
        ("8E801003", 1),
        ("8E10833C", 4999),
        ("8E20833C", 686),
    )
    assert r.get("energy_imported_tariff_kwh", {}) == {1: 25011.061, 2: 18530.681, 4: 0.001}
    assert r.get("energy_imported_kwh") == 43541.743  # the exact sum, no binary residue
    assert r.get("energy_imported_derived")
    assert r.get("energy_exported_kwh") == 5.685 and r.get("energy_exported_derived")
    as_json = r.as_json()
    assert as_json["energy_imported_tariff_kwh"] == {"1": 25011.061, "2": 18530.681, "4": 0.001}
    assert as_json["energy_imported_derived"] is True


def test_total_sent_by_the_meter_is_not_derived() -> None:
    r = reading(("0E03", 100000), ("8E1003", 60000), ("8E2003", 30000))
    assert r.get("energy_imported_kwh") == 100.0 and not r.get("energy_imported_derived")
    assert "energy_imported_derived" not in r.as_json()


def test_reactive_values() -> None:
    r = reading(("0EFB8273", 1234567), ("0EFB82F33C", 89), ("0BFB14", 434), ("0BFB943C", 5))
    assert r.get("reactive_energy_imported_kvarh") == 1234.567
    assert r.get("reactive_energy_exported_kvarh") == 0.089
    assert (r.get("reactive_power_imported_var"), r.get("reactive_power_exported_var")) == (434, 5)


def test_records_without_a_field_are_kept_as_unknown() -> None:
    records: list[tuple[str, Value]] = [
        ("0BABC8FC10", 70000),  # upper limit, absolute accumulation: meaning unknown
        ("8E10FB8273", 5),  # reactive energy per tariff
        ("4E03", 1),  # storage number 1: history, not the current register
        ("8B40ABC8FC10", 2),  # sub-unit 1
        ("8E80801003", 3),  # tariff 16: beyond the four AMIplus tariffs
        ("0AFD49", 230),  # a voltage without phase
        ("0C14", 2850427),  # volume
        ("09FF19", 7),  # manufacturer-specific VIF
        ("0BABC8FF13", 8),  # manufacturer-specific combinable VIFE
        ("2B2B", 9),  # minimum power
    ]
    r = reading(*records)
    assert [(u.key, u.value) for u in r.unknown] == records
    assert r.get("power_imported_w") is None and r.get("voltage_v", {}) == {}


def test_duplicate_fields_keep_the_first_and_lose_nothing() -> None:
    r = reading(("0B2B", 1), ("0B2B", 2), ("0AFDC9FC01", 230), ("0AFDC9FC01", 231))
    assert r.get("power_imported_w") == 1.0 and r.get("voltage_v", {}) == {"L1": 230.0}
    assert [(u.key, u.value) for u in r.unknown] == [("0B2B", 2), ("0AFDC9FC01", 231)]


def test_no_value_bcd_leaves_the_field_out() -> None:
    r = reading(("0B2B", None), ("0E03", 5000))
    assert r.get("power_imported_w") is None and "power_imported_w" not in r.as_json()
    assert r.get("energy_imported_kwh") == 5.0


def test_meter_time_offset_comes_from_the_zone_rules() -> None:
    winter = reading(("066D", time_i(2025, 2, 2, 14, 9, 55)), maker="NES")
    assert winter.as_json()["meter_time"] == "2025-02-02T14:09:55+01:00"
    # NES never sets the summer-time flag; the zone still knows July is CEST.
    summer = reading(("066D", time_i(2025, 7, 2, 14, 9, 55)), maker="NES")
    assert summer.as_json()["meter_time"] == "2025-07-02T14:09:55+02:00"


def test_repeated_autumn_hour_uses_the_flag_or_the_receive_time() -> None:
    point = (2024, 10, 27, 2, 30, 0)
    flagged = reading(("066D", time_i(*point, summer=True)))
    assert flagged.as_json()["meter_time"] == "2024-10-27T02:30:00+02:00"
    unflagged = reading(("066D", time_i(*point)))  # Apator sets the flag: clear means winter
    assert unflagged.as_json()["meter_time"] == "2024-10-27T02:30:00+01:00"
    received = datetime(2024, 10, 27, 1, 30, 20, tzinfo=UTC)  # 02:30:20 CET
    nes = reading(("066D", time_i(*point)), maker="NES", received_at=received)
    assert nes.as_json()["meter_time"] == "2024-10-27T02:30:00+01:00"
    received = datetime(2024, 10, 27, 0, 30, 20, tzinfo=UTC)  # 02:30:20 CEST
    nes = reading(("066D", time_i(*point)), maker="NES", received_at=received)
    assert nes.as_json()["meter_time"] == "2024-10-27T02:30:00+02:00"


def test_meter_time_is_aware_and_exact() -> None:
    moment = local_time(TimePoint(TimeType.I, 2024, 6, 10, 14, 11, 0), "APA")
    assert moment == datetime(2024, 6, 10, 12, 11, 0, tzinfo=UTC)


def test_invalid_or_impossible_times_stay_unknown() -> None:
    r = reading(("066D", time_i(2024, 2, 30, 1, 2, 3)))
    assert r.meter_time is None
    assert r.as_json()["unknown"] == [{"key": "066D", "value": "2024-02-30T01:02:03"}]
    r = reading(("066D", time_i(2024, 5, 25, 9, 45, 0, invalid=True)))
    assert r.meter_time is None
    assert r.as_json()["unknown"] == [
        {"key": "066D", "value": "2024-05-25T09:45:00+02:00", "invalid": True}
    ]


def test_time_of_maximum_records_keep_their_invalid_flag() -> None:
    point = TimePoint(TimeType.F, 2024, 5, 25, 9, 45, invalid=True)
    r = reading(("146D", point), ("14ED3C", point))
    assert r.as_json()["unknown"] == [
        {"key": "146D", "value": "2024-05-25T09:45:00+02:00", "invalid": True},
        {"key": "14ED3C", "value": "2024-05-25T09:45:00+02:00", "invalid": True},
    ]


def test_json_shape() -> None:
    r = reading(("0B2B", 5), ("0C78", 42), ("0F", b"\xff"), rssi_dbm=-71.5)
    out = r.as_json()
    assert list(out)[:6] == [
        "ok",
        "meter_id",
        "manufacturer",
        "version",
        "device_type",
        "access_number",
    ]
    assert out["rssi_dbm"] == -71.5
    assert out["serial_number"] == "00000042"
    assert out["unknown"] == [{"key": "0F", "value": "FF2F"}]  # vendor data runs to the end
