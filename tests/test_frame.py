"""EN 13757-4 frames: the CRC, formats A and B, receiver quirks, link and transport headers.

Expected on-air forms are built here by hand from the block layout of the standard (format A:
a 10-byte first block, then 16-byte blocks, each followed by its CRC; format B: one CRC after
at most 126 bytes, a second one after the rest, L counting the CRCs).
"""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from exporter.wmbus.crc import crc16, crc16_bytes
from exporter.wmbus.encoder import encode_frame
from exporter.wmbus.errors import CRCError, TruncatedError, UnsupportedError
from exporter.wmbus.frame import add_format_a_crcs, add_format_b_crcs, format_a_length, normalise
from exporter.wmbus.link import Address, manufacturer_code, manufacturer_letters, parse_link_header
from exporter.wmbus.transport import Configuration, parse_transport_header

ADDRESS = Address(
    manufacturer_code=0x2E0C, id_bytes=bytes.fromhex("37120486"), version=0x01, device_type=0x02
)
# 19 bytes of records; with the 2F2F check bytes 21, padded to two AES blocks (N = 2).
RECORDS = bytes.fromhex("0C 78 37 12 04 86 04 03 39 30 00 00 0A FD C8 FC 01 02 23")


def mode5_frame(records: bytes = RECORDS, access_number: int = 0x2A) -> bytes:
    return encode_frame(ADDRESS, records, access_number=access_number, key=bytes(16))


FRAME = mode5_frame()  # 15 header bytes + 32 encrypted bytes = 47 bytes, L = 46
# 20 records of 6 bytes: 2 + 120 bytes, padded to 128 (N = 8): 143 bytes, L = 142.
LONG_FRAME = mode5_frame(bytes.fromhex("04 03 01 02 03 04") * 20)


def clear_frame(payload: bytes) -> bytes:
    """A CI 0x78 frame (no transport header, nothing encrypted) around `payload`."""
    body = bytes.fromhex("44 0C 2E 37 12 04 86 01 02 78") + payload
    return bytes((len(body),)) + body


# --------------------------------------------------------------------------------------------
# CRC
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "crc"),
    [
        (b"123456789", 0xC2B7),  # the CRC-16/EN-13757 check value
        (bytes.fromhex("01FD1F01"), 0xCC22),
        (bytes.fromhex("EE449ACE010000802307"), 0xAABC),
        (b"", 0xFFFF),  # init 0, final XOR 0xFFFF
    ],
)
def test_crc_check_values(data: bytes, crc: int) -> None:
    assert crc16(data) == crc
    assert crc16_bytes(data) == crc.to_bytes(2, "big")  # high byte first on air


# --------------------------------------------------------------------------------------------
# The frames used below
# --------------------------------------------------------------------------------------------


def test_encode_frame_header() -> None:
    assert len(FRAME) == 47
    assert FRAME[:15] == bytes.fromhex(
        "2E"  # L = 46
        "44"  # C = SND-NR
        "0C 2E 37 12 04 86 01 02"  # M (KPL, little-endian), ID, version, type
        "7A 2A 00"  # CI, access number, status
        "20 05"  # configuration 0x0520: mode 5, N = 2
    )
    assert len(LONG_FRAME) == 143
    assert LONG_FRAME[0] == 142
    assert LONG_FRAME[13:15] == bytes.fromhex("80 05")  # mode 5, N = 8


# --------------------------------------------------------------------------------------------
# Format A
# --------------------------------------------------------------------------------------------


def format_a_by_hand(frame: bytes) -> bytes:
    blocks = [frame[:10]] + [frame[n : n + 16] for n in range(10, len(frame), 16)]
    return b"".join(block + crc16_bytes(block) for block in blocks)


