"""Security mode 5: IV, key candidates, the Sanxing quirk, clear payloads and clear errors."""

from __future__ import annotations

import pytest

from exporter.amiplus.explain import explain
from exporter.wmbus import (
    DecryptionError,
    KeyFormatError,
    MeterKey,
    NoKeyError,
    TruncatedError,
    UnsupportedError,
    decode,
)
from exporter.wmbus.crc import crc16_bytes
from exporter.wmbus.encoder import encode_frame, encode_record, pad_payload
from exporter.wmbus.link import Address, manufacturer_code
from exporter.wmbus.security import KeyVariant, encrypt_mode5, fingerprint, iv_for
from exporter.wmbus.transport import Configuration, TransportHeader, encode_transport_header

from .conftest import vector

KEY_HEX = "000102030405060708090A0B0C0D0E0F"
KEY = bytes.fromhex(KEY_HEX)
METER = Address(manufacturer_code("APA"), bytes.fromhex("21120857"), 1, 2)
RECORDS = encode_record(bytes.fromhex("0E03"), 123456789) + encode_record(b"\x0b\x2b", 1234)


def test_iv_is_m_a_and_access_number_eight_times() -> None:
    b2 = Address(manufacturer_code("EGM"), bytes.fromhex("51455830"), 1, 2)
    assert iv_for(b2, 0xE7) == bytes.fromhex("ED14514558300102E7E7E7E7E7E7E7E7")
    kpl = Address(0xAE0C, bytes.fromhex("44332211"), 1, 2)
    assert iv_for(kpl, 1, manufacturer_code("FRC")) == bytes.fromhex(
        "431A4433221101020101010101010101"
    )


@pytest.mark.parametrize(
    "text",
    [
        KEY_HEX,
        KEY_HEX.lower(),
        "0x" + KEY_HEX,
        " 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F ",
        "00-01-02-03-04-05-06-07-08-09-0a-0b-0c-0d-0e-0f",
        "00:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F",
    ],
)
def test_hex_key_forms_give_as_given_then_reversed(text: str) -> None:
    key = MeterKey.parse(text)
    assert [(c.key, c.variant) for c in key.candidates] == [
        (KEY, KeyVariant.AS_GIVEN),
        (KEY[::-1], KeyVariant.REVERSED),
    ]
    assert key.fingerprint == fingerprint(KEY) and len(key.fingerprint) == 4


def test_text_key_gives_its_ascii_bytes() -> None:
    key = MeterKey.parse("AMIplusTestKey01")
    assert [(c.key, c.variant) for c in key.candidates] == [
        (b"AMIplusTestKey01", KeyVariant.TEXT),
        (b"10yeKtseTsulpIMA", KeyVariant.TEXT_REVERSED),
    ]


@pytest.mark.parametrize("text", ["", "00", KEY_HEX[:-1], KEY_HEX + "00", "ä" * 16, "x" * 17])
def test_bad_keys_are_usage_errors_without_the_key(text: str) -> None:
    with pytest.raises(KeyFormatError, match="32 hexadecimal digits") as error:
        MeterKey.parse(text)
    if text:
        assert text not in str(error.value)


def test_keys_never_appear_in_repr() -> None:
    key = MeterKey.parse(KEY_HEX)
    for text in (repr(key), str(key), repr(key.candidates[0])):
        assert KEY_HEX not in text.upper()
        assert KEY.hex() not in text


def test_encrypted_round_trip_and_the_reversed_key() -> None:
    frame = encode_frame(METER, RECORDS, access_number=0xE3, key=KEY)
    telegram = decode(frame, MeterKey.from_bytes(KEY))
    assert telegram.encrypted and telegram.key_variant is KeyVariant.AS_GIVEN
    assert [r.value for r in telegram.records] == [123456789, 1234]
    assert decode(frame, MeterKey.from_bytes(KEY[::-1])).key_variant is KeyVariant.REVERSED


def test_sanxing_iv_applies_only_to_kpl() -> None:
    kpl = Address(0xAE0C, bytes.fromhex("44332211"), 1, 2)
    frame = encode_frame(
        kpl, RECORDS, access_number=1, key=KEY, iv_manufacturer=manufacturer_code("FRC")
    )
    assert [r.value for r in decode(frame, MeterKey.from_bytes(KEY)).records] == [123456789, 1234]
    apa = Address(manufacturer_code("APA"), kpl.id_bytes, 1, 2)
    frame = encode_frame(
        apa, RECORDS, access_number=1, key=KEY, iv_manufacturer=manufacturer_code("FRC")
    )
    with pytest.raises(DecryptionError):
        decode(frame, MeterKey.from_bytes(KEY))


def test_key_lookup_gets_the_meter_address() -> None:
    frame = encode_frame(METER, RECORDS, access_number=7, key=KEY)
    seen: list[Address] = []

    def lookup(address: Address) -> MeterKey | None:
        seen.append(address)
        return MeterKey.from_bytes(KEY) if address.meter_id == "57081221" else None

    assert decode(frame, lookup).encrypted
    assert seen == [METER]


def test_clear_payload_decodes_with_and_without_a_key() -> None:
    frame = encode_frame(METER, RECORDS, access_number=7, key=None)
    for key in (None, MeterKey.from_bytes(KEY)):
        telegram = decode(frame, key)
        assert not telegram.encrypted and telegram.key_variant is None
        assert [r.value for r in telegram.records] == [123456789, 1234]


