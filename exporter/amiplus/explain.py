"""Plain words for what went wrong, in English and Polish: the advice that goes with each error
code of the core and each rejection reason of the state. The core states facts; this is the one
place that tells an AMIplus user what to do (eLicznik, HAN, receivers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..wmbus import (
    DEVICE_TYPES,
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
#: A telegram in clear for a meter that has a key: AMIplus meters always encrypt, so it is not
#: the meter's (a reason of the pipeline: the core only says whether it decrypted).
NOT_ENCRYPTED = "not_encrypted"
#: A configured meter that no telegram came from since the start.
NOT_HEARD = "not_heard"
#: The same, while no receiver is up: the meter cannot have been heard.
NOT_HEARD_NO_RECEIVER = "not_heard_no_receiver"
#: Directories the exporter keeps its state in, when this user cannot write them.
STATE_UNWRITABLE = "state_unwritable"
SPOOL_UNWRITABLE = "spool_unwritable"
#: Why a receiver is not up (`ReceiverStats.down_code`).
RECEIVER_STARTING = "starting"
RECEIVER_UNAVAILABLE = "unavailable"
RECEIVER_NO_PERMISSION = "no_permission"
RECEIVER_NO_ANSWER = "no_answer"
RECEIVER_SILENT = "silent"
RECEIVER_FINISHED = "finished"
RECEIVER_BROKER = "broker"


@dataclass(frozen=True, slots=True)
class Advice:
    """What to do (`en`, `pl`) and, for pages that show a code rather than a message, what
    happened (`what_en`, `what_pl`)."""

    en: str
    pl: str
    what_en: str = ""
    what_pl: str = ""

    def text(self, language: Language) -> str:
        return self.pl if language == "pl" else self.en

    def as_json(self) -> dict[str, dict[str, str]]:
        """Both languages, for the status page's language switch."""
        return {
            "what": {"en": self.what_en, "pl": self.what_pl},
            "advice": {"en": self.en, "pl": self.pl},
        }


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
        "The telegram is encrypted and no key is configured for it.",
        "Telegram jest zaszyfrowany, a dla licznika nie podano klucza.",
    ),
    DecryptionError.code: Advice(
        "Check the key that eLicznik shows as 'Klucz szyfrujący' (tab Licznik / HAN) and that "
        "it belongs to this meter. Re-activating HAN issues a new key: the old one stops working.",
        "Sprawdź klucz, który eLicznik pokazuje jako 'Klucz szyfrujący' (zakładka Licznik / HAN), "
        "i czy należy do tego licznika. Ponowna aktywacja HAN wydaje nowy klucz: stary przestaje "
        "działać.",
        "The configured key does not decrypt the meter's telegrams.",
        "Podany klucz nie odszyfrowuje telegramów licznika.",
    ),
    CRCError.code: Advice(
        "Damaged radio frames (weak signal or interference): nothing to fix unless most frames "
        "are damaged; then move the receiver or its antenna closer to the meter.",
        "Uszkodzone ramki radiowe (słaby sygnał lub zakłócenia): nic do zrobienia, chyba że "
        "uszkodzona jest większość ramek; wtedy przysuń odbiornik lub antenę bliżej licznika.",
        "A radio frame arrived damaged (checksum error).",
        "Ramka radiowa dotarła uszkodzona (błąd sumy kontrolnej).",
    ),
    TruncatedError.code: Advice(
        "The receiver cut telegrams short: CUL/nanoCUL sticks and small CC1101 buffers cannot "
        "take long AMIplus telegrams.",
        "Odbiornik obcina telegramy: CUL/nanoCUL i małe bufory CC1101 nie mieszczą długich "
        "telegramów AMIplus.",
        "The telegram is shorter than it says it is.",
        "Telegram jest krótszy, niż zapowiada.",
    ),
    MalformedError.code: Advice(
        "Telegrams that cannot be read: a damaged frame or a wrong key.",
        "Telegramów nie da się odczytać: uszkodzona ramka albo zły klucz.",
        "The telegram's records cannot be read.",
        "Nie da się odczytać rekordów telegramu.",
    ),
    UnsupportedError.code: Advice(
        "TAURON AMIplus meters send CI 0x7A and AES mode 5: this is probably another kind of "
        "device.",
        "Liczniki TAURON AMIplus wysyłają CI 0x7A i AES w trybie 5: to najpewniej inne urządzenie.",
        "The telegram uses a layout or security mode that is not supported.",
        "Telegram ma nieobsługiwany układ albo tryb zabezpieczeń.",
    ),
    REGISTER_DECREASED: Advice(
        "A register went backwards and was ignored; if it persists the meter was replaced.",
        "Liczydło się cofnęło i zostało pominięte; jeśli to trwa, licznik wymieniono.",
        "A register value was lower than before.",
        "Wartość liczydła była niższa niż poprzednio.",
    ),
    NOT_ENCRYPTED: Advice(
        "AMIplus meters always encrypt, so this telegram did not come from the meter: someone "
        "may be sending forged readings to a receiver, or a bridge passes on telegrams it "
        "decrypted itself (let it pass them on encrypted: the exporter decrypts them).",
        "Liczniki AMIplus zawsze szyfrują, więc ten telegram nie pochodzi od licznika: ktoś może "
        "wysyłać do odbiornika fałszywe odczyty albo pośrednik przekazuje telegramy, które sam "
        "odszyfrował (niech przekazuje je zaszyfrowane: eksporter odszyfruje je sam).",
        "A telegram arrived unencrypted, though the meter has a key: not taken.",
        "Telegram przyszedł niezaszyfrowany, choć licznik ma klucz: pominięty.",
    ),
    NOT_HEARD: Advice(
        "Check the ID with `amiplus-exporter listen`: it lists every meter the receiver hears "
        "(eLicznik may show the address byte-reversed; both orders work). HAN must be active.",
        "Sprawdź adres poleceniem `amiplus-exporter listen`: pokazuje każdy licznik, który słyszy "
        "odbiornik (eLicznik bywa, że podaje adres w odwrotnej kolejności bajtów; obie działają). "
        "HAN musi być aktywny.",
        "Not heard yet.",
        "Jeszcze nie usłyszany.",
    ),
    NOT_HEARD_NO_RECEIVER: Advice(
        "No receiver is up, so no meter can be heard: see Receivers below for why.",
        "Żaden odbiornik nie działa, więc nie słychać żadnego licznika: przyczyna w sekcji "
        "Odbiorniki poniżej.",
        "Not heard: no receiver is up.",
        "Nie usłyszany: żaden odbiornik nie działa.",
    ),
    STATE_UNWRITABLE: Advice(
        "Make the directory writable for the exporter's user, or set state: directory: to one "
        "that is.",
        "Nadaj użytkownikowi eksportera prawo zapisu w tym katalogu albo wskaż inny w "
        "state: directory:.",
        "The state directory cannot be written: the calendar periods will start again with "
        "every start of the exporter.",
        "Katalog stanu nie jest zapisywalny: okresy kalendarzowe zaczną się od nowa przy każdym "
        "uruchomieniu eksportera.",
    ),
    SPOOL_UNWRITABLE: Advice(
        "Make the directory writable for the exporter's user, or set influxdb: spool: to one "
        "that is.",
        "Nadaj użytkownikowi eksportera prawo zapisu w tym katalogu albo wskaż inny w "
        "influxdb: spool:.",
        "The InfluxDB spool directory cannot be written: readings for InfluxDB are dropped.",
        "Katalog kolejki InfluxDB nie jest zapisywalny: odczyty dla InfluxDB przepadają.",
    ),
    RECEIVER_STARTING: Advice(
        "",
        "",
        "Starting.",
        "Uruchamia się.",
    ),
    RECEIVER_UNAVAILABLE: Advice(
        "Check that the stick is plugged in (ls /dev/serial/by-id/), that a network radio is "
        "powered and reachable, or that the command runs; the exporter keeps trying.",
        "Sprawdź, czy odbiornik USB jest podłączony (ls /dev/serial/by-id/), czy radio sieciowe "
        "ma zasilanie i jest osiągalne albo czy polecenie działa; eksporter ponawia próby.",
        "It cannot be opened or was disconnected.",
        "Nie da się go otworzyć albo został odłączony.",
    ),
    RECEIVER_NO_PERMISSION: Advice(
        "This user may not open the stick: add it to the group that owns the device (dialout "
        "on Debian, Ubuntu and Raspberry Pi OS): sudo usermod -aG dialout $USER, then log out "
        "and in again (the service unit and the Docker image have it already).",
        "Ten użytkownik nie może otworzyć odbiornika USB: dodaj go do grupy, do której należy "
        "urządzenie (dialout w Debianie, Ubuntu i Raspberry Pi OS): sudo usermod -aG dialout "
        "$USER, potem wyloguj się i zaloguj ponownie (usługa systemd i obraz Dockera już to "
        "mają).",
        "No permission to open it.",
        "Brak uprawnień, by go otworzyć.",
    ),
    RECEIVER_BROKER: Advice(
        "Check that the MQTT broker runs and is reachable, and its host, port, TLS, username "
        "and password (the receiver's, or the mqtt: section's when the receiver gives no host); "
        "the exporter keeps trying.",
        "Sprawdź, czy broker MQTT działa i jest osiągalny, oraz jego adres, port, TLS, nazwę "
        "użytkownika i hasło (odbiornika albo sekcji mqtt:, gdy odbiornik nie podaje adresu); "
        "eksporter ponawia próby.",
        "The MQTT broker cannot be reached, refused the connection or lost it.",
        "Broker MQTT jest nieosiągalny, odmówił połączenia albo je utracił.",
    ),
    RECEIVER_NO_ANSWER: Advice(
        "The device does not answer as this receiver type should: check `type:` and the "
        "baud rate, and that no other program uses the port.",
        "Urządzenie nie odpowiada tak, jak ten typ odbiornika: sprawdź `type:` i prędkość, i czy "
        "port nie jest zajęty przez inny program.",
        "It did not answer its set-up.",
        "Nie odpowiedział na konfigurację.",
    ),
    RECEIVER_SILENT: Advice(
        "Nothing was heard for a long time: check the antenna and the position (868.95 MHz).",
        "Długo nic nie odebrano: sprawdź antenę i ustawienie odbiornika (868,95 MHz).",
        "Silent: reopened.",
        "Cisza: otwarty ponownie.",
    ),
    RECEIVER_FINISHED: Advice(
        "",
        "",
        "Its input ended.",
        "Jego wejście się skończyło.",
    ),
}


