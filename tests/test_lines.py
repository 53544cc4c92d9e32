"""Text line formats: plain hex, rtl_wmbus, telegram=|..|, rtl_433 JSON, JSON objects that carry
the frame, and binary frames (docs/receivers.md, 6)."""

from __future__ import annotations

import json

from exporter.receivers.base import ErrorReason, Frame, FrameError
from exporter.receivers.lines import (
    LONGEST_FRAME,
    LineFormat,
    LineFrame,
    LineFramer,
    LineProblem,
    is_text,
    parse_line,
)
from exporter.wmbus.frame import add_format_a_crcs

SENSUS = "1844AE4C4455223368077A55000000041389E20100023B0000"
FRAME = bytes.fromhex(SENSUS)


def only_frame(line: str) -> LineFrame:
    items = parse_line(line)
    assert len(items) == 1
    item = items[0]
    assert isinstance(item, LineFrame), item
    return item


def only_problem(line: str) -> LineProblem:
    items = parse_line(line)
    assert len(items) == 1
    item = items[0]
    assert isinstance(item, LineProblem), item
    return item


def test_plain_hex_with_separators_and_prefix() -> None:
    for line in (SENSUS, SENSUS.lower(), "0x" + SENSUS, "18 44 AE 4C " + SENSUS[8:] + "\r\n"):
        item = only_frame(line)
        assert item.frame == FRAME
        assert item.line_format is LineFormat.HEX
        assert item.rssi_dbm is None


def test_rtl_wmbus_line_keeps_frame_and_drops_unitless_rssi() -> None:
    item = only_frame(f"T1;1;1;2024-05-14 12:36:09.123456;97;148;33225544;0x{SENSUS.lower()}\n")
    assert item.frame == FRAME
    assert item.line_format is LineFormat.RTL_WMBUS
    assert item.rssi_dbm is None  # rtl_wmbus magnitudes are not dBm


def test_esphome_rtlwmbus_line_has_dbm() -> None:
    item = only_frame(f"T1;1;1;2026-01-01 10:00:00.00Z;-71;;;0x{SENSUS}")
    assert item.frame == FRAME
    assert item.rssi_dbm == -71.0


def test_rtl_wmbus_failed_checks_are_dropped_as_crc() -> None:
    for flags in ("0;0", "1;0", "0;1"):
        problem = only_problem(f"T1;{flags};2024-05-14 12:36:09;97;148;33225544;0x{SENSUS}")
        assert problem.code == "crc"
        assert "rtl_wmbus" in problem.message


def test_rtl_wmbus_line_with_two_frames() -> None:
    items = parse_line(f"C1;1;1;2024-05-14 12:36:09;97;148;33225544;0x{SENSUS};0x{SENSUS}")
    assert [i.frame for i in items if isinstance(i, LineFrame)] == [FRAME, FRAME]


def test_telegram_log_line_with_separators_and_replay_offset() -> None:
    for line in (
        f"telegram=|{SENSUS}|",
        f"telegram=|{SENSUS[:20]}|{SENSUS[20:]}|+12",
        f"telegram=|{SENSUS[:20]}_{SENSUS[20:]}| +3.5",
    ):
        item = only_frame(line)
        assert item.frame == FRAME
        assert item.line_format is LineFormat.TELEGRAM_LOG


def test_rtl_433_json() -> None:
    event = {"model": "Wireless-MBus", "mode": "T", "id": 33225544, "data": SENSUS.lower()}
    item = only_frame(json.dumps(event))
    assert item.frame == FRAME
    assert item.line_format is LineFormat.RTL_433_JSON


def test_rtl_433_other_model_and_broken_json_are_explained() -> None:
    assert "Acurite" in only_problem('{"model": "Acurite-Tower", "id": 1}').message
    assert "not valid JSON" in only_problem('{"model": "Wireless-MBus", "data": ').message
    assert only_problem("[1, 2]").code == "malformed"
    assert only_problem('{"model": "Wireless-MBus", "data": 5}').code == "malformed"


def test_blank_and_comment_lines_hold_nothing() -> None:
    assert parse_line("") == []
    assert parse_line("   \n") == []
    assert parse_line("# telegrams captured 2024-05-14") == []


