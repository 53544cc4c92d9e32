"""EN 13757-3 records: DIB, VIB, data codings, date/time types, the record walker, the encoder.

Every expected value below is worked out by hand from the standard's bit layouts; the comments
show the working so that a reader can check it without running the code.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.wmbus.encoder import encode_bcd, encode_dib, encode_record
from exporter.wmbus.errors import MalformedError
from exporter.wmbus.records import (
    BAD_BCD,
    DATA_FIELDS,
    Coding,
    DataInformation,
    Function,
    InvalidValue,
    Record,
    decode_bcd,
    parse_dib,
    parse_header,
    parse_records,
    parse_vib,
)
from exporter.wmbus.timepoint import TimePoint, TimeType, decode_time_point, encode_time_point
from exporter.wmbus.vif import Combinable, Phase, Quantity


def one(hex_payload: str) -> Record:
    """The single record of a payload given in hex (spaces allowed)."""
    records = parse_records(bytes.fromhex(hex_payload))
    assert len(records) == 1, records
    return records[0]


# --------------------------------------------------------------------------------------------
# Data field codings (DIF bits 3..0)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "length", "expected"),
    [
        # Type B: signed binary integer, least significant byte first.
        ("01 2B 7F", 1, 127),
        ("01 2B 80", 1, -128),
        ("01 2B FB", 1, -5),
        ("02 2B 34 12", 2, 0x1234),
        ("02 2B FE FF", 2, -2),
        ("03 2B 56 34 12", 3, 0x123456),
        ("03 2B 00 00 80", 3, -(2**23)),
        ("03 2B FF FF FF", 3, -1),
        ("04 03 78 56 34 12", 4, 0x12345678),
        ("04 03 FF FF FF 7F", 4, 2**31 - 1),
        ("04 03 00 00 00 80", 4, -(2**31)),
        ("06 03 01 02 03 04 05 06", 6, 0x060504030201),
        ("06 03 FE FF FF FF FF FF", 6, -2),
        ("07 03 08 07 06 05 04 03 02 01", 8, 0x0102030405060708),
        ("07 03 01 00 00 00 00 00 00 80", 8, -(2**63) + 1),
        ("07 03 FF FF FF FF FF FF FF 7F", 8, 2**63 - 1),
    ],
)
def test_binary_integers(payload: str, length: int, expected: int) -> None:
    record = one(payload)
    assert record.header.data.coding is Coding.INTEGER
    assert record.header.data.length == length
    assert len(record.raw) == length
    assert record.value == expected
    assert type(record.value) is int


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ("05 2B 00 00 C0 3F", 1.5),  # 0x3FC00000: exponent 127, mantissa 1.5
        ("05 2B 00 00 20 C1", -10.0),  # 0xC1200000: sign 1, exponent 130 (2^3), 1.25
        ("05 2B 00 00 00 00", 0.0),
    ],
)
def test_real(payload: str, expected: float) -> None:
    record = one(payload)
    assert record.header.data == DataInformation(Coding.REAL, 4)
    assert record.value == expected
    assert isinstance(record.value, float)


@pytest.mark.parametrize(
    ("payload", "length", "expected"),
    [
        # Type A: BCD, least significant byte first, so the digits read right to left by byte.
        ("09 2B 42", 1, 42),
        ("0A 2B 34 12", 2, 1234),
        ("0B 2B 56 34 12", 3, 123456),
        ("0C 78 78 56 34 12", 4, 12345678),  # fabrication number 12345678
        ("0C 78 01 00 00 00", 4, 1),
        ("0E 03 90 78 56 34 12 00", 6, 1234567890),  # digits 001234567890
        # A most significant nibble F is a minus sign: F0 12 34 56 -> -0123456.
        ("0C 2B 56 34 12 F0", 4, -123456),
        ("0A 2B 34 F2", 2, -234),
        ("09 2B F7", 1, -7),
        ("0E 03 01 00 00 00 00 F0", 6, -1),
    ],
)
def test_bcd(payload: str, length: int, expected: int) -> None:
    record = one(payload)
    assert record.header.data.coding is Coding.BCD
    assert record.header.data.length == length
    assert record.value == expected


@pytest.mark.parametrize("payload", ["09 2B FF", "0A 2B FF FF", "0C 78 FF FF FF FF"])
def test_bcd_all_f_is_no_value(payload: str) -> None:
    record = one(payload)
    assert record.value is None
    assert record.scaled is None


@pytest.mark.parametrize(
    "data",
    [
        "3A 12",  # digit A in the least significant place
        "34 B2",  # digit B in the third place
        "C4 12",
        "34 D2",
        "E4 12",
        "FF 12",  # F outside the most significant nibble is not a sign
        "1F FF",  # leading F (sign) followed by another F
    ],
)
def test_a_bad_bcd_digit_makes_the_record_invalid_not_the_payload(data: str) -> None:
    raw = bytes.fromhex(data)
    assert decode_bcd(raw) == InvalidValue(raw, BAD_BCD)
    bad, good = parse_records(bytes.fromhex("0A 2B" + data + "0A 2B 34 12"))
    assert bad.value == InvalidValue(raw, BAD_BCD) and good.value == 1234


def test_decode_bcd_directly() -> None:
    assert decode_bcd(bytes.fromhex("56 34 12 F0")) == -123456
    assert decode_bcd(bytes.fromhex("56 34 12 00")) == 123456
    assert decode_bcd(bytes.fromhex("00")) == 0
    assert decode_bcd(bytes.fromhex("FF FF FF")) is None


def test_no_data_and_selection() -> None:
    records = parse_records(bytes.fromhex("00 2B 08 03 09 2B 42"))
    assert [r.key for r in records] == ["002B", "0803", "092B"]
    none, selection, bcd = records
    assert none.header.data == DataInformation(Coding.NONE, 0)
    assert none.raw == b""
    assert none.value is None
    assert selection.header.data == DataInformation(Coding.SELECTION, 0)
    assert selection.raw == b""
    assert selection.value is None
    assert bcd.value == 42


# --------------------------------------------------------------------------------------------
# Variable length data (DIF data field 0xD, LVAR byte first)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        # 0x00-0xBF: LVAR characters of text, last character sent first.
        ("0D FD 11 05 4F 4C 4C 45 48", "HELLO"),
        ("0D FD 11 01 41", "A"),
        ("0D FD 11 00", ""),
        # 0xC0-0xC9: positive BCD of (LVAR - C0) bytes.
        ("0D 2B C2 34 12", 1234),
        ("0D 2B C1 07", 7),
        ("0D 2B C4 78 56 34 12", 12345678),
        # 0xD0-0xD9: negative BCD of (LVAR - D0) bytes.
        ("0D 2B D2 34 12", -1234),
        ("0D 2B D1 07", -7),
        # 0xE0-0xEF: binary number of (LVAR - E0) bytes (type B, two's complement).
        ("0D 2B E2 FE FF", -2),
        ("0D 2B E3 01 02 03", 0x030201),
        ("0D 2B E1 05", 5),
        # 0xF0-0xF4: binary number of 4 * (LVAR - EC) bytes: F0 -> 16 bytes.
        ("0D 2B F0 01" + " 00" * 15, 1),
        ("0D 2B F1 02" + " 00" * 19, 2),  # F1 -> 20 bytes
        ("0D 2B F4" + " 00" * 31 + " 01", 2**248),  # F4 -> 32 bytes, MSB is byte 31
    ],
)
def test_variable_length(payload: str, expected: int | str) -> None:
    record = one(payload)
    assert record.header.data.coding is Coding.VARIABLE
    assert record.value == expected
    assert type(record.value) is type(expected)
    # raw holds the LVAR byte and then the data it announced.
    header_length = len(record.key) // 2
    assert record.raw == bytes.fromhex(payload)[header_length:]


@pytest.mark.parametrize(("lvar", "size"), [(0xF5, 48), (0xF6, 64)])
def test_variable_length_long_binary(lvar: int, size: int) -> None:
    # EN 13757-3:2013 Table 5: F5h is a binary number of 48 bytes, F6h one of 64 bytes;
    # only F7h-FFh are reserved.
    data = bytes((3,)) + bytes(size - 1)
    payload = bytes((0x0D, 0x2B, lvar)) + data + bytes.fromhex("09 2B 42")
    records = parse_records(payload)
    assert [r.key for r in records] == ["0D2B", "092B"]
    assert records[0].raw == bytes((lvar,)) + data
    assert records[0].value == 3
    assert records[1].value == 42


@pytest.mark.parametrize("lvar", [0xF7, 0xFA, 0xFF])
def test_variable_length_reserved_lvar_raises(lvar: int) -> None:
    payload = bytes((0x0D, 0x2B, lvar)) + bytes(70)
    with pytest.raises(MalformedError):
        parse_records(payload)


# --------------------------------------------------------------------------------------------
# DIB: function, storage number, tariff, sub-unit
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dib", "expected"),
    [
        ("0B", DataInformation(Coding.BCD, 3)),
        ("1B", DataInformation(Coding.BCD, 3, Function.MAXIMUM)),
        ("2B", DataInformation(Coding.BCD, 3, Function.MINIMUM)),
        ("3B", DataInformation(Coding.BCD, 3, Function.ERROR_STATE)),
        # DIFE bits 5..4 are the tariff, two bits per DIFE, first DIFE least significant.
        ("8E 10", DataInformation(Coding.BCD, 6, tariff=1)),
        ("8E 20", DataInformation(Coding.BCD, 6, tariff=2)),
        ("8E 30", DataInformation(Coding.BCD, 6, tariff=3)),
        ("8E 80 10", DataInformation(Coding.BCD, 6, tariff=4)),
        ("8E B0 30", DataInformation(Coding.BCD, 6, tariff=15)),
        # DIF bit 6 is storage bit 0; each DIFE adds four more bits (bits 3..0).
        ("4C", DataInformation(Coding.BCD, 4, storage_number=1)),
        ("CC 01", DataInformation(Coding.BCD, 4, storage_number=3)),
        ("8C 0F", DataInformation(Coding.BCD, 4, storage_number=30)),
        ("CC 8F 01", DataInformation(Coding.BCD, 4, storage_number=1 + 30 + 32)),
        ("84 80 01", DataInformation(Coding.INTEGER, 4, storage_number=32)),
        # DIFE bit 6 is one sub-unit bit per DIFE.
        ("8B 40", DataInformation(Coding.BCD, 3, subunit=1)),
        ("8B 80 40", DataInformation(Coding.BCD, 3, subunit=2)),
        ("8B C0 40", DataInformation(Coding.BCD, 3, subunit=3)),
        # DIFE 5F: sub-unit 1, tariff 1, storage bits 1111 -> storage 1 + 30 with DIF bit 6.
        ("DC 5F", DataInformation(Coding.BCD, 4, Function.MAXIMUM, 31, 1, 1)),
    ],
)
def test_parse_dib(dib: str, expected: DataInformation) -> None:
    assert parse_dib(bytes.fromhex(dib)) == expected


def test_record_with_tariff_difes() -> None:
    payload = bytes.fromhex(
        "8E 10 03 21 43 65 87 09 00"  # tariff 1, BCD 000987654321 Wh
        "8E 20 03 01 00 00 00 00 00"
        "8E 30 03 02 00 00 00 00 00"
        "8E 80 10 03 03 00 00 00 00 00"
    )
    records = parse_records(payload)
    assert [r.key for r in records] == ["8E1003", "8E2003", "8E3003", "8E801003"]
    assert [r.header.data.tariff for r in records] == [1, 2, 3, 4]
    assert [r.value for r in records] == [987654321, 1, 2, 3]
    assert all(r.header.value.quantity is Quantity.ENERGY for r in records)


def test_record_function_maximum() -> None:
    record = one("1B 2B 45 23 01")
    assert record.key == "1B2B"
    assert record.header.data.function is Function.MAXIMUM
    assert record.header.value.quantity is Quantity.POWER
    assert record.value == 12345
    assert record.scaled == 12345.0


def test_record_subunits() -> None:
    payload = bytes.fromhex("8B 40 2B 01 00 00 8B 80 40 2B 02 00 00 8B C0 40 2B 03 00 00")
    records = parse_records(payload)
    assert [r.header.data.subunit for r in records] == [1, 2, 3]
    assert [r.value for r in records] == [1, 2, 3]
    assert [r.key for r in records] == ["8B402B", "8B80402B", "8BC0402B"]


# --------------------------------------------------------------------------------------------
# VIB: primary table, FB and FD extensions, combinable VIFEs
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vib", "quantity", "unit", "exponent"),
    [
        ("00", Quantity.ENERGY, "Wh", -3),  # E000 0nnn: 10^(nnn-3) Wh
        ("03", Quantity.ENERGY, "Wh", 0),
        ("06", Quantity.ENERGY, "Wh", 3),  # kWh
        ("07", Quantity.ENERGY, "Wh", 4),
        ("13", Quantity.VOLUME, "m³", -3),  # E001 0nnn: 10^(nnn-6) m³ -> litres
        ("2B", Quantity.POWER, "W", 0),  # E010 1nnn: 10^(nnn-3) W
        ("2E", Quantity.POWER, "W", 3),  # kW
        ("6C", Quantity.DATE, "", 0),
        ("6D", Quantity.DATE_TIME, "", 0),
        ("78", Quantity.FABRICATION_NUMBER, "", 0),
        ("FD 48", Quantity.VOLTAGE, "V", -1),  # FD E100 nnnn: 10^(nnnn-9) V
        ("FD 49", Quantity.VOLTAGE, "V", 0),
        ("FD 5A", Quantity.CURRENT, "A", -2),  # FD E101 nnnn: 10^(nnnn-12) A
        ("FD 5B", Quantity.CURRENT, "A", -1),
        ("FD 17", Quantity.ERROR_FLAGS, "", 0),
        ("FD 0E", Quantity.FIRMWARE_VERSION, "", 0),
        ("FB 02", Quantity.REACTIVE_ENERGY, "varh", 3),  # FB E000 001n: 10^n kvarh
        ("FB 03", Quantity.REACTIVE_ENERGY, "varh", 4),
        ("FB 14", Quantity.REACTIVE_POWER, "var", 0),  # FB E001 01nn: 10^(nn-3) kvar
        ("FB 17", Quantity.REACTIVE_POWER, "var", 3),
        ("FB 34", Quantity.APPARENT_POWER, "VA", 0),  # FB E011 01nn: 10^(nn-3) kVA
        ("FB 2E", Quantity.FREQUENCY, "Hz", -1),  # FB E010 11nn: 10^(nn-3) Hz
    ],
)
def test_vif_tables(vib: str, quantity: Quantity, unit: str, exponent: int) -> None:
    info = parse_vib(bytes.fromhex(vib))
    assert info.quantity is quantity
    assert info.unit == unit
    assert info.exponent == exponent
    assert info.combinables == frozenset()
    assert info.phase is None
    assert info.manufacturer_specific is False
    assert info.plain_text_unit is None


def test_reactive_energy_with_multiplicative_correction() -> None:
    # FB 82: 10^0 kvarh = 10^3 varh; VIFE 73 (E111 0nnn) multiplies by 10^(3-6): varh.
    info = parse_vib(bytes.fromhex("FB 82 73"))
    assert info.quantity is Quantity.REACTIVE_ENERGY
    assert info.unit == "varh"
    assert info.exponent == 0
    assert info.combinables == frozenset()
    record = one("04 FB 82 73 10 27 00 00")
    assert record.key == "04FB8273"
    assert record.value == 10000
    assert record.scaled == 10000.0


@pytest.mark.parametrize(
    ("vib", "quantity", "exponent", "combinables"),
    [
        ("83 3C", Quantity.ENERGY, 0, {Combinable.BACKWARD}),
        ("83 3B", Quantity.ENERGY, 0, {Combinable.FORWARD}),
        ("86 BB 3C", Quantity.ENERGY, 3, {Combinable.FORWARD, Combinable.BACKWARD}),
        ("AB 48", Quantity.POWER, 0, {Combinable.UPPER_LIMIT}),  # E100 u000, u=1
        ("AB 40", Quantity.POWER, 0, {Combinable.LOWER_LIMIT}),
        ("AB C8 3C", Quantity.POWER, 0, {Combinable.UPPER_LIMIT, Combinable.BACKWARD}),
        # 7D as a combinable VIFE multiplies by 10^3; 66 is E110 0fnn "duration of".
        ("AB C8 FD 66", Quantity.POWER, 3, {Combinable.UPPER_LIMIT, Combinable.DURATION}),
        ("83 7D", Quantity.ENERGY, 3, set()),
        # E111 0nnn: 10^(nnn-6).
        ("86 70", Quantity.ENERGY, -3, set()),
        ("86 77", Quantity.ENERGY, 4, set()),
        # After FD the next byte is the FD table code, not a combinable: C8 is 0.1 V there.
        ("FD C8 3C", Quantity.VOLTAGE, -1, {Combinable.BACKWARD}),
        ("FD 48", Quantity.VOLTAGE, -1, set()),
        # 0x7C extension: 10 is the accumulation of absolute values.
        ("83 FC 10", Quantity.ENERGY, 0, {Combinable.ABSOLUTE}),
        ("83 FC 0C", Quantity.ENERGY, 0, {Combinable.DELTA}),
    ],
)
def test_combinable_vifes(
    vib: str, quantity: Quantity, exponent: int, combinables: set[Combinable]
) -> None:
    info = parse_vib(bytes.fromhex(vib))
    assert info.quantity is quantity
    assert info.exponent == exponent
    assert info.combinables == frozenset(combinables)
    assert info.phase is None
    assert info.manufacturer_specific is False


@pytest.mark.parametrize(
    ("code", "phase"),
    [("01", Phase.L1), ("02", Phase.L2), ("03", Phase.L3), ("05", Phase.L1_L2)],
)
def test_phase_extension(code: str, phase: Phase) -> None:
    info = parse_vib(bytes.fromhex("FD C9 FC" + code))
    assert info.quantity is Quantity.VOLTAGE
    assert info.unit == "V"
    assert info.exponent == 0
    assert info.phase is phase
    assert info.combinables == frozenset()


def test_phase_voltage_and_current_records() -> None:
    payload = bytes.fromhex(
        "0A FD C8 FC 01 02 23"  # L1 voltage, BCD 2302 x 0.1 V
        "0A FD C8 FC 02 98 22"  # L2 voltage 229.8 V
        "0A FD DA FC 03 34 12"  # L3 current, BCD 1234 x 0.01 A
    )
    l1, l2, l3 = parse_records(payload)
    assert (l1.key, l2.key, l3.key) == ("0AFDC8FC01", "0AFDC8FC02", "0AFDDAFC03")
    assert (l1.header.value.phase, l2.header.value.phase) == (Phase.L1, Phase.L2)
    assert l3.header.value.phase is Phase.L3
    assert l3.header.value.quantity is Quantity.CURRENT
    assert (l1.value, l2.value, l3.value) == (2302, 2298, 1234)
    assert l1.scaled == 230.2
    assert l2.scaled == 229.8
    assert l3.scaled == 12.34


def test_thousand_multiplier_record_key() -> None:
    record = one("0A AB C8 FD 66 21 43")
    assert record.key == "0AABC8FD66"
    info = record.header.value
    assert info.quantity is Quantity.POWER
    assert info.unit == "W"
    assert info.exponent == 3
    assert info.combinables == frozenset({Combinable.UPPER_LIMIT, Combinable.DURATION})
    assert record.value == 4321
    assert record.scaled == 4321000.0


def test_combinable_manufacturer_specific() -> None:
    # VIFE FF (7F with extension): what follows (13) is manufacturer-specific, not a combinable.
    record = one("0B AB C8 FF 13 56 34 12")
    assert record.key == "0BABC8FF13"
    info = record.header.value
    assert info.quantity is Quantity.POWER
    assert info.exponent == 0
    assert info.combinables == frozenset({Combinable.UPPER_LIMIT})
    assert info.manufacturer_specific is True
    assert record.value == 123456


def test_primary_manufacturer_specific_vif() -> None:
    record = one("09 FF 19 42")
    assert record.key == "09FF19"
    info = record.header.value
    assert info.quantity is Quantity.MANUFACTURER_SPECIFIC
    assert info.manufacturer_specific is True
    assert info.combinables == frozenset()
    assert record.value == 42


def test_plain_text_vif_without_extension() -> None:
    # VIF 7C: a length byte, then the unit text with its last character first ("%RH").
    info = parse_vib(bytes.fromhex("7C 03 48 52 25"))
    assert info.quantity is Quantity.PLAIN_TEXT
    assert info.plain_text_unit == "%RH"
    assert info.exponent == 0
    records = parse_records(bytes.fromhex("02 7C 03 48 52 25 44 0D 09 2B 42"))
    assert [r.key for r in records] == ["027C03485225", "092B"]
    assert records[0].value == 0x0D44
    assert records[1].value == 42


def test_plain_text_vif_with_extension() -> None:
    # VIF FC: length byte and text, then the VIFE (74: 10^(4-6)). This is the layout libmbus
    # reads and the Elvaco CMa10 sends: 0D44 = 3396 -> 33.96 %RH.
    record = one("02 FC 03 48 52 25 74 44 0D")
    assert record.key == "02FC03485225" + "74"
    info = record.header.value
    assert info.quantity is Quantity.PLAIN_TEXT
    assert info.plain_text_unit == "%RH"
    assert info.exponent == -2
    assert record.value == 3396
    assert record.scaled == 33.96


def test_parse_header_key_is_upper_case_hex() -> None:
    header = parse_header(bytes.fromhex("8e801003"))
    assert header.key == "8E801003"
    assert header.data == DataInformation(Coding.BCD, 6, tariff=4)
    assert header.value.quantity is Quantity.ENERGY
    assert header.value.exponent == 0


# --------------------------------------------------------------------------------------------
# Record.scaled
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "scaled"),
    [
        ("04 03 39 30 00 00", 12345.0),  # 12345 Wh, exponent 0
        ("0C 06 34 12 00 00", 1234000.0),  # 1234 kWh
        ("04 00 E8 03 00 00", 1.0),  # 1000 mWh
        ("02 FD 5B 0F 00", 1.5),  # 15 x 0.1 A
        ("02 2B FB FF", -5.0),
        ("05 2E 00 00 C0 3F", 1500.0),  # 1.5 kW as a real
    ],
)
def test_scaled(payload: str, scaled: float) -> None:
    record = one(payload)
    assert record.scaled == scaled
    assert isinstance(record.scaled, float)


def test_scaled_is_none_for_non_numbers() -> None:
    assert one("04 6D 32 37 1F 15").scaled is None  # a time point
    assert one("0D FD 11 01 41").scaled is None  # text
    assert one("0A 2B FF FF").scaled is None  # BCD "no value"


# --------------------------------------------------------------------------------------------
# Date and time types (EN 13757-3 Annex A)
# --------------------------------------------------------------------------------------------

# Type F: byte0 minute | IV<<7, byte1 hour | hundred-year<<5 | SU<<7,
# byte2 day | year(2..0)<<5, byte3 month | year(6..3)<<4.
# OMS example 32 37 1F 15: minute 50, hour 0x17 = 23, day 31, month 5, year 0 | 1<<3 = 8.
TYPE_F = TimePoint(TimeType.F, 2008, 5, 31, 23, 50)
# Type G: byte0 day | year(2..0)<<5, byte1 month | year(6..3)<<4.
# 2025-12-31: year 25 = 0b0011001 -> low 001, high 0011: 3F 3C.
TYPE_G = TimePoint(TimeType.G, 2025, 12, 31)
# Type I, 2024-06-15 (a Saturday, ISO week 24, leap year) 12:34:56 summer time:
# byte0 56 | SU 0x40 | LY 0x80 = F8; byte1 34 = 22; byte2 12 | 6<<5 = CC;
# byte3 15 | (24 & 7)<<5 = 0F; byte4 6 | (24 >> 3)<<4 = 36; byte5 week 24 = 18.
TYPE_I = TimePoint(
    TimeType.I,
    2024,
    6,
    15,
    12,
    34,
    56,
    summer_time=True,
    leap_year=True,
    day_of_week=6,
    week=24,
)
# Type J: byte0 second, byte1 minute, byte2 hour: 23:59:58 -> 3A 3B 17.
TYPE_J = TimePoint(TimeType.J, hour=23, minute=59, second=58)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("32 37 1F 15", TYPE_F),
        ("32 B7 1F 15", TimePoint(TimeType.F, 2008, 5, 31, 23, 50, summer_time=True)),
        ("B2 37 1F 15", TimePoint(TimeType.F, 2008, 5, 31, 23, 50, invalid=True)),
        ("3F 3C", TYPE_G),
        ("1F 15", TimePoint(TimeType.G, 2008, 5, 31)),
        ("F8 22 CC 0F 36 18", TYPE_I),
        (
            "38 A2 0C 0F 36 00",  # no SU, no LY, IV set, no day of week, no week
            TimePoint(TimeType.I, 2024, 6, 15, 12, 34, 56, invalid=True),
        ),
        ("3A 3B 17", TYPE_J),
    ],
)
def test_decode_time_point(data: str, expected: TimePoint) -> None:
    assert decode_time_point(bytes.fromhex(data)) == expected


@pytest.mark.parametrize(
    ("point", "data"),
    [
        (TYPE_F, "32 37 1F 15"),
        (TimePoint(TimeType.F, 2008, 5, 31, 23, 50, summer_time=True), "32 B7 1F 15"),
        (TimePoint(TimeType.F, 2008, 5, 31, 23, 50, invalid=True), "B2 37 1F 15"),
        (TYPE_G, "3F 3C"),
        (TYPE_I, "F8 22 CC 0F 36 18"),
        (TYPE_J, "3A 3B 17"),
    ],
)
def test_encode_time_point(point: TimePoint, data: str) -> None:
    assert encode_time_point(point) == bytes.fromhex(data)
    assert decode_time_point(encode_time_point(point)) == point


def test_time_point_records() -> None:
    payload = bytes.fromhex("04 6D 32 37 1F 15 02 6C 3F 3C 06 6D F8 22 CC 0F 36 18 03 6D 3A 3B 17")
    f, g, i, j = parse_records(payload)
    assert (f.key, g.key, i.key, j.key) == ("046D", "026C", "066D", "036D")
    assert f.value == TYPE_F
    assert g.value == TYPE_G
    assert i.value == TYPE_I
    assert j.value == TYPE_J


def test_date_vif_with_bcd_is_not_a_time_point() -> None:
    # Only binary integer data fields carry types F/G/I/J; a BCD date is just a number.
    assert one("0C 6D 08 05 31 20").value == 20310508


@st.composite
def time_points(draw: st.DrawFn) -> TimePoint:
    kind = draw(st.sampled_from(list(TimeType)))
    year = draw(st.integers(2000, 2127))
    month = draw(st.integers(1, 12))
    day = draw(st.integers(1, 31))
    hour = draw(st.integers(0, 23))
    minute = draw(st.integers(0, 59))
    second = draw(st.integers(0, 59))
    flags = draw(st.tuples(st.booleans(), st.booleans(), st.booleans()))
    if kind is TimeType.G:
        return TimePoint(kind, year, month, day)
    if kind is TimeType.J:
        return TimePoint(kind, hour=hour, minute=minute, second=second)
    if kind is TimeType.F:
        return TimePoint(
            kind, year, month, day, hour, minute, invalid=flags[0], summer_time=flags[1]
        )
    return TimePoint(
        kind,
        year,
        month,
        day,
        hour,
        minute,
        second,
        invalid=flags[0],
        summer_time=flags[1],
        leap_year=flags[2],
        day_of_week=draw(st.integers(0, 7)),
        week=draw(st.integers(0, 53)),
    )


@given(time_points())
def test_time_point_round_trip(point: TimePoint) -> None:
    data = encode_time_point(point)
    assert len(data) == {TimeType.G: 2, TimeType.J: 3, TimeType.F: 4, TimeType.I: 6}[point.type]
    assert decode_time_point(data) == point


# --------------------------------------------------------------------------------------------
# The record walker
# --------------------------------------------------------------------------------------------


def test_idle_filler_is_skipped_anywhere() -> None:
    payload = bytes.fromhex("2F 2F 04 03 01 00 00 00 2F 0A 2B 34 12 2F 2F 2F")
    records = parse_records(payload)
    assert [r.key for r in records] == ["0403", "0A2B"]
    assert [r.value for r in records] == [1, 1234]


def test_only_idle_filler_gives_no_records() -> None:
    assert parse_records(bytes.fromhex("2F 2F 2F")) == []
    assert parse_records(b"") == []


@pytest.mark.parametrize("dif", ["0F", "1F"])
def test_manufacturer_data_ends_the_records(dif: str) -> None:
    payload = bytes.fromhex(f"04 03 01 00 00 00 {dif} AA BB 2F 04 03")
    energy, rest = parse_records(payload)
    assert energy.value == 1
    assert rest.key == dif
    assert rest.value == bytes.fromhex("AA BB 2F 04 03")
    assert rest.raw == bytes.fromhex("AA BB 2F 04 03")
    assert rest.header.data.coding is Coding.MANUFACTURER
    assert rest.header.value.quantity is Quantity.MANUFACTURER_SPECIFIC
    assert rest.header.value.manufacturer_specific is True
    assert rest.scaled is None


def test_manufacturer_data_may_be_empty() -> None:
    (rest,) = parse_records(bytes.fromhex("1F"))
    assert rest.key == "1F"
    assert rest.value == b""


def test_global_readout_dif_is_skipped() -> None:
    records = parse_records(bytes.fromhex("7F 04 03 01 00 00 00 7F"))
    assert [r.key for r in records] == ["0403"]


@pytest.mark.parametrize("dif", ["3F", "4F", "5F", "6F"])
def test_reserved_special_dif_raises(dif: str) -> None:
    with pytest.raises(MalformedError) as caught:
        parse_records(bytes.fromhex(f"04 03 01 00 00 00 {dif} 03 01"))
    assert caught.value.code == "malformed"


@pytest.mark.parametrize(
    "payload",
    [
        "04 03 01 02 03",  # four data bytes announced, three present
        "0E 03 01 02 03 04 05",
        "0D FD 11 05 41 42",  # LVAR 5, two characters present
        "0D 2B C4 01 02",  # BCD of 4 bytes, two present
        "0D FD 11",  # the LVAR byte itself is missing
        "2F 09 2B 42 0A 2B 01",
    ],
)
def test_data_past_the_end_raises(payload: str) -> None:
    with pytest.raises(MalformedError):
        parse_records(bytes.fromhex(payload))


@pytest.mark.parametrize(
    "payload",
    [
        "04",  # DIF without VIF
        "84",  # DIF announcing a DIFE
        "84 80",  # DIFE announcing another DIFE
        "04 83",  # VIF announcing a VIFE
        "04 FD",  # FD announcing its table code
        "04 FD C9",  # FD table code announcing a VIFE
        "04 83 FC",  # 0x7C extension marker as the last byte
        "02 7C 03 48 52",  # plain-text unit cut short
        "02 7C",  # plain-text length byte missing
        "09 2B 42 0A",  # a second record cut inside its DIB
    ],
)
def test_header_cut_off_raises(payload: str) -> None:
    with pytest.raises(MalformedError):
        parse_records(bytes.fromhex(payload))


def test_ten_difes_and_ten_vifes_are_allowed() -> None:
    # EN 13757-3 allows up to 10 DIFEs and 10 VIFEs.
    # DIF 84 + nine DIFEs 80 + DIFE 01: storage bit 1 + 4 * 9 = bit 37.
    record = one("84" + " 80" * 9 + " 01" + " 03" + " 01 00 00 00")
    assert record.header.data.storage_number == 2**37
    assert record.value == 1
    # VIF 83 + nine VIFEs BC (backward, extension) + one 3C.
    record = one("04 83" + " BC" * 9 + " 3C" + " 02 00 00 00")
    assert record.header.value.combinables == frozenset({Combinable.BACKWARD})
    assert record.value == 2


def test_eleven_difes_raise() -> None:
    with pytest.raises(MalformedError):
        parse_records(bytes.fromhex("84" + " 80" * 10 + " 00" + " 03" + " 01 00 00 00"))


def test_eleven_vifes_raise() -> None:
    with pytest.raises(MalformedError):
        parse_records(bytes.fromhex("04 83" + " BC" * 10 + " 3C" + " 01 00 00 00"))


def test_long_plain_text_unit_with_vifes() -> None:
    # VIF FC, a 9-character unit, then two VIFEs: F4 (10^(4-6), extension) and 3C (backward).
    # Two VIFEs are far below the limit of 10; the unit text is not made of VIFEs.
    payload = bytes.fromhex("02 FC 09") + b"ABCDEFGHI" + bytes.fromhex("F4 3C 44 0D 09 2B 42")
    records = parse_records(payload)
    assert [r.key for r in records] == ["02FC09" + b"ABCDEFGHI".hex().upper() + "F43C", "092B"]
    info = records[0].header.value
    assert info.plain_text_unit == "IHGFEDCBA"
    assert info.exponent == -2
    assert info.combinables == frozenset({Combinable.BACKWARD})
    assert records[0].value == 0x0D44
    assert records[1].value == 42


def test_end_and_start_limit_parsing() -> None:
    payload = bytes.fromhex("2F 2F 04 03 01 00 00 00 0A 2B 34 12")
    assert [r.key for r in parse_records(payload, end=8)] == ["0403"]
    assert [r.key for r in parse_records(payload, start=8)] == ["0A2B"]
    assert parse_records(payload, start=2, end=2) == []
    assert [r.value for r in parse_records(payload, 2, len(payload))] == [1, 1234]
    # An end inside a record makes that record run past the end.
    with pytest.raises(MalformedError):
        parse_records(payload, end=11)


def test_end_limits_manufacturer_data() -> None:
    payload = bytes.fromhex("0F 01 02 03 04")
    (rest,) = parse_records(payload, end=3)
    assert rest.value == bytes.fromhex("01 02")


# --------------------------------------------------------------------------------------------
# Encoder
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("info", "dib"),
    [
        (DataInformation(Coding.INTEGER, 4), "04"),
        (DataInformation(Coding.BCD, 3, Function.MAXIMUM), "1B"),
        (DataInformation(Coding.BCD, 6, tariff=1), "8E 10"),
        (DataInformation(Coding.BCD, 6, tariff=4), "8E 80 10"),
        (DataInformation(Coding.BCD, 3, subunit=1), "8B 40"),
        (DataInformation(Coding.BCD, 3, subunit=2), "8B 80 40"),
        (DataInformation(Coding.BCD, 3, subunit=3), "8B C0 40"),
        (DataInformation(Coding.BCD, 4, storage_number=1), "4C"),
        (DataInformation(Coding.BCD, 4, storage_number=3), "CC 01"),
        (DataInformation(Coding.BCD, 4, storage_number=63), "CC 8F 01"),
        (DataInformation(Coding.BCD, 4, Function.MAXIMUM, 31, 1, 1), "DC 5F"),
        (DataInformation(Coding.VARIABLE, -1), "0D"),
        (DataInformation(Coding.NONE, 0), "00"),
        (DataInformation(Coding.SELECTION, 0), "08"),
        (DataInformation(Coding.REAL, 4, Function.MINIMUM), "25"),
    ],
)
def test_encode_dib(info: DataInformation, dib: str) -> None:
    assert encode_dib(info) == bytes.fromhex(dib)
    assert parse_dib(bytes.fromhex(dib)) == info


@pytest.mark.parametrize(
    ("value", "length", "data"),
    [
        (123456, 4, "56 34 12 00"),
        (-123456, 4, "56 34 12 F0"),
        (12345678, 4, "78 56 34 12"),
        (0, 2, "00 00"),
        (-999, 2, "99 F9"),
        (-7, 1, "F7"),
        (1234567890, 6, "90 78 56 34 12 00"),
        (None, 2, "FF FF"),
        (None, 4, "FF FF FF FF"),
    ],
)
def test_encode_bcd(value: int | None, length: int, data: str) -> None:
    assert encode_bcd(value, length) == bytes.fromhex(data)
    assert decode_bcd(bytes.fromhex(data)) == value


@pytest.mark.parametrize(("value", "length"), [(10000, 2), (-1000, 2), (100, 1), (-10, 1)])
def test_encode_bcd_too_many_digits(value: int, length: int) -> None:
    with pytest.raises(ValueError):
        encode_bcd(value, length)


@pytest.mark.parametrize(
    ("header", "value", "data"),
    [
        ("0C 78", 12345678, "78 56 34 12"),
        ("8E 80 10 03", 987654321, "21 43 65 87 09 00"),
        ("04 03", -2, "FE FF FF FF"),
        ("0A FD C8 FC 01", 2302, "02 23"),
        ("04 FB 82 73", 10000, "10 27 00 00"),
        ("05 2E", 1.5, "00 00 C0 3F"),
        ("04 6D", TYPE_F, "32 37 1F 15"),
        ("06 6D", TYPE_I, "F8 22 CC 0F 36 18"),
        ("02 6C", TYPE_G, "3F 3C"),
        ("0D FD 11", "HELLO", "05 4F 4C 4C 45 48"),
        ("0A 2B", None, "FF FF"),
        ("0C 2B", -123456, "56 34 12 F0"),
    ],
)
def test_encode_record_round_trip(
    header: str, value: int | float | str | TimePoint | None, data: str
) -> None:
    encoded = encode_record(bytes.fromhex(header), value)
    assert encoded == bytes.fromhex(header + data)
    (record,) = parse_records(encoded)
    assert record.key == header.replace(" ", "")
    assert record.value == value


def test_encoded_records_walk_together() -> None:
    payload = b"".join(
        (
            b"\x2f\x2f",
            encode_record(bytes.fromhex("0C78"), 86041237),
            encode_record(bytes.fromhex("8E1003"), 1),
            encode_record(bytes.fromhex("8E801003"), 4),
            encode_record(bytes.fromhex("046D"), TYPE_F),
            b"\x2f\x2f",
        )
    )
    records = parse_records(payload)
    assert [r.key for r in records] == ["0C78", "8E1003", "8E801003", "046D"]
    assert [r.value for r in records] == [86041237, 1, 4, TYPE_F]


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------

LAYOUTS = sorted(set(DATA_FIELDS.values()), key=lambda layout: (layout[0].value, layout[1]))
CODE_OF_LAYOUT = {layout: code for code, layout in DATA_FIELDS.items()}


@given(
    layout=st.sampled_from(LAYOUTS),
    function=st.sampled_from(list(Function)),
    storage=st.integers(0, 2**20),
    tariff=st.integers(0, 15),
    subunit=st.integers(0, 7),
)
def test_dib_round_trip(
    layout: tuple[Coding, int], function: Function, storage: int, tariff: int, subunit: int
) -> None:
    info = DataInformation(layout[0], layout[1], function, storage, tariff, subunit)
    dib = encode_dib(info)
    # At most 10 DIFEs; every byte but the last carries the extension bit.
    assert 1 <= len(dib) <= 11
    assert all(byte & 0x80 for byte in dib[:-1])
    assert not dib[-1] & 0x80
    assert dib[0] & 0x0F == CODE_OF_LAYOUT[layout]
    assert parse_dib(dib) == info


@st.composite
def bcd_values(draw: st.DrawFn) -> tuple[int, int]:
    length = draw(st.sampled_from([1, 2, 3, 4, 6]))
    digits = 2 * length
    value = draw(st.integers(-(10 ** (digits - 1) - 1), 10**digits - 1))
    return value, length


@given(bcd_values())
def test_bcd_round_trip(case: tuple[int, int]) -> None:
    value, length = case
    data = encode_bcd(value, length)
    assert len(data) == length
    assert decode_bcd(data) == value


def test_encode_record_manufacturer_data() -> None:
    encoded = encode_record(bytes.fromhex("0F"), bytes.fromhex("01 02 03"))
    assert encoded == bytes.fromhex("0F 01 02 03")
    (record,) = parse_records(bytes.fromhex("04 03 01 00 00 00") + encoded)[1:]
    assert record.key == "0F"
    assert record.value == bytes.fromhex("01 02 03")


# --------------------------------------------------------------------------------------------
# Repeated payloads: a second parse of the same shape must read the new data, and a payload
# whose structure differs only after the first record must be walked again.
# --------------------------------------------------------------------------------------------


def test_same_shape_new_data() -> None:
    first = parse_records(bytes.fromhex("2F 04 03 01 00 00 00 0A 2B 34 12 2F"))
    again = parse_records(bytes.fromhex("2F 04 03 01 00 00 00 0A 2B 34 12 2F"))
    second = parse_records(bytes.fromhex("2F 04 03 02 00 00 00 0A 2B 78 56 2F"))
    assert [r.value for r in first] == [1, 1234]
    assert [r.value for r in again] == [1, 1234]
    assert [r.value for r in second] == [2, 5678]
    assert [r.raw for r in second] == [bytes.fromhex("02 00 00 00"), bytes.fromhex("78 56")]


def test_same_first_header_other_structure() -> None:
    assert [r.key for r in parse_records(bytes.fromhex("04 03 01 00 00 00 0A 2B 34 12"))] == [
        "0403",
        "0A2B",
    ]
    # Same length and first record; the second header differs.
    records = parse_records(bytes.fromhex("04 03 01 00 00 00 0A 03 34 12"))
    assert [r.key for r in records] == ["0403", "0A03"]
    # Same length; the filler moved so the second record starts one byte later.
    records = parse_records(bytes.fromhex("04 03 01 00 00 00 2F 09 2B 42"))
    assert [(r.key, r.value) for r in records] == [("0403", 1), ("092B", 42)]


def test_same_first_header_other_lvar() -> None:
    text = parse_records(bytes.fromhex("0D FD 11 02 41 42 0A 2B 34 12"))
    assert [(r.key, r.value) for r in text] == [("0DFD11", "BA"), ("0A2B", 1234)]
    longer = parse_records(bytes.fromhex("0D FD 11 03 41 42 43 09 2B 42"))
    assert [(r.key, r.value) for r in longer] == [("0DFD11", "CBA"), ("092B", 42)]


def test_same_shape_bad_data_is_still_found_invalid() -> None:
    assert one("0A 2B 34 12").value == 1234  # the layout is cached now
    (record,) = parse_records(bytes.fromhex("0A 2B 3A 12"))
    assert record.value == InvalidValue(bytes.fromhex("3A 12"), BAD_BCD)
