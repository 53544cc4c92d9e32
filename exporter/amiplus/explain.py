"""Plain words for what went wrong, in English and Polish: the advice that goes with each error
code of the core and each rejection reason of the state. The core states facts; this is the one
place that tells an AMIplus user what to do (eLicznik, HAN, receivers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..wmbus.errors import (
    CRCError,
    DecryptionError,
    MalformedError,
    NoKeyError,
    TruncatedError,
    UnsupportedError,
    WMBusError,
)

Language = Literal["en", "pl"]

#: A register value lower than the one before (a reason of the state, not of the core).
REGISTER_DECREASED = "register_decreased"


@dataclass(frozen=True, slots=True)
class Advice:
    en: str
    pl: str

    def text(self, language: Language) -> str:
        return self.pl if language == "pl" else self.en


ELICZNIK_KEY = Advice(
    "The key is the 32 hexadecimal digits that eLicznik shows as 'Klucz szyfrujący' (tab "
    "Licznik / HAN, after 'Aktywuj HAN'), or the text of its QR code.",
    "Klucz to 32 znaki szesnastkowe, które eLicznik pokazuje jako 'Klucz szyfrujący' (zakładka "
    "Licznik / HAN, po 'Aktywuj HAN'), albo tekst kodu QR.",
)

#: What to do, by error code or rejection reason.
ADVICE: dict[str, Advice] = {
    NoKeyError.code: Advice(
        "Give this meter's key. " + ELICZNIK_KEY.en,
        "Podaj klucz tego licznika. " + ELICZNIK_KEY.pl,
    ),
    DecryptionError.code: Advice(
        "Check the key that eLicznik shows as 'Klucz szyfrujący' (tab Licznik / HAN) and that "
        "it belongs to this meter. Re-activating HAN issues a new key: the old one stops working.",
        "Sprawdź klucz, który eLicznik pokazuje jako 'Klucz szyfrujący' (zakładka Licznik / HAN), "
        "i czy należy do tego licznika. Ponowna aktywacja HAN wydaje nowy klucz: stary przestaje "
        "działać.",
    ),
    CRCError.code: Advice(
        "Damaged radio frames (weak signal or interference): nothing to fix unless most frames "
        "are damaged; then move the receiver or its antenna closer to the meter.",
        "Uszkodzone ramki radiowe (słaby sygnał lub zakłócenia): nic do zrobienia, chyba że "
        "uszkodzona jest większość ramek; wtedy przysuń odbiornik lub antenę bliżej licznika.",
    ),
    TruncatedError.code: Advice(
        "The receiver cut telegrams short: CUL/nanoCUL sticks and small CC1101 buffers cannot "
        "take long AMIplus telegrams.",
        "Odbiornik obcina telegramy: CUL/nanoCUL i małe bufory CC1101 nie mieszczą długich "
        "telegramów AMIplus.",
    ),
    MalformedError.code: Advice(
        "Telegrams that cannot be read: a damaged frame or a wrong key.",
        "Telegramów nie da się odczytać: uszkodzona ramka albo zły klucz.",
    ),
    UnsupportedError.code: Advice(
        "TAURON AMIplus meters send CI 0x7A and AES mode 5: this is probably another kind of "
        "device.",
        "Liczniki TAURON AMIplus wysyłają CI 0x7A i AES w trybie 5: to najpewniej inne urządzenie.",
    ),
    REGISTER_DECREASED: Advice(
        "A register went backwards and was ignored; if it persists the meter was replaced.",
        "Liczydło się cofnęło i zostało pominięte; jeśli to trwa, licznik wymieniono.",
    ),
}


def advice(code: str, language: Language = "en") -> str:
    """What a user can do about an error code or rejection reason ('' when nothing)."""
    known = ADVICE.get(code)
    return known.text(language) if known else ""


def explain(error: WMBusError, language: Language = "en") -> str:
    """The error's facts followed by what to do."""
    hint = advice(error.code, language)
    return f"{error.message} {hint}" if hint else error.message


def failure_as_json(error: WMBusError) -> dict[str, Any]:
    """The failure object of a telegram that did not decode (docs/contracts.md, section 2),
    with the header fields known before the failure."""
    out: dict[str, Any] = {"ok": False, "error": error.code, "message": explain(error)}
    address = error.address
    if address is not None:
        out["meter_id"] = address.meter_id
        out["manufacturer"] = address.manufacturer
        out["version"] = address.version
        out["device_type"] = address.device_type
    transport = error.transport
    if transport is not None and transport.access_number is not None:
        out["access_number"] = transport.access_number
    return out
