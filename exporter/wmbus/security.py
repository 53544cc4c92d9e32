"""Security mode 5 (AES-128-CBC with IV) and the forms in which users write keys
(docs/wmbus-security.md).

Keys never appear in repr, logs or errors: `MeterKey.fingerprint` tells keys apart instead.
"""

from __future__ import annotations

import enum
import hashlib
import string
from collections.abc import Iterator
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

from .errors import DecryptionError, KeyFormatError, NoKeyError, TruncatedError
from .link import Address, manufacturer_code
from .transport import BLOCK_SIZE, TransportHeader

KEY_LENGTH = 16
CHECK_BYTES = b"\x2f\x2f"

#: IV quirks by manufacturer: other M-field values some firmware puts into the IV.
#: Sanxing S34U28 frames say KPL but build the IV with M = FRC (docs/wmbus-security.md, 3).
IV_MANUFACTURER_QUIRKS: dict[int, tuple[int, ...]] = {
    manufacturer_code("KPL"): (manufacturer_code("FRC"),),
}


class KeyVariant(enum.Enum):
    """How a key candidate was derived from what the user typed."""

    AS_GIVEN = "as given"
    REVERSED = "byte-reversed"
    TEXT = "16-character text"
    TEXT_REVERSED = "16-character text, byte-reversed"

    @property
    def reversed(self) -> bool:
        """The key works only byte-reversed: worth telling the user to fix the configuration."""
        return self in (KeyVariant.REVERSED, KeyVariant.TEXT_REVERSED)


_SEPARATORS = str.maketrans("", "", " \t-:_")
_PRINTABLE = frozenset(string.printable) - frozenset("\t\n\r\x0b\x0c")
_HEX_DIGITS = frozenset(string.hexdigits)


def fingerprint(key: bytes) -> str:
    """The first 4 hex digits of SHA-256: tells keys apart without revealing them."""
    return hashlib.sha256(key).hexdigest()[:4].upper()


def shown(text: str) -> str:
    """A value a user typed, fit for a message: quoted, unless it could be a key (a form
    `MeterKey.parse` takes, or 16 hex digits or more); then only its fingerprint."""
    try:
        return f"(a value that looks like a key, fingerprint {MeterKey.parse(text).fingerprint})"
    except KeyFormatError:
        pass
    if sum(c in string.hexdigits for c in text) >= KEY_LENGTH:
        return f"(a value that looks like a key, fingerprint {fingerprint(text.encode())})"
    return repr(text)


@dataclass(frozen=True, slots=True)
class KeyCandidate:
    """One 16-byte key to try, with a reusable AES block decryptor made on first use (a fleet's
    configuration holds tens of thousands of keys; most are used rarely)."""

    key: bytes = field(repr=False)
    variant: KeyVariant
    _ecb: CipherContext | None = field(default=None, init=False, repr=False, compare=False)

    def decrypt_blocks(self, data: bytes) -> bytes:
        """AES block decryption of a whole number of blocks (CBC without the chaining XOR)."""
        ecb = self._ecb
        if ecb is None:
            ecb = Cipher(algorithms.AES(self.key), modes.ECB()).decryptor()
            object.__setattr__(self, "_ecb", ecb)
        return ecb.update(data)