def test_format_a_layout() -> None:
    on_air = add_format_a_crcs(FRAME)
    # Blocks of 10, 16, 16 and 5 bytes, each followed by its CRC.
    assert on_air == (
        FRAME[0:10]
        + crc16_bytes(FRAME[0:10])
        + FRAME[10:26]
        + crc16_bytes(FRAME[10:26])
        + FRAME[26:42]
        + crc16_bytes(FRAME[26:42])
        + FRAME[42:47]
        + crc16_bytes(FRAME[42:47])
    )
    assert len(on_air) == 55
    assert on_air[0] == 46  # L excludes the CRCs in format A


@pytest.mark.parametrize("frame", [FRAME, LONG_FRAME, clear_frame(b""), clear_frame(bytes(16))])
def test_format_a_round_trip(frame: bytes) -> None:
    on_air = add_format_a_crcs(frame)
    assert on_air == format_a_by_hand(frame)
    assert len(on_air) == format_a_length(frame[0])
    assert normalise(on_air) == frame


@pytest.mark.parametrize(
    ("length_field", "on_air"),
    [
        (9, 12),  # the 10-byte first block alone
        (10, 15),  # 11 bytes: first block + a 1-byte block
        (25, 30),  # 26 bytes: first block + one full 16-byte block
        (26, 33),  # 27 bytes: first block + 16 + 1
        (46, 55),  # 47 bytes: 10 + 16 + 16 + 5, four CRCs
        (142, 143 + 2 * 10),  # 143 bytes: 10 + 8 * 16 + 5
        (255, 256 + 2 * 17),  # 256 bytes: 10 + 15 * 16 + 6, 17 CRCs
    ],
)
def test_format_a_length(length_field: int, on_air: int) -> None:
    assert format_a_length(length_field) == on_air


@pytest.mark.parametrize("position", range(12, 55))
def test_format_a_flipped_bit_is_a_crc_error(position: int) -> None:
    on_air = add_format_a_crcs(FRAME)
    for bit in range(8):
        damaged = bytearray(on_air)
        damaged[position] ^= 1 << bit
        with pytest.raises(CRCError) as caught:
            normalise(bytes(damaged))
        assert caught.value.code == "crc"


@pytest.mark.parametrize("cut", range(12, 55))
def test_format_a_cut_inside_a_block_is_truncated(cut: int) -> None:
    on_air = add_format_a_crcs(FRAME)
    with pytest.raises(TruncatedError) as caught:
        normalise(on_air[:cut])
    assert caught.value.code == "truncated"


@pytest.mark.parametrize("extra", [b"\x00", b"\xff\xff", bytes(range(20))])
def test_format_a_extra_bytes_are_dropped(extra: bytes) -> None:
    assert normalise(add_format_a_crcs(FRAME) + extra) == FRAME


# --------------------------------------------------------------------------------------------
# Format B
# --------------------------------------------------------------------------------------------


def test_format_b_short_frame() -> None:
    on_air = add_format_b_crcs(FRAME)
    # One CRC over the whole frame, L counting it: 47 + 2 bytes, L = 48.
    body = bytes((48,)) + FRAME[1:]
    assert on_air == body + crc16_bytes(body)
    assert normalise(on_air) == FRAME


def test_format_b_long_frame() -> None:
    on_air = add_format_b_crcs(LONG_FRAME)
    # 143 bytes: CRC after the first 126, another after the remaining 17; L = 146.
    body = bytes((146,)) + LONG_FRAME[1:]
    assert on_air == body[:126] + crc16_bytes(body[:126]) + body[126:] + crc16_bytes(body[126:])
    assert len(on_air) == 147
    assert normalise(on_air) == LONG_FRAME


@pytest.mark.parametrize(
    ("size", "crcs"),
    [
        (126, 1),  # 126 + 2 = 128 bytes: the largest frame with a single CRC
        (127, 2),  # one byte more needs a second block: 126 + 2 + 1 + 2
    ],
)
def test_format_b_block_boundary(size: int, crcs: int) -> None:
    frame = clear_frame(bytes(range(size - 11)))
    assert len(frame) == size
    on_air = add_format_b_crcs(frame)
    assert len(on_air) == size + 2 * crcs
    assert on_air[0] == size + 2 * crcs - 1
    assert normalise(on_air) == frame


