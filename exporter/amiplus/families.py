"""Record layout families of AMIplus-style meters (docs/amiplus-meters.md, section 3), as data.

A family is what one kind of meter sends: its header identity, the record keys in order (some
meters alternate between record sets) and how its access number behaves. The round-trip tests
and the simulator build telegrams from these tables.
"""

from __future__ import annotations

from dataclasses import dataclass

VOLTAGES_1V = ("0AFDC9FC01", "0AFDC9FC02", "0AFDC9FC03")
VOLTAGES_01V = ("0AFDC8FC01", "0AFDC8FC02", "0AFDC8FC03")
CURRENTS_001A = ("0BFDDAFC01", "0BFDDAFC02", "0BFDDAFC03")
IMPORT_TARIFFS_1_3 = ("8E1003", "8E2003", "8E3003")
EXPORT_TARIFFS_3_1 = ("8E30833C", "8E20833C", "8E10833C")
#: Apator Otus record set 1 (TAURON profile); NES two-tariff meters send the same order.
OTUS_SET_1 = (
    "066D",
    "0C78",
    *VOLTAGES_1V,
    *EXPORT_TARIFFS_3_1,
    "0BABC8FC10",
    *IMPORT_TARIFFS_1_3,
    "0B2B",
    "0BAB3C",
)


@dataclass(frozen=True, slots=True)
class Family:
    """One record layout family and the link/transport identity that goes with it."""

    name: str
    description: str
    manufacturer: str
    version: int
    device_type: int
    record_sets: tuple[tuple[str, ...], ...]
    constant_access_number: int | None = None  # None: counts up by one per telegram
    iv_manufacturer: str | None = None  # Sanxing builds the IV with M = FRC
    model: str = ""  # what a user calls the meter; the same for families of one identity


FAMILIES: tuple[Family, ...] = (
    Family(
        "apa-v2-single",
        "Apator APA v2 (2019): single registers, one phase (family A)",
        "APA",
        2,
        0x02,
        (("0E03", "0B2B", "066D", "0C78", "0BABC8FC10", "0E833C", "0BAB3C", VOLTAGES_1V[0]),),
        constant_access_number=0,
        model="APA v2",
    ),
    Family(
        "dev-converter",
        "Develco radio converter add-on (device type 0x37), one phase (family A)",
        "DEV",
        2,
        0x37,
        (("0C78", "066D", "0E03", "0E833C", "0B2B", "0BAB3C", VOLTAGES_1V[0], "0BABC8FC10"),),
        model="radio converter",
    ),
    Family(
        "dev-v0",
        "Develco v0: three phases and maximum demand (family A)",
        "DEV",
        0,
        0x02,
        (("0C78", "066D", "0E03", "0E833C", "1B2B", "0B2B", "0BAB3C", *VOLTAGES_1V, "0BABC8FC10"),),
        model="module v0",
    ),
    Family(
        "dev-v1",
        "Develco v1 (Linz Netz profile): totals and power only (family A)",
        "DEV",
        1,
        0x02,
        (("0C78", "066D", "0E03", "0E833C", "0B2B", "0BAB3C"),),
        model="module v1",
    ),
    Family(
        "kpl",
        "Sanxing S34U28 (KPL): IV built with M = FRC (family A)",
        "KPL",
        1,
        0x02,
        (("066D", "0C78", "0E03", "0E833C", "1B2B", "0B2B", "0BAB3C", *VOLTAGES_1V, "0BABC8FC10"),),
        iv_manufacturer="FRC",
        model="S34U28",
    ),
    Family(
        "apa-v2-tariffs",
        "Apator APA v2 with two tariffs and no totals (family B, 2022 order)",
        "APA",
        2,
        0x02,
        (
            (
                "066D",
                "0C78",
                "8E1003",
                "8E2003",
                "8E10833C",
                "8E20833C",
                "1B2B",
                "0B2B",
                "0BAB3C",
                *VOLTAGES_1V,
                "0BABC8FC10",
            ),
        ),
        constant_access_number=0,
        model="APA v2",
    ),
    Family(
        "apa-v2-2025",
        "Apator APA v2 with tariffs, Otus order plus maximum demand (family B, 2025)",
        "APA",
        2,
        0x02,
        (
            (
                "066D",
                "0C78",
                *VOLTAGES_1V,
                *EXPORT_TARIFFS_3_1,
                "1B2B",
                "0BABC8FC10",
                *IMPORT_TARIFFS_1_3,
                "0B2B",
                "0BAB3C",
            ),
        ),
        constant_access_number=0,
        model="APA v2",
    ),
    Family(
        "otus",
        "Apator Otus 1/3 (APA v1), TAURON profile: two alternating record sets (family C)",
        "APA",
        1,
        0x02,
        (
            OTUS_SET_1,
            (
                "0E03",
                *IMPORT_TARIFFS_1_3,
                "0E833C",
                "8E10833C",
                "8E20833C",
                "8E30833C",
                *VOLTAGES_1V,
                "0B2B",
                "0BAB3C",
            ),
        ),
        model="Otus 1/3",
    ),
    Family(
        "otus-pge",
        "Apator Otus 3, PGE profile: 0.1 V, reactive energy and power, currents (family C')",
        "APA",
        1,
        0x02,
        (
            (
                "066D",
                "0C78",
                "0E03",
                "8E1003",
                "0E833C",
                "8E10833C",
                "0EFB8273",
                "8E10FB8273",
                "0EFB82F33C",
                "8E10FB82F33C",
                "0B2B",
                "0BAB3C",
                "0BFB14",
                "0BFB943C",
                *VOLTAGES_01V,
                "146D",
                "14ED3C",
                *CURRENTS_001A,
            ),
        ),
        model="Otus 1/3",
    ),
    Family(
        "nes",
        "NES v3 ('NES 73331'), two tariffs; access number always 9 (family D)",
        "NES",
        3,
        0x02,
        (OTUS_SET_1,),
        constant_access_number=9,
        model="73331",
    ),
    Family(
        "gama",
        "Elgama Gama 350 (EGM v1): four tariffs and reactive power (family E)",
        "EGM",
        1,
        0x02,
        (
            (
                "066D",
                "0C78",
                "0E03",
                *IMPORT_TARIFFS_1_3,
                "8E801003",
                "0E833C",
                "8E10833C",
                "8E20833C",
                "8E30833C",
                "8E8010833C",
                "0B2B",
                "0BAB3C",
                "0BFB14",
                "0BFB943C",
                *VOLTAGES_1V,
                "0BABC8FC10",
            ),
        ),
        model="Gama 350",
    ),
)

FAMILIES_BY_NAME = {family.name: family for family in FAMILIES}

#: Makers by the manufacturer code of the link header (docs/amiplus-meters.md, section 2).
MAKERS = {
    "APA": "Apator",
    "APT": "Apator",
    "DEV": "Develco",
    "NES": "Networked Energy Services",
    "KPL": "Sanxing",
    "FRC": "Sanxing",
    "EGM": "Elgama-Elektronika",
}


def model_of(manufacturer: str, version: int, device_type: int) -> str | None:
    """The model of the families with this header identity, or None for a meter of no known
    family."""
    models = {
        family.model
        for family in FAMILIES
        if (family.manufacturer, family.version, family.device_type)
        == (manufacturer, version, device_type)
    }
    return models.pop() if len(models) == 1 else None
