"""Text line formats: plain hex, rtl_wmbus, telegram=|..|, rtl_433 JSON (docs/receivers.md, 6)."""

from __future__ import annotations

import json

from exporter.receivers.lines import LineFormat, LineFrame, LineProblem, parse_line

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
