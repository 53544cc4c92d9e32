"""eLicznik credentials: addresses in either byte order, keys, QR texts in any field order."""

from __future__ import annotations

import pytest

from exporter.amiplus.credentials import (
    CredentialsError,
    id_variants,
    normalise_meter_id,
    parse_qr,
    reversed_meter_id,
)
from exporter.wmbus.security import KeyVariant

KEY = "FBA95687613B73604C320A16AA8892EA"


def test_meter_id_forms() -> None:
    assert normalise_meter_id(" 0x57081221 ") == "57081221"
    assert normalise_meter_id("5708 1221") == "57081221"
    assert reversed_meter_id("57081221") == "21120857"
    assert id_variants("21120857") == {"21120857", "57081221"}
    for bad in ("1234567", "123456789", "1234567G", ""):
        with pytest.raises(CredentialsError, match="8 digits"):
            normalise_meter_id(bad)


@pytest.mark.parametrize(
    "text",
    [
        f"30584551;12345678901;{KEY}",
        f"{KEY};30584551;12345678901",
        f"12345678901;{KEY};30584551",
        f"12345678901 ; 30584551 ; {KEY.lower()} ;",
        f"Numer fabryczny: 12345678901; Adres komunikacyjny: 30584551; Klucz szyfrujący: {KEY}",
        f"key={KEY};address=30584551;factory number=12345678901",
    ],
)
def test_qr_fields_in_any_order(text: str) -> None:
    credentials = parse_qr(text)
    assert credentials.address == "30584551"
    assert credentials.factory_number == "12345678901"
    assert credentials.key is not None
    assert credentials.key.candidates[0].key == bytes.fromhex(KEY)
    assert credentials.meter_ids == {"30584551", "51455830"}
    description = credentials.describe()
    assert "address 30584551" in description
    assert "factory number 12345678901" in description
    assert credentials.key.fingerprint in description
    assert KEY not in description and KEY.lower() not in description


def test_qr_with_equal_address_and_factory_number_and_a_text_key() -> None:
    credentials = parse_qr("56696417;AMIplusTestKey01;56696417")
    assert credentials.address == "56696417"
    assert credentials.factory_number is None
    assert credentials.key is not None
    assert credentials.key.candidates[0].variant is KeyVariant.TEXT
    assert credentials.key.candidates[0].key == b"AMIplusTestKey01"


def test_qr_labelled_address_wins_over_order() -> None:
    credentials = parse_qr(f"00142235;{KEY};adres=00254358")
    assert credentials.address == "00254358"
    assert credentials.factory_number == "00142235"
    assert credentials.meter_ids == id_variants("00254358") | id_variants("00142235")


def test_qr_problems_name_the_field_but_never_echo_it() -> None:
    with pytest.raises(CredentialsError, match="Field 2") as error:
        parse_qr("30584551;FBA95687613B73604C320A16AA8892E;x")
    assert "FBA95687613B73604C320A16AA8892E" not in str(error.value)
    with pytest.raises(CredentialsError, match="labelled as the key"):
        parse_qr("30584551;klucz=123")
    with pytest.raises(CredentialsError, match="neither"):
        parse_qr(" ; ")