#: Device types (`wmbus.DEVICE_TYPES`) in Polish, for the status page's meters on the air.
DEVICE_TYPES_PL: dict[int, str] = {
    0x00: "inne",
    0x02: "energia elektryczna",
    0x03: "gaz",
    0x04: "ciepło",
    0x06: "ciepła woda",
    0x07: "woda",
    0x08: "podzielnik ciepła",
    0x0A: "chłód (wylot)",
    0x0B: "chłód (wlot)",
    0x0C: "ciepło (wlot)",
    0x0D: "ciepło i chłód",
    0x15: "gorąca woda",
    0x16: "zimna woda",
    0x1A: "czujnik dymu",
    0x25: "sterownik komunikacji",
    0x31: "koncentrator OMS",
    0x32: "przekaźnik OMS (jednokierunkowy)",
    0x33: "przekaźnik OMS (dwukierunkowy)",
    0x36: "konwerter radiowy (strona systemu)",
    0x37: "konwerter radiowy (strona licznika)",
}


def device_type_words(device_type: int) -> dict[str, str]:
    """A device type's name in both languages."""
    return {
        "en": DEVICE_TYPES.get(device_type, f"type 0x{device_type:02X}"),
        "pl": DEVICE_TYPES_PL.get(device_type, f"typ 0x{device_type:02X}"),
    }