# --------------------------------------------------------------------------------------------
# Receiver quirks on frames without CRCs
# --------------------------------------------------------------------------------------------


def last_block_crc(frame: bytes) -> bytes:
    """CRC of the last format-A block: it starts at 10 + 16k and runs to the end."""
    start = 10 + 16 * ((len(frame) - 11) // 16)
    return crc16_bytes(frame[start:])


def test_last_block_of_the_test_frames() -> None:
    # 47 bytes: blocks 0-9, 10-25, 26-41, 42-46; 143 bytes: the last block is 138-142.
    assert last_block_crc(FRAME) == crc16_bytes(FRAME[42:])
    assert last_block_crc(LONG_FRAME) == crc16_bytes(LONG_FRAME[138:])


@pytest.mark.parametrize("frame", [FRAME, LONG_FRAME])
def test_old_rtl433_form(frame: bytes) -> None:
    raw = bytes((frame[0] - 2,)) + frame[1:] + last_block_crc(frame)
    assert normalise(raw) == frame


@pytest.mark.parametrize("frame", [FRAME, LONG_FRAME])
def test_old_rtl433_form_with_l_rewritten(frame: bytes) -> None:
    raw = frame + last_block_crc(frame)
    raw = bytes((len(raw) - 1,)) + raw[1:]
    assert normalise(raw) == frame


@pytest.mark.parametrize("frame", [FRAME, LONG_FRAME])
def test_old_rtl433_form_l_unchanged(frame: bytes) -> None:
    # The trailer appended, L left as sent (it now reads two less than the bytes printed).
    assert normalise(frame + last_block_crc(frame)) == frame


def test_old_rtl433_form_of_a_clear_frame() -> None:
    frame = clear_frame(bytes.fromhex("0C 78 37 12 04 86 04 03 39 30 00 00 0A FD C8 FC 01 02 23"))
    assert len(frame) == 30
    # L as sent (29) is two less than the 32 printed bytes imply.
    raw = frame + crc16_bytes(frame[26:])
    assert normalise(raw) == frame


def test_clear_frame_ending_like_a_trailer_is_kept() -> None:
    # A canonical clear frame whose last two data bytes happen to be the CRC of the block
    # before them: L matches the length, so nothing is cut.
    head = clear_frame(bytes(range(17)))  # 28 bytes; the last block starts at 26
    frame = head + crc16_bytes(head[26:])
    frame = bytes((len(frame) - 1,)) + frame[1:]
    assert normalise(frame) == frame


@pytest.mark.parametrize("extra", [b"\x00", b"\x00\x00\x00", b"\x5a"])
def test_extra_bytes_after_encrypted_frame_are_dropped(extra: bytes) -> None:
    assert normalise(FRAME + extra) == FRAME
    assert normalise(LONG_FRAME + extra) == LONG_FRAME


@pytest.mark.parametrize("length_field", [0x00, 0x10, 0x2D, 0x2F, 0xFF])
def test_length_field_is_rewritten(length_field: int) -> None:
    raw = bytes((length_field,)) + FRAME[1:]
    assert normalise(raw) == FRAME


def test_canonical_frame_is_kept() -> None:
    assert normalise(FRAME) == FRAME
    assert normalise(LONG_FRAME) == LONG_FRAME
    frame = clear_frame(bytes.fromhex("04 03 39 30 00 00"))
    assert normalise(frame) == frame


def test_canonical_frame_whose_ci_looks_like_a_crc() -> None:
    # Bytes 10-11 (CI 7A, access number B1) equal the CRC of bytes 0-9: one frame in 65536
    # looks like format A by its first block. It is canonical (L + 1 = length = the 15 + 32
    # bytes its header requires) and must come back unchanged.
    address = Address(0x2E0C, bytes.fromhex("55010000"), 0x01, 0x02)
    frame = encode_frame(address, RECORDS, access_number=0xB1, key=bytes(16))
    assert crc16_bytes(frame[:10]) == frame[10:12]
    assert normalise(frame) == frame
    assert normalise(add_format_a_crcs(frame)) == frame


def test_format_b_frame_whose_ci_looks_like_a_crc() -> None:
    # The same coincidence in format B: bytes 10-11 equal the CRC of bytes 0-9 (L = 48
    # there), but the frame is a valid format-B frame whose CRC matches.
    address = Address(0x2E0C, bytes.fromhex("4A010000"), 0x01, 0x02)
    frame = encode_frame(address, RECORDS, access_number=0x8C, key=bytes(16))
    on_air = add_format_b_crcs(frame)
    assert crc16_bytes(on_air[:10]) == on_air[10:12]
    assert on_air == bytes((48,)) + frame[1:] + crc16_bytes(bytes((48,)) + frame[1:])
    assert normalise(on_air) == frame


@pytest.mark.parametrize("size", range(11))
def test_fewer_than_11_bytes_is_truncated(size: int) -> None:
    with pytest.raises(TruncatedError) as caught:
        normalise(FRAME[:size])
    assert caught.value.code == "truncated"


# --------------------------------------------------------------------------------------------
# Link layer
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("letters", "code"),
    [
        # ((c1 - 64) << 10) | ((c2 - 64) << 5) | (c3 - 64)
        ("APA", 0x0601),  # 1, 16, 1
        ("DEV", 0x10B6),  # 4, 5, 22
        ("NES", 0x38B3),  # 14, 5, 19
        ("EGM", 0x14ED),  # 5, 7, 13
        ("KPL", 0x2E0C),  # 11, 16, 12
        ("FRC", 0x1A43),  # 6, 18, 3
        ("AAA", 0x0421),
        ("ZZZ", 0x6B5A),
    ],
)
def test_manufacturer(letters: str, code: int) -> None:
    assert manufacturer_code(letters) == code
    assert manufacturer_letters(code) == letters