def test_non_telegrams() -> None:
    assert only_problem("hello").code == "malformed"
    assert "odd number" in only_problem(SENSUS[:-1]).message
    assert (
        "rtl_wmbus"
        in only_problem("rtl_wmbus: exiting since incoming data stopped flowing!").message
    )
    assert only_problem("telegram=||").code == "malformed"
    assert only_problem("T1;1;1;2024-05-14;97;148;33225544").code == "malformed"
    assert only_problem("0x").code == "malformed"


def test_json_objects_that_carry_the_frame() -> None:
    """ESPHome `version_4`'s raw JSON, and any object with the frame under frame, telegram,
    data, raw or hex, its signal under rssi_dbm or rssi, its mode as a letter or a name."""
    version_4 = f'{{"address": "33225544", "mode": "T", "rssi": -71, "frame": "{SENSUS}"}}'
    item = only_frame(version_4)
    assert (item.frame, item.rssi_dbm, item.link_mode) == (FRAME, -71.0, "T1")
    assert item.line_format is LineFormat.JSON
    for key in ("frame", "telegram", "data", "raw", "hex"):
        assert only_frame(json.dumps({key: SENSUS.lower()})).frame == FRAME
    both = only_frame(json.dumps({"rssi": -90, "rssi_dbm": -60.5, "hex": SENSUS, "mode": "C1"}))
    assert (both.rssi_dbm, both.link_mode) == (-60.5, "C1")
    odd = only_frame(json.dumps({"frame": SENSUS, "rssi": True, "mode": "x"}))
    assert (odd.rssi_dbm, odd.link_mode) == (None, None)  # a flag is no signal
    assert only_frame(json.dumps({"data": 5, "raw": SENSUS})).frame == FRAME  # the hex one


def test_json_objects_without_a_frame_are_explained() -> None:
    problem = only_problem('{"rssi": -70, "address": "33225544"}')
    assert problem.code == "malformed"
    assert "'frame', 'telegram', 'data', 'raw', 'hex'" in problem.message
    assert only_problem('{"frame": "hello"}').code == "malformed"


def framed(*chunks: bytes) -> list[object]:
    """What the line framer makes of one stream, split as given, that then ends."""
    framer = LineFramer()
    events = [event for chunk in chunks for event in framer.feed(chunk, 1.0)]
    return [*events, *framer.end(1.0)]


def test_a_stream_of_binary_bytes_is_one_frame_when_l_fits() -> None:
    """ESPHome `version_4`'s `format: hex` sends the frame's bytes, CRCs off; others send the
    on-air frame with format A's CRCs. A newline byte inside does not split it."""
    with_crcs = add_format_a_crcs(FRAME)
    for stream in ([FRAME], [FRAME[:3], FRAME[3:]], [with_crcs], [with_crcs[:1], with_crcs[1:]]):
        (event,) = framed(*stream)
        assert isinstance(event, Frame), event
        assert event.data == b"".join(stream)
    newline_inside = bytes([0x0E, 0x44, 0x0A]) + FRAME[3:15]
    (event,) = framed(newline_inside)
    assert isinstance(event, Frame) and event.data == newline_inside


def test_binary_bytes_that_are_no_frame_are_one_error() -> None:
    for data, reason, words in (
        (FRAME[:-1], ErrorReason.FRAMING, "L = 24) announces 25 bytes, or 29 with block CRCs"),
        (FRAME * 20, ErrorReason.FRAMING, f"over {LONGEST_FRAME} bytes of binary data"),
    ):
        (event,) = framed(data)
        assert isinstance(event, FrameError) and event.reason is reason, event
        assert words in event.detail


def test_text_streams_stay_lines() -> None:
    """A stream whose first line is text is read line by line, whatever follows."""
    events = framed(f"{SENSUS}\n{SENSUS.lower()}".encode(), b"\n\x00\x01\n")
    assert [type(e) for e in events] == [Frame, Frame, FrameError]
    assert framed(b"") == [] and framed(b"  \n") == []
    (event,) = framed(f"T1;1;1;2026-01-01 10:00:00.00Z;-71;;;0x{SENSUS.lower()}\n".encode())
    assert isinstance(event, Frame) and event.rssi_dbm == -71.0
    assert is_text("zażółć\tgęślą\r\n".encode()) and not is_text(b"\xff\xfe")
