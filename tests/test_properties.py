"""Property tests: any bytes give a reading or a typed error; every layout family round-trips."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.amiplus.encoding import encode_reading
from exporter.amiplus.families import FAMILIES, Family
from exporter.amiplus.fields import Shape
from exporter.amiplus.reading import read_meter, scale, slot_for
from exporter.commands.decode import KeyRing, decode_lines
from exporter.receivers.lines import parse_line
from exporter.wmbus import CRCError, MeterKey, WMBusError, decode
from exporter.wmbus.crc import crc16_bytes
from exporter.wmbus.encoder import encode_frame, encode_record, to_air
from exporter.wmbus.frame import format_a_length
from exporter.wmbus.link import Address, manufacturer_code
from exporter.wmbus.records import Coding, Value, parse_header
from exporter.wmbus.timepoint import TimePoint, TimeType

from .conftest import VECTORS, assert_matches

WARSAW = ZoneInfo("Europe/Warsaw")
VECTOR_FRAMES = [bytes.fromhex(v["frame_hex"]) for v in VECTORS]
VECTOR_KEYS = [MeterKey.parse(v["key_hex"]) for v in VECTORS if "key_hex" in v]


def decode_anything(frame: bytes, key: MeterKey | None) -> dict[str, Any] | None:
    """Decode and name; any exception other than WMBusError fails the test."""
    try:
        telegram = decode(frame, key)
    except WMBusError as error:
        assert error.code in {
            "crc",
            "truncated",
            "malformed",
            "no_key",
            "decryption_failed",
            "unsupported",
        }
        assert error.message
        return None
    output = read_meter(telegram).as_json()
    json.dumps(output)
    return output


@given(st.binary(max_size=300), st.sampled_from([None, *VECTOR_KEYS]))
def test_arbitrary_bytes_give_a_reading_or_a_typed_error(data: bytes, key: MeterKey | None) -> None:
    decode_anything(data, key)


@given(st.binary(min_size=11, max_size=300))
def test_arbitrary_frames_with_plausible_headers(tail: bytes) -> None:
    # Valid L C M A CI prefix, random rest: exercises the transport and record layers.
    body = bytes.fromhex("44ED14514558300102") + b"\x7a" + tail
    for length in (len(body), len(body) - 3, len(body) + 2):
        decode_anything(bytes((length & 0xFF,)) + body, VECTOR_KEYS[0])
    clear = bytes.fromhex("44010610101010020278") + tail  # CI 0x78: records without header
    decode_anything(bytes((len(clear) & 0xFF,)) + clear, None)


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    frame = bytearray(draw(st.sampled_from(VECTOR_FRAMES)))
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["truncate", "flip", "extend", "insert", "delete"]))
        position = draw(st.integers(0, max(len(frame) - 1, 0)))
        if action == "truncate":
            del frame[position:]
        elif action == "flip" and frame:
            frame[position] ^= 1 << draw(st.integers(0, 7))
        elif action == "extend":
            frame += draw(st.binary(min_size=1, max_size=40))
        elif action == "insert":
            frame[position:position] = draw(st.binary(min_size=1, max_size=3))
        elif frame:
            del frame[position]
    return bytes(frame)


@given(mutated_frames(), st.sampled_from([None, *VECTOR_KEYS]))
def test_truncated_flipped_extended_frames(frame: bytes, key: MeterKey | None) -> None:
    decode_anything(frame, key)


@given(st.text(max_size=400))
def test_any_text_line_gives_items_and_the_cli_never_crashes(line: str) -> None:
    parse_line(line)
    for result in decode_lines([line], KeyRing(VECTOR_KEYS[0], frozenset())):
        json.dumps(result)


# Round trip through the encoder for every record layout family (docs/amiplus-meters.md, section 3).

FAMILY_SETS = [(f, n) for f in FAMILIES for n in range(len(f.record_sets))]


@st.composite
def moments(draw: st.DrawFn) -> datetime:
    seconds = draw(st.integers(946_684_800, 4_102_444_799))  # 2000-01-01 .. 2099-12-31 UTC
    return datetime.fromtimestamp(seconds, UTC)


def _time_point(moment: datetime) -> TimePoint:
    local = moment.astimezone(WARSAW)
    return TimePoint(
        TimeType.I,
        local.year,
        local.month,
        local.day,
        local.hour,
        local.minute,
        local.second,
        summer_time=bool(local.dst()),
    )


def record_values(
    data: st.DataObject, keys: tuple[str, ...], received_at: datetime
) -> list[tuple[str, Value]]:
    """Random raw values for a layout: BCD within its digits, the meter time, type-F times."""
    records: list[tuple[str, Value]] = []
    for key in keys:
        header = parse_header(bytes.fromhex(key))
        if header.data.coding is not Coding.INTEGER:
            records.append((key, data.draw(st.integers(0, 10 ** (2 * header.data.length) - 1))))
        elif header.data.length == 6:
            records.append((key, _time_point(received_at)))
        else:
            local = data.draw(moments()).astimezone(WARSAW)
            point = TimePoint(
                TimeType.F,
                local.year,
                local.month,
                local.day,
                local.hour,
                local.minute,
                invalid=data.draw(st.booleans()),
                summer_time=bool(local.dst()),
            )
            records.append((key, point))
    return records


def expected_json(
    records: list[tuple[str, Value]],
) -> tuple[dict[str, Any], list[dict[str, Value]]]:
    """What the reading must say, derived from the meaning table, not from the decoder."""
    out: dict[str, Any] = {}
    unknown: list[dict[str, Value]] = []
    for key, value in records:
        header = parse_header(bytes.fromhex(key))
        slot = slot_for(header)
        if slot is None:
            unknown.append({"key": key, "value": value})
            continue
        row = slot.field
        if row.shape is Shape.TIME:
            continue  # compared as an instant below
        if row.shape is Shape.DIGITS:
            assert isinstance(value, int)  # BCD digits decode to an integer
            out[row.key] = f"{value:0{2 * header.data.length}d}"
            continue
        assert isinstance(value, int)
        number = scale(value, slot.exponent)
        if row.shape is Shape.TARIFFS and slot.tariff:
            out.setdefault(row.tariff_key, {})[str(slot.tariff)] = number
        elif row.shape is Shape.PHASES:
            assert slot.phase is not None
            out.setdefault(row.key, {})[slot.phase] = number
        else:
            out[row.key] = number
    return out, unknown


def deliver(frame: bytes, how: str) -> bytes:
    """The frame as some receiver hands it over."""
    if how in ("A", "B"):
        return to_air(frame, how)
    if how == "rtl_433":  # L printed minus 2, the last format-A block's CRC appended
        start = 10 + 16 * ((len(frame) - 11) // 16)
        return bytes((frame[0] - 2,)) + frame[1:] + crc16_bytes(frame[start:])
    if how == "extra byte":
        return frame + b"\x2f"
    return frame


@pytest.mark.parametrize(
    ("family", "record_set"), FAMILY_SETS, ids=[f"{f.name}-{n}" for f, n in FAMILY_SETS]
)
@given(
    data=st.data(),
    key=st.binary(min_size=16, max_size=16),
    access_number=st.integers(0, 255),
    id_bytes=st.binary(min_size=4, max_size=4),
    how=st.sampled_from(["canonical", "A", "B", "rtl_433", "extra byte"]),
    reversed_key=st.booleans(),
)
def test_every_family_round_trips(
    *,
    family: Family,
    record_set: int,
    data: st.DataObject,
    key: bytes,
    access_number: int,
    id_bytes: bytes,
    how: str,
    reversed_key: bool,
) -> None:
    keys = family.record_sets[record_set]
    received_at = data.draw(moments())
    records = record_values(data, keys, received_at)
    address = Address(
        manufacturer_code(family.manufacturer), id_bytes, family.version, family.device_type
    )
    payload = b"".join(encode_record(bytes.fromhex(k), v) for k, v in records)
    iv_code = manufacturer_code(family.iv_manufacturer) if family.iv_manufacturer else None
    frame = encode_frame(
        address, payload, access_number=access_number, key=key, iv_manufacturer=iv_code
    )
    decoded = decode(deliver(frame, how), MeterKey.from_bytes(key[::-1] if reversed_key else key))
    assert decoded.frame == frame
    reading = read_meter(decoded, received_at=received_at)
    output = reading.as_json()
    expected, unknown = expected_json(records)
    assert_matches(output, expected)
    assert [(u.key, u.value) for u in reading.unknown] == [(u["key"], u["value"]) for u in unknown]
    assert output["meter_id"] == id_bytes[::-1].hex().upper()
    assert output["manufacturer"] == family.manufacturer
    assert output["access_number"] == access_number
    if any(key == "066D" for key, _ in records):
        assert reading.meter_time is not None  # instants: == is False across zones in a fold
        assert reading.meter_time.timestamp() == received_at.timestamp()
    for direction in ("imported", "exported"):
        tariffs = expected.get(f"energy_{direction}_tariff_kwh")
        if tariffs and f"energy_{direction}_kwh" not in expected:
            assert output[f"energy_{direction}_derived"] is True
            assert abs(output[f"energy_{direction}_kwh"] - sum(tariffs.values())) < 1e-6
    assert encode_reading(reading, keys) == payload  # the inverse mapping gives the same bytes


@given(st.data())
def test_format_a_crc_catches_every_flip_after_the_first_block(data: st.DataObject) -> None:
    frame = data.draw(st.sampled_from([bytes.fromhex(v["frame_hex"]) for v in VECTORS[:3]]))
    frame = bytes((len(frame) - 1,)) + frame[1:]
    air = bytearray(to_air(frame, "A"))
    assert len(air) == format_a_length(frame[0])
    position = data.draw(st.integers(12, len(air) - 1))
    air[position] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(CRCError):
        decode(bytes(air))
