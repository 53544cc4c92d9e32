"""The VIB encoder: the inverse of the VIF tables, for every quantity they hold."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.amiplus.families import FAMILIES
from exporter.wmbus import encode_header, vif_exponents
from exporter.wmbus.encoder import encode_vib
from exporter.wmbus.records import (
    DATA_FIELDS,
    Coding,
    DataInformation,
    Function,
    header_end,
    parse_header,
    parse_vib,
)
from exporter.wmbus.vif import EXTENSION_FB, EXTENSION_FD, PRIMARY, Combinable, Phase, Quantity

#: Every meaning the tables hold, read from the tables themselves: (quantity, exponent, unit).
MEANINGS = sorted(
    {
        (entry.quantity, entry.exponent, entry.unit)
        for table in (PRIMARY, EXTENSION_FD, EXTENSION_FB)
        for entry in table.values()
        if entry.quantity not in (Quantity.RESERVED, Quantity.PLAIN_TEXT)
    },
    key=lambda m: (m[0].value, m[1], m[2]),
)
LAYOUTS = sorted(set(DATA_FIELDS.values()), key=lambda layout: (layout[0].value, layout[1]))
FAMILY_KEYS = sorted({key for f in FAMILIES for keys in f.record_sets for key in keys})


@pytest.mark.parametrize(("quantity", "exponent", "unit"), MEANINGS, ids=str)
def test_every_meaning_of_the_tables_round_trips(
    quantity: Quantity, exponent: int, unit: str
) -> None:
    vib = encode_vib(quantity, exponent, unit=unit)
    value = parse_vib(vib)
    assert (value.quantity, value.exponent, value.unit) == (quantity, exponent, unit)
    assert value.combinables == frozenset() and value.phase is None
    assert all(byte & 0x80 for byte in vib[:-1]) and not vib[-1] & 0x80
    assert exponent in vif_exponents(quantity)


def test_every_quantity_of_the_tables_is_encodable() -> None:
    quantities = {quantity for quantity, _, _ in MEANINGS}
    assert quantities == set(Quantity) - {Quantity.RESERVED, Quantity.PLAIN_TEXT}
    for quantity in quantities:
        assert vif_exponents(quantity), quantity


@pytest.mark.parametrize(
    ("info", "quantity", "exponent", "backward", "phase", "key"),
    [
        (DataInformation(Coding.BCD, 6), Quantity.ENERGY, 0, False, None, "0E03"),
        (DataInformation(Coding.BCD, 6, tariff=3), Quantity.ENERGY, 0, True, None, "8E30833C"),
        (DataInformation(Coding.BCD, 6, tariff=4), Quantity.ENERGY, 0, False, None, "8E801003"),
        (DataInformation(Coding.BCD, 3, Function.MAXIMUM), Quantity.POWER, 0, False, None, "1B2B"),
        (DataInformation(Coding.BCD, 2), Quantity.VOLTAGE, 0, False, Phase.L3, "0AFDC9FC03"),
        (DataInformation(Coding.BCD, 2), Quantity.VOLTAGE, -1, False, Phase.L1, "0AFDC8FC01"),
        (DataInformation(Coding.BCD, 3), Quantity.CURRENT, -2, False, Phase.L2, "0BFDDAFC02"),
        (DataInformation(Coding.BCD, 3), Quantity.REACTIVE_POWER, 0, True, None, "0BFB943C"),
        (DataInformation(Coding.INTEGER, 6), Quantity.DATE_TIME, 0, False, None, "066D"),
        (DataInformation(Coding.BCD, 4), Quantity.VOLUME, -3, False, None, "0C13"),
        (DataInformation(Coding.BCD, 4), Quantity.ENERGY, 3, True, Phase.L1, "0C86BCFC01"),
    ],
)
def test_known_keys(
    *,
    info: DataInformation,
    quantity: Quantity,
    exponent: int,
    backward: bool,
    phase: Phase | None,
    key: str,
) -> None:
    header = encode_header(info, quantity, exponent, backward=backward, phase=phase)
    assert header.hex().upper() == key


def test_every_family_key_the_encoder_can_say_comes_back_byte_for_byte() -> None:
    """Keys that say only a quantity, an exponent of the tables, the flow and a phase; the others
    carry what a quantity alone cannot say (limits, a x10^-3 correction of the PGE profile)."""
    unsaid = []
    for key in FAMILY_KEYS:
        header = parse_header(bytes.fromhex(key))
        value = header.value
        if value.combinables - {Combinable.BACKWARD} or value.exponent not in vif_exponents(
            value.quantity
        ):
            unsaid.append(key)
            continue
        again = encode_header(
            header.data,
            value.quantity,
            value.exponent,
            backward=Combinable.BACKWARD in value.combinables,
            phase=value.phase,
        )
        assert again.hex().upper() == key
    assert unsaid == ["0BABC8FC10", "0EFB8273", "0EFB82F33C", "8E10FB8273", "8E10FB82F33C"]


@pytest.mark.parametrize(
    ("quantity", "exponent", "unit", "message"),
    [
        (Quantity.ENERGY, 9, None, "no energy with exponent 9 (exponents they hold: -3, -2"),
        (Quantity.VOLUME_FLOW, -6, "l/h", "no volume flow in l/h with exponent -6"),
        (Quantity.PLAIN_TEXT, 0, None, "exponents they hold: none"),
        (Quantity.RESERVED, 0, None, "exponents they hold: none"),
    ],
)
def test_what_the_tables_cannot_say_is_a_clear_error(
    quantity: Quantity, exponent: int, unit: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match="The VIF tables have no") as error:
        encode_vib(quantity, exponent, unit=unit)
    assert message in str(error.value)


def test_a_manufacturer_specific_vif_takes_no_flags() -> None:
    assert encode_vib(Quantity.MANUFACTURER_SPECIFIC) == b"\x7f"
    with pytest.raises(ValueError, match="manufacturer-specific"):
        encode_vib(Quantity.MANUFACTURER_SPECIFIC, backward=True)


@given(
    meaning=st.sampled_from(MEANINGS),
    layout=st.sampled_from(LAYOUTS),
    function=st.sampled_from(list(Function)),
    storage=st.integers(0, 2**12),
    tariff=st.integers(0, 15),
    subunit=st.integers(0, 3),
    backward=st.booleans(),
    phase=st.one_of(st.none(), st.sampled_from(list(Phase))),
)
def test_headers_round_trip(
    *,
    meaning: tuple[Quantity, int, str],
    layout: tuple[Coding, int],
    function: Function,
    storage: int,
    tariff: int,
    subunit: int,
    backward: bool,
    phase: Phase | None,
) -> None:
    quantity, exponent, unit = meaning
    info = DataInformation(layout[0], layout[1], function, storage, tariff, subunit)
    if quantity is Quantity.MANUFACTURER_SPECIFIC and (backward or phase):
        with pytest.raises(ValueError):
            encode_header(info, quantity, exponent, backward=backward, phase=phase, unit=unit)
        return
    header = encode_header(info, quantity, exponent, backward=backward, phase=phase, unit=unit)
    parsed = parse_header(header)
    assert parsed.key == header.hex().upper()
    assert parsed.data == info
    value = parsed.value
    assert (value.quantity, value.exponent, value.unit) == (quantity, exponent, unit)
    assert value.combinables == (frozenset({Combinable.BACKWARD}) if backward else frozenset())
    assert value.phase is phase
    padded = header + bytes(8)  # the walker finds where the header ends
    assert header_end(padded, 0, len(padded)) == len(header)
