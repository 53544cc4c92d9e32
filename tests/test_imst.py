"""IMST dialects: iM871A HCI and iU891A SLIP framers, sessions, pty emulators (docs/receivers.md,
section 2)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import TypeVar

import pytest
import serial
from hypothesis import given
from hypothesis import strategies as st

from exporter.receivers.base import (
    Dialect,
    ErrorReason,
    Event,
    Frame,
    FrameError,
    Framer,
    LinkMode,
    Reply,
    SessionStep,
)
from exporter.receivers.imst import (
    Im871a,
    Im871aFramer,
    Iu891a,
    Iu891aFramer,
    crc16_x25,
    im871a_command,
    im871a_rssi_dbm,
    iu891a_command,
    slip_escape,
    slip_unescape,
)

from .conftest import run_session, vector
from .emulators.imst import ESCAPE_TEST_FRAME, SENSUS, Im871aEmulator, Iu891aEmulator
from .emulators.pty_device import PtyDevice

NOW = 1_700_000_000.0
H = bytes.fromhex

# --- iM871A (docs/receivers.md, 2) -------------------------------------------------------------
IM_PING, IM_PONG = H("A5010100"), H("A58102004CA3")
IM_INFO, IM_INFO_REPLY = H("A5010F00"), H("A581100833001301F13A000053D9")
IM_GET, IM_CONFIG_T1 = H("A5010500"), H("A5810616FF000344B32578563412010001FF07023200010000004601")
IM_SET_T1, IM_SET_C1_T1, IM_ACK = (
    H("A5010306000203300100"),
    H("A501030600020A300100"),
    H("A58104009CF7"),
)
IM_TELEGRAM = H("A5C2031844AE4C4455223368077A55000000041389E20100023B00009A51B0")
# Get-config payload: IIF1 FF, device mode 00, link mode 03, C 44, ..., IIF2 FF, ..., auto RSSI 01.
CONFIG_T1 = H("FF000344B32578563412010001FF0702320001000000")
# The real issue #13 capture, as quoted in vector C6a's notes.
C6A = vector("C6a")
ISSUE_13 = H(re.findall(r"was ([0-9A-F]+) \(SOF", C6A["notes"])[0])

# --- iU891A (docs/receivers.md, 2) -------------------------------------------------------------
IU_INFO, IU_INFO_REPLY = H("C001030424C0"), H("C00104006E78563412000000F89DC0")
IU_ADDRESS, IU_ADDRESS_REPLY = H("C00981DE4DC0"), H("C0098200B325123456780131AE71C0")
IU_GET, IU_CONFIG_T = H("C00901D6C9C0"), H("C009020002060000000000000000004970C0")
IU_SET_T, IU_ACK = H("C0090302060000000000000000003023C0"), H("C0090400B23DC0")
# The active configuration for T: link mode 2, options 0006 (RX and TX indications), then zeros.
CONFIG_T = H("0206000000000000000000")
IU_TELEGRAM = H("C009209F436D38000002E71844AE4C4455223368077A55000000041389E20100023B0000AF59C0")


def feed(framer: Framer, *chunks: bytes) -> list[Event]:
    """Feed chunks in order, then end the stream; all events."""
    events: list[Event] = []
    for chunk in chunks:
        events += framer.feed(chunk, NOW)
    return events + framer.end(NOW)


def reply_to(framer: Framer, wire: bytes) -> Reply:
    """The one reply the wire bytes hold."""
    (event,) = feed(framer, wire)
    assert isinstance(event, Reply), event
    return event


def reasons(events: list[Event]) -> list[object]:
    """Events with FrameError details dropped (they are prose), for comparisons."""
    return [e.reason if isinstance(e, FrameError) else e for e in events]


# --- CRC and RSSI -----------------------------------------------------------------------------


def test_x25_check_value_and_spec_checksums() -> None:
    assert crc16_x25(b"123456789") == 0x906E  # the catalogue check value of CRC-16/X-25
    assert crc16_x25(IM_PONG[1:-2]) == 0xA34C  # sent 4C A3
    assert crc16_x25(IM_TELEGRAM[1:-2]) == 0xB051  # sent 51 B0
    assert crc16_x25(IU_ACK[1:-3]) == 0x3DB2  # sent B2 3D


@pytest.mark.parametrize(
    ("raw", "dbm"),
    [(0x9A, -45.5), (0x39, -94.0), (45, -100.0), (229, -8.0), (230, -7.5), (255, -7.5)],
)
def test_im871a_rssi_rough_fit(raw: int, dbm: float) -> None:
    assert im871a_rssi_dbm(raw) == dbm


# --- iM871A framer ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "event"),
    [
        (IM_PONG, Reply(0x02, b"")),
        (IM_INFO_REPLY, Reply(0x10, H("33001301F13A0000"))),
        (IM_CONFIG_T1, Reply(0x06, CONFIG_T1)),
        (IM_ACK, Reply(0x04, b"")),
        (IM_TELEGRAM, Frame(SENSUS, NOW, -45.5)),  # RSSI 0x9A
        (ISSUE_13, Frame(H(C6A["frame_hex"]), NOW, -94.0)),  # timestamp 0, RSSI 0x39
    ],
    ids=["ping", "info", "config", "ack", "telegram", "issue13"],
)
def test_im871a_spec_examples(wire: bytes, event: Event) -> None:
    assert feed(Im871aFramer(), wire) == [event]
    assert feed(Im871aFramer(), *(bytes((b,)) for b in wire)) == [event]  # byte by byte


def test_im871a_garbage_before_a_frame_is_one_error() -> None:
    events = feed(Im871aFramer(), H("112233") + IM_TELEGRAM, H("445566"), H("77") + IM_ACK)
    assert reasons(events) == [
        ErrorReason.FRAMING,
        Frame(SENSUS, NOW, -45.5),
        ErrorReason.FRAMING,  # 44 55 66 77 is one run, over two reads
        Reply(0x04, b""),
    ]


def test_im871a_false_starts_resynchronise() -> None:
    # A5 1x: reserved control bit; A5 05: no endpoint 5. Both are garbage of the same run.
    error, pong = feed(Im871aFramer(), H("A5 11 A5 05 00") + IM_PONG)
    assert isinstance(error, FrameError)
    assert error.reason is ErrorReason.FRAMING
    assert "reserved control bit" in error.detail
    assert pong == Reply(0x02, b"")


def test_im871a_bad_fcs_then_good_frame_survives() -> None:
    bad = IM_TELEGRAM[:-1] + b"\x00"
    assert reasons(feed(Im871aFramer(), bad + IM_TELEGRAM)) == [
        ErrorReason.CHECKSUM,
        Frame(SENSUS, NOW, -45.5),
    ]


def test_im871a_false_start_with_a_long_length_does_not_swallow_the_next_frame() -> None:
    # A5 C2 03 FF announces 262 bytes and swallows the real telegram; its FCS fails, and
    # scanning resumes right after its A5, where the real telegram is found.
    events = feed(Im871aFramer(), H("A5C203FF") + IM_TELEGRAM + bytes(300))
    assert reasons(events) == [
        ErrorReason.CHECKSUM,
        Frame(SENSUS, NOW, -45.5),
        ErrorReason.FRAMING,  # the zeros after it
    ]


def test_im871a_reply_and_telegram_interleaved() -> None:
    events = feed(
        Im871aFramer(), IM_ACK[:3], IM_ACK[3:] + IM_TELEGRAM[:9], IM_TELEGRAM[9:] + IM_CONFIG_T1
    )
    assert events == [Reply(0x04, b""), Frame(SENSUS, NOW, -45.5), Reply(0x06, CONFIG_T1)]


def test_im871a_short_telegram_other_endpoints_and_partial_end() -> None:
    framer = Im871aFramer()
    # endpoint 2 message 03 with 8 payload bytes: L + 8 = 9 bytes, one short of a header
    short = H("A502030844AE4C4455223368")
    # endpoint 3 (radio-link test), a valid frame that is not for us
    test_endpoint = H("A50301020102")
    events = framer.feed(short + test_endpoint + IM_TELEGRAM[:5], NOW)
    assert reasons(events) == [ErrorReason.TOO_SHORT]
    assert reasons(framer.end(NOW)) == [ErrorReason.FRAMING]  # 5 bytes into a frame
    assert framer.feed(IM_PONG, NOW) == [Reply(0x02, b"")]  # nothing stale after end()


def test_im871a_frames_without_fcs_or_rssi() -> None:
    # control 0: no trailers; the canonical frame is rebuilt, no RSSI
    assert feed(Im871aFramer(), H("A5020318") + SENSUS[1:]) == [Frame(SENSUS, NOW, None)]


@st.composite
def hci_frames(draw: st.DrawFn) -> tuple[bytes, Event]:
    """A valid stick-to-host HCI frame with random trailers, and the event it must give."""
    control = draw(st.sampled_from([0x0, 0x2, 0x4, 0x6, 0x8, 0xA, 0xC, 0xE]))
    if draw(st.booleans()):
        endpoint, message = 2, 0x03
        payload = draw(st.binary(min_size=9, max_size=255))
    else:
        endpoint, message = 1, draw(st.integers(0, 255))
        payload = draw(st.binary(max_size=255))
    timestamp = draw(st.binary(min_size=4, max_size=4)) if control & 0x2 else b""
    rssi = draw(st.integers(0, 255)) if control & 0x4 else None
    body = bytes((control << 4 | endpoint, message, len(payload))) + payload + timestamp
    body += b"" if rssi is None else bytes((rssi,))
    wire = b"\xa5" + body + (crc16_x25(body).to_bytes(2, "little") if control & 0x8 else b"")
    if endpoint == 1:
        return wire, Reply(message, payload)
    dbm = None if rssi is None else im871a_rssi_dbm(rssi)
    return wire, Frame(bytes((len(payload),)) + payload, NOW, dbm)


# every byte but A5: 0..254, shifted up by one from A5 on
not_a5 = st.lists(st.integers(0, 254).map(lambda b: b + (b >= 0xA5)), max_size=20).map(bytes)


@given(st.lists(st.tuples(not_a5, hci_frames()), max_size=6), not_a5)
def test_im871a_frames_between_garbage_decode_exactly(
    items: list[tuple[bytes, tuple[bytes, Event]]], tail: bytes
) -> None:
    stream = b"".join(garbage + wire for garbage, (wire, _) in items) + tail
    expected: list[object] = []
    for garbage, (_, event) in items:
        expected += [ErrorReason.FRAMING] * bool(garbage) + [event]
    expected += [ErrorReason.FRAMING] * bool(tail)
    assert reasons(feed(Im871aFramer(), stream)) == expected


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@given(
    st.lists(st.tuples(st.binary(max_size=12), hci_frames()), max_size=5),
    st.lists(st.integers(0, 10_000), max_size=30),
)
def test_im871a_any_split_gives_the_same_events(
    items: list[tuple[bytes, tuple[bytes, Event]]], cuts: list[int]
) -> None:
    stream = b"".join(garbage + wire for garbage, (wire, _) in items)
    assert feed(Im871aFramer(), *split(stream, cuts)) == feed(Im871aFramer(), stream)


@given(st.binary(max_size=3000), st.lists(st.integers(0, 10_000), max_size=10))
def test_random_bytes_never_raise(data: bytes, cuts: list[int]) -> None:
    for framer in (Im871aFramer(), Iu891aFramer()):
        events = feed(framer, *split(data, cuts))
        assert all(isinstance(e, Frame | FrameError | Reply) for e in events)


# --- iU891A framer ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "event"),
    [
        (IU_INFO_REPLY, Reply(0x0104, H("006E78563412000000"))),  # status 0, module 6E, UID
        (IU_ADDRESS_REPLY, Reply(0x0982, H("00B325123456780131"))),
        (IU_CONFIG_T, Reply(0x0902, H("00") + CONFIG_T)),  # status 0, link mode 2 (T)
        (IU_ACK, Reply(0x0904, H("00"))),
        (IU_TELEGRAM, Frame(SENSUS, NOW, -25.0)),  # RSSI E7 = -25 dBm
    ],
    ids=["info", "address", "config", "ack", "telegram"],
)
def test_iu891a_spec_examples(wire: bytes, event: Event) -> None:
    assert feed(Iu891aFramer(), wire) == [event]
    assert feed(Iu891aFramer(), *(bytes((b,)) for b in wire)) == [event]


def test_iu891a_wake_up_runs_are_silent_and_bytes_outside_frames_are_framing() -> None:
    events = feed(Iu891aFramer(), H("1122") + b"\xc0" * 30 + IU_ACK + b"\xc0" * 5 + IU_TELEGRAM)
    assert reasons(events) == [
        ErrorReason.FRAMING,
        Reply(0x0904, H("00")),
        Frame(SENSUS, NOW, -25.0),
    ]


def test_iu891a_escaped_telegram() -> None:
    # 09 20, header, RSSI C0 (-64 dBm), frame with C0 DB inside: four bytes to escape
    content = H("09209F436D38000002C0") + ESCAPE_TEST_FRAME
    wire = b"\xc0" + slip_escape(content + crc16_x25(content).to_bytes(2, "little")) + b"\xc0"
    assert wire.startswith(H("C009209F436D38000002DBDC1844AE4CDBDCDBDD2233"))
    assert feed(Iu891aFramer(), wire) == [Frame(ESCAPE_TEST_FRAME, NOW, -64.0)]


def test_iu891a_bad_escape_bad_crc_short_and_overlong() -> None:
    bad_crc = IU_ACK[:-2] + b"\x00\xc0"
    bad_escape = H("C00904DB01B23DC0")
    short = H("C00904C0")
    short_telegram = iu891a_command(0x09, 0x20, H("9F436D38000002E7") + SENSUS[:9])
    overlong = b"\xc0" + bytes(1000)
    events = feed(Iu891aFramer(), bad_crc, bad_escape, short, short_telegram, overlong, IU_ACK)
    assert reasons(events) == [
        ErrorReason.CHECKSUM,
        ErrorReason.FRAMING,
        ErrorReason.FRAMING,
        ErrorReason.TOO_SHORT,
        ErrorReason.FRAMING,  # once, however long the run
        Reply(0x0904, H("00")),
    ]


def test_iu891a_partial_frame_at_the_end_is_reported_once() -> None:
    framer = Iu891aFramer()
    assert framer.feed(IU_ACK[:-1], NOW) == []
    assert reasons(framer.end(NOW)) == [ErrorReason.FRAMING]
    assert framer.feed(IU_ACK, NOW) == [Reply(0x0904, H("00"))]


@st.composite
def slip_frames(draw: st.DrawFn) -> tuple[bytes, Event]:
    """A valid stick-to-host SLIP frame (any reply, or a telegram) and the event it must give."""
    if draw(st.booleans()):
        header = draw(st.binary(min_size=7, max_size=7))
        rssi = draw(st.integers(-128, 127))
        frame = draw(st.binary(min_size=10, max_size=256))
        payload = header + rssi.to_bytes(1, "big", signed=True) + frame
        return iu891a_command(0x09, 0x20, payload), Frame(frame, NOW, float(rssi))
    endpoint, message = draw(st.integers(0, 255)), draw(st.integers(0, 255))
    payload = draw(st.binary(max_size=40))
    if (endpoint, message) == (0x09, 0x20):
        endpoint = 0x01
    return iu891a_command(endpoint, message, payload), Reply(endpoint << 8 | message, payload)


@given(st.lists(st.tuples(st.integers(0, 3), slip_frames()), max_size=6))
def test_iu891a_frames_between_wake_ups_decode_exactly(
    items: list[tuple[int, tuple[bytes, Event]]],
) -> None:
    stream = b"".join(b"\xc0" * wake + wire for wake, (wire, _) in items)
    assert feed(Iu891aFramer(), stream) == [event for _, (_, event) in items]


@given(
    st.lists(st.tuples(st.binary(max_size=12), slip_frames()), max_size=5),
    st.lists(st.integers(0, 10_000), max_size=30),
)
def test_iu891a_any_split_gives_the_same_events(
    items: list[tuple[bytes, tuple[bytes, Event]]], cuts: list[int]
) -> None:
    stream = b"".join(garbage + wire for garbage, (wire, _) in items)
    assert feed(Iu891aFramer(), *split(stream, cuts)) == feed(Iu891aFramer(), stream)


# --- encoders and sessions ---------------------------------------------------------------------


def test_encoders_reproduce_the_spec_commands() -> None:
    assert im871a_command(0x01) == IM_PING
    assert im871a_command(0x0F) == IM_INFO
    assert im871a_command(0x03, H("000203300100")) == IM_SET_T1
    assert iu891a_command(0x01, 0x03) == IU_INFO
    assert iu891a_command(0x09, 0x81) == IU_ADDRESS
    assert iu891a_command(0x09, 0x01) == IU_GET
    assert iu891a_command(0x09, 0x03, CONFIG_T) == IU_SET_T


def test_slip_escaping_by_hand() -> None:
    assert slip_escape(H("01C002DB03")) == H("01DBDC02DBDD03")
    assert slip_unescape(H("01DBDC02DBDD03")) == H("01C002DB03")
    assert slip_unescape(H("01DB02")) is None
    assert slip_unescape(H("01DB")) is None
    # a command whose payload needs escaping: C0 and DB never appear bare between the C0s
    command = iu891a_command(0x09, 0x03, H("C0DB"))
    assert command[:7] == H("C00903DBDCDBDD")
    assert b"\xc0" not in command[1:-1]
    content = slip_unescape(command[1:-1])
    assert content is not None
    assert content[:4] == H("0903C0DB")
    assert crc16_x25(content[:-2]).to_bytes(2, "little") == content[-2:]


def commands(steps: list[SessionStep]) -> list[bytes]:
    return [step.command for step in steps]


def test_im871a_session_commands() -> None:
    assert Im871a.name == "im871a"
    assert Im871a.baudrate == 57600
    assert commands(Im871a().session(LinkMode.T1)) == [IM_PING, IM_SET_T1, IM_GET]
    assert commands(Im871a().session(LinkMode.C1_T1)) == [IM_PING, IM_SET_C1_T1, IM_GET]


def test_im871a_steps_accept_and_judge_the_real_replies() -> None:
    ping, set_mode, get = Im871a().session(LinkMode.T1)
    pong, ack, config = (reply_to(Im871aFramer(), w) for w in (IM_PONG, IM_ACK, IM_CONFIG_T1))
    assert [ping.accepts(pong), ping.accepts(ack), ping.accepts(config)] == [True, False, False]
    assert [set_mode.accepts(pong), set_mode.accepts(ack), set_mode.accepts(config)] == [
        False,
        True,
        False,
    ]
    assert [get.accepts(pong), get.accepts(ack), get.accepts(config)] == [False, False, True]
    assert (ping.verdict(pong), set_mode.verdict(ack), get.verdict(config)) == (None, None, None)
    assert set_mode.description == "set link mode T1"


def test_im871a_verdict_on_a_wrong_or_missing_link_mode() -> None:
    get_t1 = Im871a().session(LinkMode.T1)[2]
    get_both = Im871a().session(LinkMode.C1_T1)[2]
    c1 = Reply(0x06, H("FF000744") + CONFIG_T1[4:])  # link mode byte 03 -> 07
    assert get_t1.verdict(c1) == (
        "the stick reports link mode 0x07 (C1 format B) after being set to T1 (0x03)"
    )
    assert get_both.verdict(Reply(0x06, CONFIG_T1)) == (
        "the stick reports link mode 0x03 (T1) after being set to C1+T1 (0x0A)"
    )
    # IIF1 02 alone: no device-mode byte, the link mode follows IIF1 directly
    assert get_t1.verdict(Reply(0x06, H("0203"))) is None
    assert get_t1.verdict(Reply(0x06, H("0103"))) == (
        "the stick's configuration reply holds no link mode"
    )
    assert get_t1.verdict(Reply(0x06, H("03"))) == (
        "the stick's configuration reply is cut short before the link mode"
    )
    assert get_t1.verdict(Reply(0x06, b"")) is not None


def test_iu891a_session_commands() -> None:
    assert Iu891a.name == "iu891a"
    assert Iu891a.baudrate == 115200
    wake, info, set_mode, get = Iu891a().session(LinkMode.T1)
    assert wake.command == b"\xc0" * 30
    assert wake.timeout == 0
    assert commands([info, set_mode, get]) == [IU_INFO, IU_SET_T, IU_GET]
    set_both = Iu891a().session(LinkMode.C1_T1)[2].command
    assert set_both == iu891a_command(0x09, 0x03, H("0306000000000000000000"))  # link mode 3
    assert set_both != IU_SET_T


def test_iu891a_steps_accept_and_judge_the_real_replies() -> None:
    _, info, set_mode, get = Iu891a().session(LinkMode.T1)
    replies = [reply_to(Iu891aFramer(), w) for w in (IU_INFO_REPLY, IU_ACK, IU_CONFIG_T)]
    for step, right in zip((info, set_mode, get), replies, strict=True):
        assert [step.accepts(r) for r in replies] == [r is right for r in replies]
        assert step.verdict(right) is None
    assert set_mode.verdict(Reply(0x0904, H("01"))) == (
        "the stick answered with status 0x01 (0 means OK)"
    )
    assert get.verdict(Reply(0x0902, H("0005") + CONFIG_T[1:])) == (
        "the stick reports link mode 0x05 (C) after being set to T (0x02)"
    )
    assert (
        get.verdict(Reply(0x0902, H("0202"))) == "the stick answered with status 0x02 (0 means OK)"
    )
    assert (
        get.verdict(Reply(0x0902, H("00"))) == "the stick's configuration reply holds no link mode"
    )
    both = Iu891a().session(LinkMode.C1_T1)[3]
    assert both.verdict(Reply(0x0902, H("0003"))) is None
    assert both.verdict(Reply(0x0902, H("0002"))) == (
        "the stick reports link mode 0x02 (T) after being set to C+T (0x03)"
    )


# --- emulators over a pty ---------------------------------------------------------------------

READ_WAIT = 2.0  # seconds: the longest any test waits for bytes that should come
QUIET_WAIT = 0.15  # seconds of silence that count as "no answer" (the emulators answer in ms)


Device = TypeVar("Device", bound=PtyDevice)


class Emulators:
    """The emulators one test makes, registered as they are made so that all get closed."""

    def __init__(self) -> None:
        self.made: list[PtyDevice] = []

    def __call__(self, device: Device) -> Device:
        self.made.append(device)
        return device


@pytest.fixture
def make() -> Iterator[Emulators]:
    """Register emulators for teardown: every one is closed however the test ends."""
    emulators = Emulators()
    yield emulators
    for device in emulators.made:
        device.close()


def open_port(device: PtyDevice) -> serial.Serial:
    return serial.Serial(device.path, timeout=0.05)


def read_exactly(port: serial.Serial, size: int) -> bytes:
    """Up to `size` bytes, waiting at most READ_WAIT."""
    data = b""
    deadline = time.monotonic() + READ_WAIT
    while len(data) < size and time.monotonic() < deadline:
        data += port.read(size - len(data))
    return data


def test_im871a_emulator_answers_with_the_spec_bytes(
    make: Emulators,
) -> None:
    stick = make(Im871aEmulator())
    with open_port(stick) as port:
        for command, reply in [
            (IM_PING, IM_PONG),
            (IM_INFO, IM_INFO_REPLY),
            (IM_SET_T1, IM_ACK),
            (IM_GET, IM_CONFIG_T1),
        ]:
            port.write(command)
            assert read_exactly(port, len(reply)) == reply
        assert stick.mode is LinkMode.T1
        assert stick.telegram(SENSUS)
        assert read_exactly(port, len(IM_TELEGRAM)) == IM_TELEGRAM
        assert stick.telegram(H(C6A["frame_hex"]), 0x39, timestamp=0)
        assert read_exactly(port, len(ISSUE_13)) == ISSUE_13
    assert stick.commands == [IM_PING, IM_INFO, IM_SET_T1, IM_GET]


def test_im871a_session_against_the_emulator(make: Emulators) -> None:
    stick = make(Im871aEmulator())
    framer = Im871a().framer()
    with open_port(stick) as port:
        assert stick.telegram(SENSUS) is False  # no mode yet: the stick hears nothing
        assert port.read(100) == b""
        events, verdicts = run_session(port, framer, Im871a().session(LinkMode.T1))
        assert verdicts == [None, None, None]
        assert events == [Reply(0x02, b""), Reply(0x04, b""), Reply(0x06, CONFIG_T1)]
        assert stick.mode is LinkMode.T1
        stick.telegram(SENSUS, 0x9A, byte_by_byte=True, garbage_before=H("112233"))
        stick.telegram(SENSUS, 0x40, corrupt_fcs=True)
        stick.telegram(SENSUS, 0xF0)
        seen: list[Event] = []
        deadline = time.monotonic() + READ_WAIT
        while len(seen) < 4 and time.monotonic() < deadline:
            seen += framer.feed(port.read(512), NOW)
    assert reasons(seen) == [
        ErrorReason.FRAMING,
        Frame(SENSUS, NOW, -45.5),
        ErrorReason.CHECKSUM,
        Frame(SENSUS, NOW, -7.5),  # raw 0xF0 >= 230: the top of the fit
    ]


def test_a_replugged_im871a_forgot_its_mode(make: Emulators) -> None:
    first = make(Im871aEmulator())
    with open_port(first) as port:
        _, verdicts = run_session(port, Im871aFramer(), Im871a().session(LinkMode.T1))
    assert verdicts == [None, None, None]
    first.unplug()
    second = make(Im871aEmulator(nvm_link_mode=0x07))
    assert second.mode is None
    assert second.telegram(SENSUS) is False
    with open_port(second) as port:
        get = Im871a().session(LinkMode.T1)[2]
        _, verdicts = run_session(port, Im871aFramer(), [get])
    assert verdicts == [
        "the stick reports link mode 0x07 (C1 format B) after being set to T1 (0x03)"
    ]


def test_im871a_firmware_13_is_silent_on_c1_t1(make: Emulators) -> None:
    old = make(Im871aEmulator(firmware=0x13))
    new = make(Im871aEmulator(firmware=0x15))
    session = Im871a().session(LinkMode.C1_T1)
    with open_port(old) as port:
        _, verdicts = run_session(port, Im871aFramer(), session[:2], wait=QUIET_WAIT)
    assert verdicts == [None, "no reply"]
    assert old.mode is None
    with open_port(new) as port:
        _, verdicts = run_session(port, Im871aFramer(), session)
        port.write(IM_INFO)
        info = read_exactly(port, len(IM_INFO_REPLY))
    assert verdicts == [None, None, None]
    assert new.mode is LinkMode.C1_T1
    assert feed(Im871aFramer(), info) == [Reply(0x10, H("33001501F13A0000"))]  # FCS recomputed


def test_silent_sticks_never_answer(make: Emulators) -> None:
    sticks: tuple[tuple[PtyDevice, Dialect], ...] = (
        (make(Im871aEmulator(silent=True)), Im871a()),
        (make(Iu891aEmulator(silent=True)), Iu891a()),
    )
    for stick, dialect in sticks:
        with open_port(stick) as port:
            steps = dialect.session(LinkMode.T1)
            events, verdicts = run_session(port, dialect.framer(), steps, wait=QUIET_WAIT)
        assert events == []
        assert set(verdicts) == {"no reply"}
        assert stick.commands == [s.command for s in steps if s.timeout]  # heard, not answered


def test_telegram_between_command_and_ack(make: Emulators) -> None:
    sticks: tuple[tuple[PtyDevice, Dialect, Frame], ...] = (
        (make(Im871aEmulator(telegram_before_ack=SENSUS)), Im871a(), Frame(SENSUS, NOW, -45.5)),
        (make(Iu891aEmulator(telegram_before_ack=SENSUS)), Iu891a(), Frame(SENSUS, NOW, -25.0)),
    )
    for stick, dialect, frame in sticks:
        with open_port(stick) as port:
            steps = dialect.session(LinkMode.T1)
            events, verdicts = run_session(port, dialect.framer(), steps, clock=lambda: NOW)
        assert set(verdicts) == {None}
        frames = [e for e in events if isinstance(e, Frame)]
        # one before the set acknowledgement (the mode is set by then) and one before the read-back
        assert frames == [frame, frame]
        assert isinstance(events[-1], Reply)


def test_iu891a_emulator_answers_with_the_spec_bytes(
    make: Emulators,
) -> None:
    stick = make(Iu891aEmulator())
    with open_port(stick) as port:
        port.write(b"\xc0" * 30)  # the wake-up: accepted silently
        assert port.read(10) == b""
        assert stick.telegram(SENSUS) is False
        for command, reply in [
            (IU_INFO, IU_INFO_REPLY),
            (IU_ADDRESS, IU_ADDRESS_REPLY),
            (IU_SET_T, IU_ACK),
            (IU_GET, IU_CONFIG_T),
        ]:
            port.write(command)
            assert read_exactly(port, len(reply)) == reply
        assert stick.mode is LinkMode.T1
        assert stick.telegram(SENSUS)
        assert read_exactly(port, len(IU_TELEGRAM)) == IU_TELEGRAM
    assert stick.commands == [IU_INFO, IU_ADDRESS, IU_SET_T, IU_GET]


def test_iu891a_session_and_escaped_telegrams(make: Emulators) -> None:
    stick = make(Iu891aEmulator())
    framer = Iu891a().framer()
    with open_port(stick) as port:
        events, verdicts = run_session(port, framer, Iu891a().session(LinkMode.T1))
        assert verdicts == [None, None, None]
        assert events == [
            Reply(0x0104, H("006E78563412000000")),
            Reply(0x0904, H("00")),
            Reply(0x0902, H("00") + CONFIG_T),
        ]
        # RSSI C0 = -64 dBm, then a stray DB between frames, a bad CRC, RSSI DB = -37 dBm
        assert stick.telegram(ESCAPE_TEST_FRAME, 0xC0, byte_by_byte=True)
        assert stick.telegram(SENSUS, garbage_before=H("DB"), corrupt_fcs=True)
        assert stick.telegram(ESCAPE_TEST_FRAME, 0xDB)
        wire = b""
        deadline = time.monotonic() + READ_WAIT
        while wire.count(0xC0) < 6 and time.monotonic() < deadline:
            wire += port.read(512)
    assert wire.startswith(H("C009209F436D38000002DBDC1844AE4CDBDCDBDD2233"))
    assert reasons(framer.feed(wire, NOW)) == [
        Frame(ESCAPE_TEST_FRAME, NOW, -64.0),
        ErrorReason.FRAMING,  # the lone DB between two C0s is a bad escape
        ErrorReason.CHECKSUM,
        Frame(ESCAPE_TEST_FRAME, NOW, -37.0),
    ]