def cbc_chain(blocks: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    """CBC plaintext from the block-decrypted data: each block XOR the ciphertext before it."""
    chain = iv + ciphertext[:-BLOCK_SIZE]
    return (int.from_bytes(blocks, "big") ^ int.from_bytes(chain, "big")).to_bytes(
        len(blocks), "big"
    )


@dataclass(frozen=True, slots=True)
class MeterKey:
    """A meter's key as the user gave it, expanded to the candidates worth trying."""

    candidates: tuple[KeyCandidate, ...]
    fingerprint: str

    @classmethod
    def from_bytes(cls, key: bytes) -> MeterKey:
        if len(key) != KEY_LENGTH:
            raise KeyFormatError(f"an AES key has {KEY_LENGTH} bytes, not {len(key)}")
        return cls(
            (KeyCandidate(key, KeyVariant.AS_GIVEN), KeyCandidate(key[::-1], KeyVariant.REVERSED)),
            fingerprint(key),
        )

    @classmethod
    def parse(cls, text: str) -> MeterKey:
        """32 hex digits (spaces, dashes, colons and 0x allowed) or a 16-character text."""
        stripped = text.strip()
        compact = stripped.translate(_SEPARATORS)
        if compact[:2].lower() == "0x":
            compact = compact[2:]
        if len(compact) == 2 * KEY_LENGTH and _HEX_DIGITS.issuperset(compact):
            return cls.from_bytes(bytes.fromhex(compact))
        if len(stripped) == KEY_LENGTH and all(c in _PRINTABLE for c in stripped):
            key = stripped.encode("ascii")
            return cls(
                (
                    KeyCandidate(key, KeyVariant.TEXT),
                    KeyCandidate(key[::-1], KeyVariant.TEXT_REVERSED),
                ),
                fingerprint(key),
            )
        if len(compact) == 2 * KEY_LENGTH:
            raise KeyFormatError(
                "A key of 32 characters must be hexadecimal digits (0-9, A-F); the value given "
                "holds other characters."
            )
        if not all(c in string.hexdigits for c in compact):
            raise KeyFormatError(
                "A key is 32 hexadecimal digits (0-9, A-F) or a 16-character text; the value "
                f"given holds characters other than hexadecimal digits, and {len(compact)} "
                "characters after removing spaces and dashes."
            )
        raise KeyFormatError(
            "A key is 32 hexadecimal digits (0-9, A-F) or a 16-character text; the value given "
            f"has {len(compact)} characters after removing spaces and dashes."
        )


def iv_for(address: Address, access_number: int, manufacturer: int | None = None) -> bytes:
    """IV of security mode 5: M, A (ID, version, type), then the access number 8 times."""
    return address.iv_prefix(manufacturer) + bytes((access_number,)) * 8


def _ivs(address: Address, access_number: int) -> list[bytes]:
    """The standard IV, then those of the manufacturer's quirks."""
    quirks = IV_MANUFACTURER_QUIRKS.get(address.manufacturer_code & 0x7FFF, ())
    return [iv_for(address, access_number)] + [
        iv_for(address, access_number, code) for code in quirks
    ]


@dataclass(frozen=True, slots=True)
class Decrypted:
    """The clear payload of the encrypted area and how it was obtained."""

    plaintext: bytes
    variant: KeyVariant | None  # None: the area arrived already in clear


def mode5_plaintexts(
    frame: bytes, address: Address, transport: TransportHeader, key: MeterKey | None
) -> Iterator[Decrypted]:
    """Every clear form of a mode-5 area whose check bytes are 2F2F, best first.

    A wrong key passes the check once in 65536, so the caller takes the first whose records
    parse. Key candidates are tried in order, each with the standard IV and the IVs of the
    maker's quirks; one AES pass per key serves every IV (only the first block depends on it).
    """
    start = transport.payload_offset
    end = transport.required_length
    if len(frame) < end:
        raise TruncatedError(
            f"The telegram announces {transport.encrypted_length} encrypted bytes but only "
            f"{max(len(frame) - start, 0)} arrived: the receiver cut it short.",
        )
    area = frame[start:end]
    in_clear = area[:2] == CHECK_BYTES
    if key is None:
        if not in_clear:
            raise NoKeyError(
                f"This telegram from meter {address.meter_id} is encrypted (AES, security "
                "mode 5) and no key was given for it."
            )
        yield Decrypted(area, None)
        return
    ivs = _ivs(address, transport.access_number or 0)
    passed = False
    for candidate in key.candidates:
        blocks = candidate.decrypt_blocks(area)
        for iv in ivs:
            if blocks[0] ^ iv[0] == CHECK_BYTES[0] and blocks[1] ^ iv[1] == CHECK_BYTES[1]:
                passed = True
                yield Decrypted(cbc_chain(blocks, iv, area), candidate.variant)
    if in_clear:
        yield Decrypted(area, None)
    elif not passed:
        tried = ", ".join(c.variant.value for c in key.candidates)
        raise DecryptionError(
            f"The key with fingerprint {key.fingerprint} does not decrypt this telegram from "
            f"meter {address.meter_id} (tried: {tried}).",
            fingerprint=key.fingerprint,
        )


def encrypt_mode5(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    """AES-CBC encryption of whole blocks (the encoder and the simulator use it)."""
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(plaintext) + encryptor.finalize()