def test_manufacturer_bit_15_is_masked() -> None:
    assert manufacturer_letters(0xAE0C) == "KPL"


@pytest.mark.parametrize("letters", ["kpl", "KP", "KPLX", "K1L", ""])
def test_manufacturer_code_rejects_non_letters(letters: str) -> None:
    with pytest.raises(ValueError):
        manufacturer_code(letters)


def test_address() -> None:
    assert ADDRESS.meter_id == "86041237"  # ID bytes 37 12 04 86, reversed
    assert ADDRESS.manufacturer == "KPL"
    assert ADDRESS.device_type_name == "electricity"
    assert ADDRESS.encode() == bytes.fromhex("0C 2E 37 12 04 86 01 02")
    assert Address.decode(bytes.fromhex("0C 2E 37 12 04 86 01 02")) == ADDRESS


def test_link_header() -> None:
    header = parse_link_header(FRAME)
    assert header.length == 46
    assert header.control == 0x44
    assert header.address == ADDRESS
    with pytest.raises(TruncatedError):
        parse_link_header(FRAME[:9])


# --------------------------------------------------------------------------------------------
# Transport layer
# --------------------------------------------------------------------------------------------

LINK = "2E 44 0C 2E 37 12 04 86 01 02"


def test_short_transport_header() -> None:
    frame = bytes.fromhex(LINK + "7A 2A 00 80 05") + bytes(128)
    header = parse_transport_header(frame)
    assert header.ci == 0x7A
    assert header.access_number == 0x2A
    assert header.status == 0x00
    assert header.configuration.word == 0x0580
    assert header.configuration.security_mode == 5
    assert header.configuration.encrypted_blocks == 8
    assert header.payload_offset == 15
    assert header.address is None
    assert header.encrypted_length == 128
    assert header.required_length == 143


