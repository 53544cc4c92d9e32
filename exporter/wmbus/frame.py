"""Frame normalisation: whatever a receiver handed over, to the canonical CRC-free frame.

The canonical frame starts with L, holds no block CRCs and has ``L == len(frame) - 1``
(docs/wmbus-frames.md, sections 2 and 3). Undone here: format A and format B block CRCs (verified),
the old rtl_433 output (L minus 2 plus the last block's CRC), and bytes beyond L+1.
"""

from __future__ import annotations

from .crc import crc16_bytes
from .errors import CRCError, MalformedError, TruncatedError, WMBusError
from .link import LINK_HEADER_LENGTH
from .transport import BLOCK_SIZE, announced_length

MAX_FRAME_LENGTH = 256  # L is one byte
_CRC_SIZE = 2
_FORMAT_B_FIRST_CRC_AT = 126  # format B: block 1 + block 2 hold at most 126 bytes before CRC


def format_a_length(length_field: int) -> int:
    """On-air size of a format-A frame with its CRCs, for a given L."""
    data = length_field + 1
    blocks = 1 + -(-(data - LINK_HEADER_LENGTH) // BLOCK_SIZE)
    return data + _CRC_SIZE * blocks


def _format_a_blocks(data_length: int) -> list[tuple[int, int]]:
    """(start, end) of each format-A block within the CRC-free frame."""
    blocks = [(0, LINK_HEADER_LENGTH)]
    start = LINK_HEADER_LENGTH
    while start < data_length:
        end = min(start + BLOCK_SIZE, data_length)
        blocks.append((start, end))
        start = end
    return blocks


def strip_format_a(raw: bytes, *, check: bool = True) -> bytes:
    """Remove the CRCs of a format-A frame (L excludes CRCs); optionally verify each one."""
    data_length = raw[0] + 1
    out = bytearray()
    pos = 0
    for number, (start, end) in enumerate(_format_a_blocks(data_length), start=1):
        size = end - start
        block = raw[pos : pos + size]
        crc = raw[pos + size : pos + size + _CRC_SIZE]
        if len(block) < size or len(crc) < _CRC_SIZE:
            if not check:
                return bytes(out + block)
            raise TruncatedError(
                f"The frame ends inside block {number}: L announces {data_length} bytes "
                f"plus CRCs ({format_a_length(raw[0])} bytes on air) but only {len(raw)} "
                "arrived. The receiver cut the frame short."
            )
        if check and crc16_bytes(block) != crc:
            raise CRCError(
                f"The CRC of block {number} (bytes {start}-{end - 1}) does not match: the "
                "frame was damaged on the way.",
            )
        out += block
        pos += size + _CRC_SIZE
    return bytes(out)


def _strip_format_b(raw: bytes, required: int | None) -> bytes | None:
    """The frame without its format-B CRCs, or None if they do not match.

    A CRC-free frame matches by chance once in 65536, so the result must also hold the
    encrypted area its header announces.
    """
    try:
        stripped = strip_format_b(raw)
    except WMBusError:
        return None
    if required is not None and len(stripped) < required:
        return None
    return stripped


def strip_format_b(raw: bytes) -> bytes:
    """The canonical frame of a format-B frame (L counts the CRCs); raises CRCError or
    TruncatedError. Bytes beyond L + 1 are ignored."""
    total = raw[0] + 1
    if len(raw) < total or total < LINK_HEADER_LENGTH + 1 + _CRC_SIZE:
        raise TruncatedError(
            f"A format-B frame with L = {raw[0]} needs {max(total, LINK_HEADER_LENGTH + 3)} "
            f"bytes, but {len(raw)} arrived."
        )
    if total <= _FORMAT_B_FIRST_CRC_AT + _CRC_SIZE:
        blocks = [(0, total - _CRC_SIZE)]
    else:
        blocks = [
            (0, _FORMAT_B_FIRST_CRC_AT),
            (_FORMAT_B_FIRST_CRC_AT + _CRC_SIZE, total - _CRC_SIZE),
        ]
    out = bytearray()
    for number, (start, end) in enumerate(blocks, start=1):
        if end <= start or crc16_bytes(raw[start:end]) != raw[end : end + _CRC_SIZE]:
            raise CRCError(
                f"The CRC of format-B block {number} does not match: the frame was damaged "
                "on the way.",
            )
        out += raw[start:end]
    out[0] = len(out) - 1
    return bytes(out)


def _last_block_start(length: int) -> int:
    return LINK_HEADER_LENGTH + BLOCK_SIZE * ((length - LINK_HEADER_LENGTH - 1) // BLOCK_SIZE)


def _has_rtl433_trailer(frame: bytes, required: int | None) -> bool:
    """Old rtl_433 builds append the CRC of the last format-A block (docs/wmbus-frames.md, 3)."""
    body_length = len(frame) - _CRC_SIZE
    if body_length <= LINK_HEADER_LENGTH:
        return False
    if required is None:
        # Without an encrypted area to anchor on, only the raw rtl_433 form (L printed as
        # the real L minus 2) is recognised, so plain data is never cut by chance.
        if len(frame) != frame[0] + 3:
            return False
    elif body_length < required:
        return False
    start = _last_block_start(body_length)
    return crc16_bytes(frame[start:body_length]) == frame[body_length:]


def _undo_receiver_quirks(frame: bytes, required: int | None) -> bytes:
    """Trailer and extra bytes of a frame whose CRCs are already gone."""
    if _has_rtl433_trailer(frame, required):
        frame = frame[:-_CRC_SIZE]
    declared = frame[0] + 1
    if required is not None and len(frame) > declared >= required:
        frame = frame[:declared]
    if len(frame) > MAX_FRAME_LENGTH:
        raise MalformedError(
            f"The frame is {len(frame)} bytes long; a wM-Bus frame holds at most "
            f"{MAX_FRAME_LENGTH}. This is not one telegram (two glued together?)."
        )
    return frame


def _has_first_block_crc(raw: bytes) -> bool:
    return crc16_bytes(raw[:LINK_HEADER_LENGTH]) == raw[LINK_HEADER_LENGTH : LINK_HEADER_LENGTH + 2]


#: How far beyond L+1 a CRC-free frame may run (an old rtl_433 trailer, a stray byte).
_QUIRK_BYTES = 3


def normalise(raw: bytes) -> bytes:
    """The canonical frame: CRCs checked and removed, receiver quirks undone, L rewritten."""
    if len(raw) < LINK_HEADER_LENGTH + 1:
        raise TruncatedError(
            f"Only {len(raw)} bytes arrived; a wM-Bus telegram has at least "
            f"{LINK_HEADER_LENGTH + 1} (header and CI). This is not a whole telegram."
        )
    required = announced_length(raw)
    declared = raw[0] + 1
    if len(raw) == declared == required:
        return raw  # already canonical: the common case, kept cheap
    if _has_first_block_crc(raw):
        try:
            frame = strip_format_a(raw)
        except WMBusError:
            # Bytes 10-11 (CI, access number) match the first block's CRC by chance once in
            # 65536: the frame may still be format B, or free of CRCs.
            stripped = _strip_format_b(raw, required)
            if stripped is not None:
                frame = stripped
            elif required is not None and required <= len(raw) <= declared + _QUIRK_BYTES:
                frame = _undo_receiver_quirks(raw, required)
            else:
                raise
    else:
        stripped = _strip_format_b(raw, required)
        frame = stripped if stripped is not None else _undo_receiver_quirks(raw, required)
    if frame[0] != len(frame) - 1:
        frame = bytes((len(frame) - 1,)) + frame[1:]
    return frame


def best_effort_strip(raw: bytes) -> bytes:
    """CRC positions removed without checking: only to name the meter in an error report."""
    if len(raw) > LINK_HEADER_LENGTH + 1 and _has_first_block_crc(raw):
        return strip_format_a(raw, check=False)
    return raw


def add_format_a_crcs(frame: bytes) -> bytes:
    """The on-air format-A form of a canonical frame (L unchanged: it excludes CRCs)."""
    out = bytearray()
    for start, end in _format_a_blocks(len(frame)):
        block = frame[start:end]
        out += block + crc16_bytes(block)
    return bytes(out)


def add_format_b_crcs(frame: bytes) -> bytes:
    """The on-air format-B form of a canonical frame (L rewritten to count the CRCs)."""
    extra = _CRC_SIZE if len(frame) <= _FORMAT_B_FIRST_CRC_AT else 2 * _CRC_SIZE
    body = bytes((len(frame) - 1 + extra,)) + frame[1:]
    if extra == _CRC_SIZE:
        return body + crc16_bytes(body)
    first, second = body[:_FORMAT_B_FIRST_CRC_AT], body[_FORMAT_B_FIRST_CRC_AT:]
    return first + crc16_bytes(first) + second + crc16_bytes(second)