def meters_pl(count: int) -> str:
    """'1 licznik', '3 liczniki', '5 liczników': Polish plurals."""
    if count == 1:
        return "1 licznik"
    few = count % 10 in (2, 3, 4) and count % 100 not in (12, 13, 14)
    return f"{count} liczniki" if few else f"{count} liczników"


_UNREACHABLE = Advice(
    "Check that InfluxDB runs and that `url:` points at it; the readings are sent as soon as "
    "it answers.",
    "Sprawdź, czy InfluxDB działa i czy `url:` na nią wskazuje; odczyty zostaną wysłane, gdy "
    "tylko odpowie.",
    "InfluxDB does not answer: readings wait in the spool.",
    "InfluxDB nie odpowiada: odczyty czekają w kolejce na dysku.",
)
_ANSWERS_WITH_ERRORS = Advice(
    "The exporter tries again by itself; the log says what InfluxDB answered.",
    "Eksporter sam ponawia próby; w dzienniku jest odpowiedź InfluxDB.",
    "InfluxDB answers with an error: readings wait in the spool.",
    "InfluxDB odpowiada błędem: odczyty czekają w kolejce na dysku.",
)
_SPOOL_ERROR = Advice(
    "Make the spool directory writable for the exporter's user and check the disk "
    "(read-only, unmounted, failing); the exporter resumes by itself.",
    "Nadaj użytkownikowi eksportera prawo zapisu do katalogu kolejki i sprawdź dysk (tylko "
    "do odczytu, odmontowany, uszkodzony); eksporter wznowi zapis sam.",
    "The InfluxDB spool cannot be written (read-only, missing or failing disk): readings "
    "for InfluxDB are dropped (and counted).",
    "Nie można zapisać kolejki InfluxDB (dysk tylko do odczytu, brak katalogu lub awaria): "
    "odczyty dla InfluxDB są pomijane (i liczone).",
)
_INVALID = Advice(
    "The log says what InfluxDB did not accept (often a field whose type changed).",
    "W dzienniku jest, czego InfluxDB nie przyjęła (często pole, którego typ się zmienił).",
    "InfluxDB refused a batch as invalid: it is kept in the spool's rejected/ folder and "
    "not sent again.",
    "InfluxDB odrzuciła paczkę jako błędną: leży w folderze rejected/ kolejki i nie będzie "
    "wysłana ponownie.",
)
_BROKER_UNREACHABLE = Advice(
    "Check that the broker runs and the `host:` and `port:` of `mqtt:`; the exporter keeps trying.",
    "Sprawdź, czy broker działa, oraz `host:` i `port:` w sekcji `mqtt:`; eksporter ponawia próby.",
    "The MQTT broker cannot be reached.",
    "Nie można połączyć się z brokerem MQTT.",
)

