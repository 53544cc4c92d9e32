"""CRC-16 of EN 13757-4 (polynomial 0x3D65, init 0, not reflected, final XOR 0xFFFF)."""

from __future__ import annotations

POLYNOMIAL = 0x3D65


def _table() -> tuple[int, ...]:
    rows = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ POLYNOMIAL) if crc & 0x8000 else crc << 1
        rows.append(crc & 0xFFFF)
    return tuple(rows)


_TABLE = _table()


def crc16(data: bytes) -> int:
    """The block CRC as an integer; transmitted high byte first."""
    crc = 0
    table = _TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ byte]
    return crc ^ 0xFFFF


def crc16_bytes(data: bytes) -> bytes:
    """The block CRC as the two bytes that follow the block on air."""
    return crc16(data).to_bytes(2, "big")