def test_configuration_bits() -> None:
    frame = bytes.fromhex(LINK + "7A 01 04 1C E5")
    header = parse_transport_header(frame)
    assert header.status == 0x04
    config = header.configuration
    assert config.word == 0xE51C
    assert config.bidirectional is True  # bit 15
    assert config.accessible is True  # bit 14
    assert config.synchronous is True  # bit 13
    assert config.security_mode == 5  # bits 12..8
    assert config.encrypted_blocks == 1  # bits 7..4
    assert config.content_type == 3  # bits 3..2
    assert Configuration.for_mode5(8).word == 0x0580
    assert Configuration.for_mode5(2, synchronous=True).word == 0x2520


def test_long_transport_header() -> None:
    frame = bytes.fromhex(
        "26 44 B6 10 11 22 33 44 01 37"  # L = 38; link address of a radio converter
        "72 78 56 34 12 01 06 10 02"  # meter ID 12345678, APA, version 0x10, electricity
        "55 00 10 05"  # ACC, status, configuration 0x0510: mode 5, N = 1
    ) + bytes(16)
    header = parse_transport_header(frame)
    assert header.ci == 0x72
    assert header.access_number == 0x55
    assert header.status == 0x00
    assert header.configuration.word == 0x0510
    assert header.configuration.security_mode == 5
    assert header.configuration.encrypted_blocks == 1
    assert header.payload_offset == 23
    assert header.required_length == 39
    assert header.address == Address(0x0601, bytes.fromhex("78563412"), 0x10, 0x02)
    assert header.address.meter_id == "12345678"
    assert header.address.manufacturer == "APA"


def test_no_transport_header() -> None:
    frame = bytes.fromhex(LINK + "78 04 03 39 30 00 00")
    header = parse_transport_header(frame)
    assert header.ci == 0x78
    assert header.access_number is None
    assert header.status is None
    assert header.configuration.word == 0
    assert header.payload_offset == 11
    assert header.encrypted_length == 0


@pytest.mark.parametrize("ci", [0x8D, 0x8C, 0x90, 0x71, 0x01, 0xFF])
def test_unsupported_ci(ci: int) -> None:
    frame = bytes.fromhex(LINK) + bytes((ci,)) + bytes(20)
    with pytest.raises(UnsupportedError) as caught:
        parse_transport_header(frame)
    assert caught.value.code == "unsupported"


@pytest.mark.parametrize(
    "frame",
    [
        LINK,  # no CI byte
        LINK + "7A 2A 00 80",  # short header cut before its last byte
        LINK + "72 78 56 34 12 01 06 10 02 55 00 10",  # long header cut
    ],
)
def test_transport_header_cut_is_truncated(frame: str) -> None:
    with pytest.raises(TruncatedError):
        parse_transport_header(bytes.fromhex(frame))


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------


@given(
    manufacturer=st.integers(0, 0xFFFF),
    ident=st.binary(min_size=4, max_size=4),
    version=st.integers(0, 255),
    device_type=st.integers(0, 255),
    access_number=st.integers(0, 255),
    records=st.binary(max_size=238),
    encrypted=st.booleans(),
)
def test_normalise_round_trip(
    *,
    manufacturer: int,
    ident: bytes,
    version: int,
    device_type: int,
    access_number: int,
    records: bytes,
    encrypted: bool,
) -> None:
    address = Address(manufacturer, ident, version, device_type)
    key = bytes(16) if encrypted else None
    frame = encode_frame(address, records, access_number=access_number, key=key)
    assert frame[0] == len(frame) - 1
    assert (len(frame) - 15) % 16 == 0
    assert normalise(frame) == frame
    assert normalise(add_format_a_crcs(frame)) == frame
    if len(frame) <= 252:  # format B: L counts two CRCs and must stay within one byte
        on_air = add_format_b_crcs(frame)
        # Bytes 10-11 equal to the first block's CRC (one in 65536) are covered, and known
        # to fail, in test_format_b_frame_whose_ci_looks_like_a_crc.
        assume(crc16_bytes(on_air[:10]) != on_air[10:12])
        assert normalise(on_air) == frame