#: What keeps an output from working, by `output:reason` (the spool's problem, or the reason of
#: the failed write or connection that an output's status gives; web/status.py reads them).
OUTPUT_ADVICE: dict[str, Advice] = {
    "influxdb:disk_full": Advice(
        "Free space on that disk, or give `spool:` a directory on a larger one; the exporter "
        "resumes by itself.",
        "Zwolnij miejsce na tym dysku albo wskaż w `spool:` katalog na większym; eksporter "
        "wznowi zapis sam.",
        "The disk under the InfluxDB spool is full: readings for InfluxDB are dropped (and "
        "counted).",
        "Dysk z kolejką InfluxDB jest pełny: odczyty dla InfluxDB są pomijane (i liczone).",
    ),
    "influxdb:spool_error": _SPOOL_ERROR,
    "influxdb:spool": _SPOOL_ERROR,  # a segment that could not be read
    "influxdb:rejected": _INVALID,
    "influxdb:too_large": _INVALID,
    "influxdb:connection": _UNREACHABLE,
    "influxdb:timeout": _UNREACHABLE,
    "influxdb:unauthorized": Advice(
        "Check `token:` (API v2) or `username:` and `password:` (API v1) of `influxdb:`.",
        "Sprawdź `token:` (API v2) albo `username:` i `password:` (API v1) w sekcji `influxdb:`.",
        "InfluxDB refuses the credentials: readings wait in the spool.",
        "InfluxDB odrzuca dane logowania: odczyty czekają w kolejce na dysku.",
    ),
    "influxdb:not_found": Advice(
        "Create the bucket (or database), or fix `bucket:` / `database:` of `influxdb:`.",
        "Utwórz bucket (lub bazę) albo popraw `bucket:` / `database:` w sekcji `influxdb:`.",
        "InfluxDB has no such bucket or database: readings wait in the spool.",
        "InfluxDB nie ma takiego bucketu ani bazy: odczyty czekają w kolejce na dysku.",
    ),
    "influxdb:server_error": _ANSWERS_WITH_ERRORS,
    "influxdb:rate_limited": _ANSWERS_WITH_ERRORS,
    "influxdb:http_error": _ANSWERS_WITH_ERRORS,
    "mqtt:connection": _BROKER_UNREACHABLE,
    "mqtt:timeout": _BROKER_UNREACHABLE,
    "mqtt:connection_lost": Advice(
        "The exporter reconnects by itself; if this keeps happening, check the network and the "
        "broker's log.",
        "Eksporter połączy się ponownie sam; jeśli to się powtarza, sprawdź sieć i dziennik "
        "brokera.",
        "The connection to the MQTT broker was lost.",
        "Połączenie z brokerem MQTT zostało przerwane.",
    ),
    "mqtt:tls": Advice(
        "Check `tls:` of `mqtt:` (the port, usually 8883, and `ca_file:`).",
        "Sprawdź `tls:` w sekcji `mqtt:` (port, zwykle 8883, i `ca_file:`).",
        "The TLS connection to the MQTT broker failed.",
        "Połączenie TLS z brokerem MQTT nie powiodło się.",
    ),
    "mqtt:unauthorized": Advice(
        "Check `username:` and `password:` of `mqtt:` (in Home Assistant: the logins of the "
        "Mosquitto broker add-on).",
        "Sprawdź `username:` i `password:` w sekcji `mqtt:` (w Home Assistant: loginy dodatku "
        "Mosquitto broker).",
        "The MQTT broker refuses the username or password.",
        "Broker MQTT odrzuca nazwę użytkownika lub hasło.",
    ),
    "mqtt:refused": Advice(
        "Check that `client_id:` is used by no other client, and the broker's log.",
        "Sprawdź, czy `client_id:` nie jest używany przez inny program, i dziennik brokera.",
        "The MQTT broker refused the connection.",
        "Broker MQTT odrzucił połączenie.",
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