def test_no_key_and_wrong_key_errors_name_the_meter_not_the_key() -> None:
    frame = encode_frame(METER, RECORDS, access_number=7, key=KEY)
    with pytest.raises(NoKeyError, match="57081221") as no_key:
        decode(frame)
    assert no_key.value.code == "no_key" and "eLicznik" not in no_key.value.message
    assert "eLicznik" in explain(no_key.value)  # the product layer says where the key is
    wrong = bytes(range(16, 32))
    with pytest.raises(DecryptionError) as failed:
        decode(frame, MeterKey.from_bytes(wrong))
    assert failed.value.code == "decryption_failed"
    assert failed.value.transport is not None and failed.value.transport.access_number == 7
    assert wrong.hex() not in failed.value.message.lower()
    assert f"fingerprint {fingerprint(wrong)}" in failed.value.message
    assert failed.value.fingerprint == fingerprint(wrong)
    assert "Re-activating HAN issues a new key" in explain(failed.value)


def test_long_transport_header_uses_the_meter_identity_for_the_iv() -> None:
    gateway = Address(manufacturer_code("ABC"), bytes.fromhex("99999999"), 7, 0x31)
    payload = pad_payload(RECORDS)
    header = TransportHeader(
        ci=0x72,
        access_number=0x42,
        status=0,
        configuration=Configuration.for_mode5(len(payload) // 16),
        payload_offset=23,
        address=METER,
    )
    body = (
        b"\x44"
        + gateway.encode()
        + encode_transport_header(header)
        + encrypt_mode5(KEY, iv_for(METER, 0x42), payload)
    )
    telegram = decode(bytes((len(body),)) + body, MeterKey.from_bytes(KEY))
    assert telegram.address == METER
    assert telegram.link.address == gateway
    assert [r.value for r in telegram.records] == [123456789, 1234]


def test_other_security_modes_are_unsupported_not_garbage() -> None:
    frame = bytearray(encode_frame(METER, RECORDS, access_number=7, key=KEY))
    frame[14] = 0x07  # configuration word high byte: security mode 7
    with pytest.raises(UnsupportedError, match="security mode 7") as error:
        decode(bytes(frame), MeterKey.from_bytes(KEY))
    assert error.value.code == "unsupported"
    frame[10] = 0x8D  # CI: extended link layer
    with pytest.raises(UnsupportedError, match="extended link layer"):
        decode(bytes(frame))


def test_truncated_encrypted_area() -> None:
    b2 = bytes.fromhex(vector("B2")["frame_hex"])
    for cut in (1, 15, 16, 100):
        with pytest.raises(TruncatedError) as error:
            decode(b2[:-cut], MeterKey.parse(vector("B2")["key_hex"]))
        assert error.value.link is not None and error.value.link.address.meter_id == "30584551"


def test_a_chance_check_match_of_another_key_or_iv_does_not_hide_the_right_one() -> None:
    # Found by the benchmark: with the KPL IV the byte-reversed key gives 2F2F by chance
    # (1 in 65536); its records do not parse, and the as-given key with the FRC IV does.
    frame = bytes.fromhex(
        "5E440C2E7162618701027A73005005717907B184D4D683A9A6BF935CC611A5E24B778001269A57EE32F9"
        "3662F377C2B19930FCD470CB2A94CE9FBED21283A63B217FAD9BF98FD08C0153085E10CE973B4FF1432C"
        "E9C094372DBE57DC75E2A2"
    )
    key = MeterKey.parse("4D06EC69C011F4615E4E738B8A268B26")
    reversed_key, standard_iv = key.candidates[1], iv_for(Address.decode(frame[2:10]), 0x73)
    blocks = reversed_key.decrypt_blocks(frame[15:31])
    assert bytes(b ^ i for b, i in zip(blocks[:2], standard_iv, strict=False)) == b"\x2f\x2f"
    telegram = decode(frame, key)
    assert telegram.key_variant is KeyVariant.AS_GIVEN
    assert telegram.address.meter_id == "87616271"
    energy = next(r for r in telegram.records if r.key == "0E03")
    assert energy.value == 1874373
    # Given byte-reversed, the chance match comes first; its records fail and the next
    # candidate that passes the check (the reversed one, with the FRC IV) is taken.
    swapped = MeterKey.parse(bytes.fromhex("4D06EC69C011F4615E4E738B8A268B26")[::-1].hex())
    telegram = decode(frame, swapped)
    assert telegram.key_variant is KeyVariant.REVERSED
    assert next(r for r in telegram.records if r.key == "0E03").value == 1874373


def test_a_clear_frame_whose_header_looks_like_a_crc_is_not_a_crc_error() -> None:
    # Found by the benchmark: the CRC of these first 10 bytes is 7AAC, the CI and access
    # number that follow, so the frame looks like format A with CRCs; it has none.
    frame = bytes.fromhex(
        "5E440C2E8577305701027AAC005005EAFDDA1DA7E5EF47519A95C0B1A46F93D93851FC7DC8FA60B5DCF2"
        "895D8AC095F94E921D390B049678D17F1C0622FFCCFA6395B795182ED353CC87D63D39E4B7CDC0E4CDD1"
        "7D2480FE701D9A56DDB643"
    )
    assert crc16_bytes(frame[:10]) == frame[10:12]
    telegram = decode(frame, MeterKey.parse("d342e375cccb19d75f3eef166482dcbd"))
    assert telegram.frame == frame
    assert telegram.address.meter_id == "57307785"
    assert telegram.address.manufacturer == "KPL"
