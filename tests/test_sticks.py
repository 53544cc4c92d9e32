"""Amber, CUL and Radiocrafts dialects: framers, sessions and emulated sticks (docs/receivers.md,
sections 3-5). Expected values are the documented examples, worked out by hand."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import serial
from hypothesis import given
from hypothesis import strategies as st

from exporter.receivers.amber import (
    GET_NVM,
    Amber,
    AmberFramer,
    NvmSettings,
    command,
    nvm_settings,
    rssi_dbm,
)
from exporter.receivers.base import (
    ErrorReason,
    Event,
    Frame,
    FrameError,
    Framer,
    LinkMode,
    Reply,
    SessionStep,
)
from exporter.receivers.cul import Cul, CulFramer
from exporter.receivers.rc1180 import Rc1180, Rc1180Framer
from exporter.receivers.rc1180 import rssi_dbm as rc1180_rssi_dbm
from exporter.wmbus.encoder import to_air
from exporter.wmbus.frame import format_a_length

from .conftest import run_session, vector
from .emulators.pty_device import PtyDevice
from .emulators.sticks import AmberEmulator, CulEmulator, Rc1180Emulator

NOW = 1000.0
# The Sensus frame of docs/receivers.md, introduction.
SENSUS = bytes.fromhex("1844AE4C4455223368077A55000000041389E20100023B0000")
AMBER_TRANSPARENT = bytes.fromhex("1944AE4C4455223368077A55000000041389E20100023B0000C8")
AMBER_COMMAND = bytes.fromhex("FF031944AE4C4455223368077A55000000041389E20100023B0000C88F")
CUL_LINE = b"b1844AE4C4455223368075F787A55000000041389E20100023B0000D0C62ED0\r\n"
RC1180_TELEGRAM = bytes.fromhex("1944AE4C4455223368077A55000000041389E20100023B00008C")
B2 = bytes.fromhex(vector("B2")["frame_hex"])  # L = 0xBE: 191 bytes, 217 on air in format A


def frames(events: list[Event]) -> list[bytes]:
    return [event.data for event in events if isinstance(event, Frame)]


def reasons(events: list[Event]) -> list[ErrorReason]:
    return [event.reason for event in events if isinstance(event, FrameError)]


def only_error(events: list[Event]) -> FrameError:
    assert len(events) == 1, events
    assert isinstance(events[0], FrameError), events
    return events[0]


def feed_pieces(framer: Framer, data: bytes, cuts: list[int], now: float = NOW) -> list[Event]:
    """Feed `data` cut at the given positions, all at the same time."""
    events: list[Event] = []
    start = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        events += framer.feed(data[start:cut], now)
        start = cut
    return events


# --- Amber: framer --------------------------------------------------------------------------------


def test_amber_spec_examples_decode_in_both_output_modes() -> None:
    for wire in (AMBER_TRANSPARENT, AMBER_COMMAND):
        assert AmberFramer().feed(wire, NOW) == [Frame(SENSUS, NOW, -102.0)]


def test_amber_rssi_is_a_signed_half_db_offset_by_74() -> None:
    assert rssi_dbm(0xC8) == -102.0  # (200 - 256) / 2 - 74
    assert rssi_dbm(0x80) == -138.0
    assert rssi_dbm(0x7F) == -10.5  # 127 / 2 - 74
    assert rssi_dbm(0x00) == -74.0


@pytest.mark.parametrize(
    ("cmd", "payload", "wire"),
    [
        (0x04, "08", "FF040108F2"),  # set mode T1
        (0x04, "09", "FF040109F3"),  # set mode C1+T1
        (0x0A, "0080", "FF0A02008077"),  # NVM parameters from 0
        (0x0B, "", "FF0B00F4"),  # serial number
        (0x05, "", "FF0500FA"),  # reset
        (0x84, "00", "FF8401007A"),  # set-mode confirmation, status 0
        (0x8B, "53005B0E", "FF8B0453005B0E76"),  # serial number reply
        (0x85, "00", "FF8501007B"),  # reset confirmation
    ],
)
def test_amber_command_encoder_reproduces_the_spec_bytes(cmd: int, payload: str, wire: str) -> None:
    assert command(cmd, bytes.fromhex(payload)) == bytes.fromhex(wire)


def test_amber_both_output_modes_and_replies_interleaved() -> None:
    stream = AMBER_COMMAND + bytes.fromhex("FF8401007A") + AMBER_TRANSPARENT
    stream += bytes.fromhex("FF8B0453005B0E76") + AMBER_COMMAND
    assert AmberFramer().feed(stream, NOW) == [
        Frame(SENSUS, NOW, -102.0),
        Reply(0x84, b"\x00"),
        Frame(SENSUS, NOW, -102.0),
        Reply(0x8B, bytes.fromhex("53005B0E")),
        Frame(SENSUS, NOW, -102.0),
    ]


def test_amber_garbage_before_a_telegram_is_one_framing_error() -> None:
    events = AmberFramer().feed(b"\x11\x22\x33" + AMBER_TRANSPARENT, NOW)
    assert reasons(events) == [ErrorReason.FRAMING]
    assert "3 bytes" in str(events[0])
    assert events[1] == Frame(SENSUS, NOW, -102.0)


@pytest.mark.parametrize("damaged_at", [-1, 10, 27])  # the XOR itself, an ID byte, the RSSI
def test_amber_bad_xor_drops_the_command_and_the_next_frame_survives(damaged_at: int) -> None:
    bad = bytearray(AMBER_COMMAND)
    bad[damaged_at] ^= 0x10
    events = AmberFramer().feed(bytes(bad) + AMBER_COMMAND, NOW)
    assert reasons(events) == [ErrorReason.CHECKSUM]
    assert events[1:] == [Frame(SENSUS, NOW, -102.0)]


def test_amber_partial_frame_is_stale_after_a_gap_of_more_than_two_seconds() -> None:
    framer = AmberFramer()
    assert framer.feed(AMBER_TRANSPARENT[:10], NOW) == []
    events = framer.feed(AMBER_TRANSPARENT, NOW + 2.5)
    error = events[0]
    assert isinstance(error, FrameError) and error.reason is ErrorReason.FRAMING
    assert "10 bytes" in error.detail and "2.5 s" in error.detail
    assert events[1:] == [Frame(SENSUS, NOW + 2.5, -102.0)]


def test_amber_partial_frame_survives_a_gap_under_two_seconds() -> None:
    framer = AmberFramer()
    assert framer.feed(AMBER_COMMAND[:10], NOW) == []
    assert framer.feed(AMBER_COMMAND[10:], NOW + 1.9) == [Frame(SENSUS, NOW + 1.9, -102.0)]


def test_amber_unfinished_frame_at_the_end_of_the_stream_is_reported() -> None:
    framer = AmberFramer()
    assert framer.feed(AMBER_COMMAND[:-1], NOW) == []
    assert "28 bytes" in only_error(framer.end(NOW)).detail


def test_amber_without_rssi_takes_l_as_it_is() -> None:
    assert AmberFramer(rssi=False).feed(SENSUS, NOW) == [Frame(SENSUS, NOW)]
    assert AmberFramer(rssi=False).feed(command(0x03, SENSUS[1:]), NOW) == [Frame(SENSUS, NOW)]


def test_amber_command_telegram_too_short_for_a_header() -> None:
    assert only_error(AmberFramer().feed(command(0x03, bytes(5)), NOW)).reason is (
        ErrorReason.TOO_SHORT
    )


def nvm_reply(command_output: int, rssi: int) -> bytes:
    parameters = bytearray(120)
    parameters[0x05], parameters[0x45], parameters[0x46] = command_output, rssi, 0x03
    return command(0x8A, b"\x00\x78" + parameters)


def test_amber_nvm_reply_gives_settings_and_the_rssi_setting_to_the_framer() -> None:
    wire = nvm_reply(command_output=1, rssi=0)
    assert len(wire) == 126 and wire[:5] == bytes.fromhex("FF8A7A0078")  # docs/receivers.md, 3
    framer = AmberFramer()
    reply, telegram = framer.feed(wire + SENSUS, NOW)  # transparent, now without RSSI byte
    assert isinstance(reply, Reply)
    assert nvm_settings(reply) == NvmSettings(
        command_output=True, rssi_enabled=False, stored_mode=0x03
    )
    assert telegram == Frame(SENSUS, NOW)
    assert nvm_settings(Reply(0x84, b"\x00")) is None


def test_amber_nvm_dump_not_reaching_a_parameter_leaves_it_unknown() -> None:
    reply = Reply(0x8A, bytes((0x40, 0x02, 0x00, 0x01)))  # parameters 0x40-0x41 only
    assert nvm_settings(reply) == NvmSettings(None, None, None)


# --- Amber: session -------------------------------------------------------------------------------


def test_amber_session_sends_the_spec_bytes_and_judges_the_replies() -> None:
    assert (Amber.name, Amber.baudrate) == ("amber", 9600)
    read_nvm, set_mode = Amber().session(LinkMode.T1)
    assert read_nvm.command == GET_NVM == bytes.fromhex("FF0A02008077")
    assert set_mode.command == bytes.fromhex("FF040108F2")
    assert Amber().session(LinkMode.C1_T1)[1].command == bytes.fromhex("FF040109F3")
    (nvm,) = AmberFramer().feed(nvm_reply(0, 1), NOW)
    (ack,) = AmberFramer().feed(bytes.fromhex("FF8401007A"), NOW)
    assert isinstance(nvm, Reply) and isinstance(ack, Reply)
    assert read_nvm.accepts(nvm) and not read_nvm.accepts(ack)
    assert read_nvm.verdict(nvm) is None
    assert set_mode.accepts(ack) and not set_mode.accepts(nvm)
    assert set_mode.verdict(ack) is None
    assert set_mode.verdict(Reply(0x84, b"\x01")) == "the stick answered status 01 (00 means OK)"
    assert set_mode.verdict(Reply(0x84, b"")) == "the stick answered status nothing (00 means OK)"


# --- CUL: framer ----------------------------------------------------------------------------------


def test_cul_spec_line_decodes_with_crcs_removed_and_rssi() -> None:
    assert CulFramer().feed(CUL_LINE, NOW) == [Frame(SENSUS, NOW, -98.0)]  # int8(D0) = -48


@pytest.mark.parametrize("cut", range(1, len(CUL_LINE)))
def test_cul_line_split_anywhere(cut: int) -> None:
    framer = CulFramer()
    events = framer.feed(CUL_LINE[:cut], NOW) + framer.feed(CUL_LINE[cut:], NOW)
    assert events == [Frame(SENSUS, NOW, -98.0)]


def test_cul_bare_lf_and_no_rssi_before_x21() -> None:
    line = b"b" + to_air(SENSUS).hex().upper().encode() + b"\n"
    assert CulFramer().feed(line, NOW) == [Frame(SENSUS, NOW)]


def test_cul_long_amiplus_frame_in_format_a() -> None:
    air = to_air(B2)
    assert len(air) == format_a_length(0xBE) == 217
    line = b"b" + air.hex().upper().encode() + b"2ED0\r\n"
    assert CulFramer().feed(line, NOW) == [Frame(B2, NOW, -98.0)]


@pytest.mark.parametrize(
    ("digits", "said"),
    [
        (296, "holds 148 bytes but its L = 0xBE announces 217"),  # a 148-byte firmware buffer
        (297, "odd number of hex digits (297)"),
    ],
)
def test_cul_truncated_lines_name_the_firmware_limit(digits: int, said: str) -> None:
    line = b"b" + to_air(B2).hex().upper().encode()[:digits] + b"\r\n"
    error = only_error(CulFramer().feed(line, NOW))
    assert error.reason is ErrorReason.TOO_SHORT
    assert said in error.detail and "148 bytes" in error.detail and "163" in error.detail


@pytest.mark.parametrize("frame", [SENSUS, B2], ids=["one CRC", "two CRCs"])
def test_cul_format_b_line(frame: bytes) -> None:
    line = b"bY" + to_air(frame, "B").hex().upper().encode() + b"2ED0\r\n"
    assert CulFramer().feed(line, NOW) == [Frame(frame, NOW, -98.0, "C1")]


def test_cul_bad_dll_crc_then_a_good_line() -> None:
    bad = CUL_LINE.replace(b"D0C6", b"D0C7")  # the last block's CRC
    events = CulFramer().feed(bad + CUL_LINE, NOW)
    assert reasons(events) == [ErrorReason.CRC]
    assert "block 2" in str(events[0])
    assert events[1:] == [Frame(SENSUS, NOW, -98.0)]


def test_cul_bad_format_b_crc() -> None:
    air = bytearray(to_air(B2, "B"))
    air[130] ^= 0x01  # inside the second block
    line = b"bY" + bytes(air).hex().upper().encode() + b"\r\n"
    error = only_error(CulFramer().feed(line, NOW))
    assert error.reason is ErrorReason.CRC and "block 2" in error.detail


def test_cul_replies_between_telegrams() -> None:
    stream = b"V 1.67 nanoCUL868\r\nTMODE\r\n" + CUL_LINE + b"CMODE\r\nSMODE\r\nOFF\n"
    assert CulFramer().feed(stream, NOW) == [
        Reply(0, b"V 1.67 nanoCUL868"),
        Reply(0, b"TMODE"),
        Frame(SENSUS, NOW, -98.0),
        Reply(0, b"CMODE"),
        Reply(0, b"SMODE"),
        Reply(0, b"OFF"),
    ]


def test_cul_noise_and_half_lines_are_framing_errors() -> None:
    tail = CUL_LINE[30:]  # the port opened in the middle of a telegram line
    events = CulFramer().feed(tail + b"\x00\xfe\x13" + CUL_LINE + b"\r\n", NOW)
    assert reasons(events) == [ErrorReason.FRAMING, ErrorReason.FRAMING]
    assert "3 bytes of noise" in str(events[1])
    assert events[2:] == [Frame(SENSUS, NOW, -98.0)]


def test_cul_printable_noise_before_the_marker_and_before_a_reply() -> None:
    events = CulFramer().feed(b'\x11"3' + CUL_LINE + b"\x00\xffTMODE\r\n", NOW)
    assert events == [
        FrameError(ErrorReason.FRAMING, "skipped 3 bytes of noise"),
        Frame(SENSUS, NOW, -98.0),
        FrameError(ErrorReason.FRAMING, "skipped 2 bytes of noise"),
        Reply(0, b"TMODE"),
    ]


def test_cul_unexpected_bytes_after_the_frame() -> None:
    line = CUL_LINE.replace(b"2ED0", b"2ED012")
    assert only_error(CulFramer().feed(line, NOW)).reason is ErrorReason.FRAMING


def test_cul_over_long_line_is_one_error_and_the_next_line_decodes() -> None:
    framer = CulFramer()
    events = framer.feed(b"b" + b"A" * 800, NOW) + framer.feed(b"A" * 800, NOW)
    events += framer.feed(b"A" * 100 + b"\r\n" + CUL_LINE, NOW)
    assert reasons(events) == [ErrorReason.FRAMING]
    assert events[1:] == [Frame(SENSUS, NOW, -98.0)]


def test_cul_line_too_short_for_a_header() -> None:
    error = only_error(CulFramer().feed(b"b0944\r\n", NOW))
    assert error.reason is ErrorReason.TOO_SHORT


# --- CUL: session ---------------------------------------------------------------------------------


def test_cul_session_commands_and_replies() -> None:
    assert (Cul.name, Cul.baudrate) == ("cul", 38400)
    version, mode, report = Cul().session(LinkMode.T1)
    assert [version.command, mode.command, report.command] == [b"V\r\n", b"brt\r\n", b"X21\r\n"]
    assert report.timeout == 0
    assert version.accepts(Reply(0, b"V 1.67 nanoCUL868"))
    assert not version.accepts(Reply(0, b"TMODE"))
    assert mode.accepts(Reply(0, b"TMODE")) and not mode.accepts(Reply(0, b"V 1.67 CUL868"))
    assert mode.verdict(Reply(0, b"TMODE")) is None
    refused = mode.verdict(Reply(0, b"SMODE"))
    assert refused is not None and "answered SMODE instead of TMODE" in refused
    c_mode = Cul().session(LinkMode.C1_T1)[1]
    assert c_mode.command == b"brc\r\n" and c_mode.verdict(Reply(0, b"CMODE")) is None


# --- RC1180 ---------------------------------------------------------------------------------------


def test_rc1180_spec_example() -> None:
    assert rc1180_rssi_dbm(0x8C) == -70.0
    assert Rc1180Framer().feed(RC1180_TELEGRAM, NOW) == [Frame(SENSUS, NOW, -70.0)]
    assert Rc1180Framer(rssi=False).feed(SENSUS, NOW) == [Frame(SENSUS, NOW)]


def test_rc1180_prompt_and_garbage_are_skipped() -> None:
    events = Rc1180Framer().feed(b">\x11\x22" + RC1180_TELEGRAM + RC1180_TELEGRAM, NOW)
    assert reasons(events) == [ErrorReason.FRAMING]
    assert frames(events) == [SENSUS, SENSUS]


def test_rc1180_dialect_has_no_session() -> None:
    assert (Rc1180.name, Rc1180.baudrate) == ("rc1180", 19200)
    assert Rc1180().session(LinkMode.T1) == []


# --- Properties -----------------------------------------------------------------------------------

canonical_frames = st.builds(
    lambda length, c, body: bytes((length, c)) + body[: length - 1].ljust(length - 1, b"\x00"),
    st.integers(10, 0xC0),
    st.sampled_from([0x44, 0x46]),
    st.binary(min_size=0xC0, max_size=0xC0),
)
cut_lists = st.lists(st.integers(0, 3000), max_size=12)
# Bytes that cannot start an Amber/RC1180 telegram or command (below the smallest L' of 11).
inert_garbage = st.binary(max_size=6).map(lambda b: bytes(x % 11 for x in b))
# Noise before a CUL telegram on its line: anything but LF.
line_noise = st.binary(max_size=6).map(lambda b: b.replace(b"\n", b""))

FRAMERS: dict[str, Callable[[], Framer]] = {
    "amber": AmberFramer,
    "rc1180": Rc1180Framer,
    "cul": CulFramer,
}


def amber_wire(frame: bytes, transparent: bool) -> bytes:
    body = frame[1:] + b"\xc8"
    return bytes((len(frame),)) + body if transparent else command(0x03, body)


def cul_wire(frame: bytes, frame_format: str) -> bytes:
    prefix = b"bY" if frame_format == "B" else b"b"
    return prefix + to_air(frame, frame_format).hex().upper().encode() + b"2ED0\r\n"


@given(st.lists(st.tuples(canonical_frames, st.booleans(), inert_garbage), max_size=5), cut_lists)
def test_amber_property_frames_survive_garbage_and_splits(
    items: list[tuple[bytes, bool, bytes]], cuts: list[int]
) -> None:
    stream = b"".join(garbage + amber_wire(frame, mode) for frame, mode, garbage in items)
    whole = AmberFramer().feed(stream, NOW)
    assert frames(whole) == [frame for frame, _, _ in items]
    assert feed_pieces(AmberFramer(), stream, cuts) == whole


@given(st.lists(st.tuples(canonical_frames, inert_garbage), max_size=5), cut_lists)
def test_rc1180_property_frames_survive_garbage_and_splits(
    items: list[tuple[bytes, bytes]], cuts: list[int]
) -> None:
    stream = b"".join(garbage + bytes((len(f),)) + f[1:] + b"\x8c" for f, garbage in items)
    whole = Rc1180Framer().feed(stream, NOW)
    assert frames(whole) == [frame for frame, _ in items]
    assert feed_pieces(Rc1180Framer(), stream, cuts) == whole


@given(
    st.lists(
        st.tuples(canonical_frames, st.sampled_from(["A", "B"]), line_noise, st.booleans()),
        max_size=5,
    ),
    cut_lists,
)
def test_cul_property_frames_survive_garbage_and_splits(
    items: list[tuple[bytes, str, bytes, bool]], cuts: list[int]
) -> None:
    stream = b"".join(
        noise + (b"OFF\r\n" if reply else b"") + cul_wire(frame, frame_format)
        for frame, frame_format, noise, reply in items
    )
    whole = CulFramer().feed(stream, NOW)
    assert frames(whole) == [frame for frame, _, _, _ in items]
    assert feed_pieces(CulFramer(), stream, cuts) == whole


@pytest.mark.parametrize("name", FRAMERS)
@given(data=st.binary(max_size=1500), cuts=cut_lists)
def test_property_any_bytes_any_split_give_the_same_events(
    name: str, data: bytes, cuts: list[int]
) -> None:
    whole = FRAMERS[name]().feed(data, NOW)
    assert feed_pieces(FRAMERS[name](), data, cuts) == whole


@pytest.mark.parametrize("make", [AmberFramer, Rc1180Framer], ids=["amber", "rc1180"])
@given(data=st.binary(max_size=1500))
def test_property_headerless_framers_keep_at_most_one_frame(
    make: Callable[[], Framer], data: bytes
) -> None:
    framer = make()
    framer.feed(data, NOW)
    dropped = [e for e in framer.end(NOW) if isinstance(e, FrameError) and "dropped" in e.detail]
    for error in dropped:  # "dropped N bytes of an unfinished frame"
        assert int(error.detail.split()[1]) <= 3 + 255 + 1


# --- Emulated sticks over a pty -------------------------------------------------------------------


@pytest.fixture
def plug() -> Iterator[Callable[[PtyDevice], serial.Serial]]:
    """Open an emulator's tty with pyserial; both are closed after the test."""
    opened: list[tuple[PtyDevice, serial.Serial]] = []

    def open_port(device: PtyDevice) -> serial.Serial:
        port = serial.Serial(device.path, timeout=0.02)
        opened.append((device, port))
        return port

    yield open_port
    for device, port in opened:
        port.close()
        device.close()


def read_events(
    port: serial.Serial,
    framer: Framer,
    until: Callable[[list[Event]], bool],
    timeout: float = 2.0,
) -> list[Event]:
    """Read and frame until `until(events)` holds or `timeout` passes."""
    events: list[Event] = []
    deadline = time.monotonic() + timeout
    while not until(events) and time.monotonic() < deadline:
        data = port.read(port.in_waiting or 1)
        if data:
            events += framer.feed(data, time.time())
    return events


def accepted_session(port: serial.Serial, framer: Framer, steps: list[SessionStep]) -> list[Event]:
    """A session whose every reply came and was accepted: the events read, in order."""
    events, verdicts = run_session(port, framer, steps)
    assert verdicts == [None] * len(verdicts), verdicts
    return events


def has_frame(events: list[Event]) -> bool:
    return any(isinstance(event, Frame) for event in events)


@pytest.mark.parametrize("transparent", [True, False], ids=["transparent", "command"])
def test_amber_emulator_session_then_telegram(
    plug: Callable[[PtyDevice], serial.Serial], transparent: bool
) -> None:
    emulator = AmberEmulator(transparent=transparent)
    port = plug(emulator)
    framer = Amber().framer()
    events = accepted_session(port, framer, Amber().session(LinkMode.T1))
    assert emulator.mode is LinkMode.T1
    assert emulator.commands == [GET_NVM, bytes.fromhex("FF040108F2")]
    nvm = next(e for e in events if isinstance(e, Reply) and e.message == 0x8A)
    assert len(nvm.payload) == 122
    assert nvm_settings(nvm) == NvmSettings(not transparent, True, 0x03)
    assert emulator.telegram(SENSUS, byte_by_byte=True, garbage_before=b"\x01\x02")
    events = read_events(port, framer, has_frame)
    assert reasons(events) == [ErrorReason.FRAMING]
    frame = events[-1]
    assert isinstance(frame, Frame) and (frame.data, frame.rssi_dbm) == (SENSUS, -102.0)


def test_amber_emulator_output_switched_mid_stream_and_corrupt_xor(
    plug: Callable[[PtyDevice], serial.Serial],
) -> None:
    emulator = AmberEmulator()
    port = plug(emulator)
    framer = Amber().framer()
    accepted_session(port, framer, Amber().session(LinkMode.C1_T1))
    assert emulator.mode is LinkMode.C1_T1
    assert emulator.telegram(SENSUS, corrupt=True)
    assert emulator.telegram(SENSUS)
    emulator.transparent = True
    assert emulator.telegram(B2, 0x10)
    events = read_events(port, framer, lambda got: len(frames(got)) == 2)
    assert reasons(events) == [ErrorReason.CHECKSUM]
    assert frames(events) == [SENSUS, B2]
    assert [e.rssi_dbm for e in events if isinstance(e, Frame)] == [-102.0, -66.0]


def test_amber_emulator_drops_telegrams_until_the_mode_is_set_and_after_reset(
    plug: Callable[[PtyDevice], serial.Serial],
) -> None:
    emulator = AmberEmulator()
    port = plug(emulator)
    assert not emulator.telegram(SENSUS)
    assert port.read(64) == b""
    framer = Amber().framer()
    accepted_session(port, framer, Amber().session(LinkMode.T1))
    port.write(command(0x05))
    events = read_events(port, framer, bool)
    assert events == [Reply(0x85, b"\x00")]
    assert emulator.wait_for(lambda: emulator.mode is None, timeout=1)
    assert not emulator.telegram(SENSUS)


def test_amber_emulator_telegram_before_ack_yields_frame_and_reply(
    plug: Callable[[PtyDevice], serial.Serial],
) -> None:
    emulator = AmberEmulator(telegram_before_ack=SENSUS)  # wmbusmeters issue #440
    port = plug(emulator)
    events = accepted_session(port, Amber().framer(), Amber().session(LinkMode.T1))
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Reply", "Frame", "Reply"]  # NVM (no mode yet: no telegram), frame, ack
    assert events[2] == Reply(0x84, b"\x00")


def test_amber_emulator_silent_never_answers(plug: Callable[[PtyDevice], serial.Serial]) -> None:
    emulator = AmberEmulator(silent=True)
    port = plug(emulator)
    port.write(bytes.fromhex("FF040108F2"))
    assert emulator.wait_for(lambda: len(emulator.commands) == 1, timeout=1)
    assert port.read(16) == b""
    assert emulator.mode is None


def test_cul_emulator_session_then_telegram_faults(
    plug: Callable[[PtyDevice], serial.Serial],
) -> None:
    emulator = CulEmulator()
    port = plug(emulator)
    framer = Cul().framer()
    assert not emulator.telegram(SENSUS)
    events = accepted_session(port, framer, Cul().session(LinkMode.T1))
    assert events == [Reply(0, b"V 1.67 nanoCUL868"), Reply(0, b"TMODE")]
    assert emulator.mode is LinkMode.T1
    assert emulator.wait_for(lambda: emulator.reporting, timeout=1)
    assert not emulator.telegram(SENSUS, frame_format="B")  # TMODE hears no frame B
    assert emulator.telegram(SENSUS, split=True)
    assert emulator.telegram(B2, cut_at=297)
    assert emulator.telegram(SENSUS, corrupt=True)
    assert emulator.telegram(SENSUS, 0x20, garbage_before=b"\x00\x80", byte_by_byte=True)
    events = read_events(port, framer, lambda got: len(frames(got)) == 2)
    assert reasons(events) == [ErrorReason.TOO_SHORT, ErrorReason.CRC, ErrorReason.FRAMING]
    received = [(e.data, e.rssi_dbm) for e in events if isinstance(e, Frame)]
    assert received == [(SENSUS, -98.0), (SENSUS, -58.0)]  # 0x20: 32 / 2 - 74


def test_cul_emulator_c_mode_and_telegram_before_ack(
    plug: Callable[[PtyDevice], serial.Serial],
) -> None:
    emulator = CulEmulator(telegram_before_ack=SENSUS)
    port = plug(emulator)
    framer = Cul().framer()
    events = accepted_session(port, framer, Cul().session(LinkMode.C1_T1))
    assert events[0] == Reply(0, b"V 1.67 nanoCUL868")  # no mode yet: no telegram before it
    assert frames(events) == [SENSUS] and events[-1] == Reply(0, b"CMODE")
    assert emulator.wait_for(lambda: emulator.reporting, timeout=1)
    assert emulator.telegram(B2, frame_format="B")
    (frame,) = read_events(port, framer, has_frame)
    assert isinstance(frame, Frame) and (frame.data, frame.link_mode) == (B2, "C1")


def test_cul_emulator_silent(plug: Callable[[PtyDevice], serial.Serial]) -> None:
    emulator = CulEmulator(silent=True)
    port = plug(emulator)
    port.write(b"V\r\nbrt\r\n")
    assert emulator.wait_for(lambda: len(emulator.commands) == 2, timeout=1)
    assert port.read(16) == b""
    assert emulator.mode is None


def test_rc1180_emulator_telegrams_and_configuration_mode(
    plug: Callable[[PtyDevice], serial.Serial],
) -> None:
    emulator = Rc1180Emulator()
    port = plug(emulator)
    framer = Rc1180().framer()
    assert emulator.telegram(SENSUS, garbage_before=b"\x11\x22\x33", byte_by_byte=True)
    events = read_events(port, framer, has_frame)
    assert reasons(events) == [ErrorReason.FRAMING]
    frame = events[-1]
    assert isinstance(frame, Frame) and (frame.data, frame.rssi_dbm) == (SENSUS, -70.0)
    port.write(b"\x00")
    assert port.read(1) == b">"
    assert emulator.wait_for(lambda: emulator.configuring, timeout=1)  # set after the prompt
    assert not emulator.telegram(SENSUS)  # configuration mode passes no telegrams
    port.write(b"0")
    dump = port.read(257)
    assert len(dump) == 257 and dump[-1:] == b">"
    assert (dump[0x03], dump[0x05], dump[0x1B:0x1F]) == (1, 1, bytes.fromhex("78563412"))
    port.write(b"X")
    assert emulator.wait_for(lambda: not emulator.configuring, timeout=1)
    assert emulator.telegram(SENSUS)
    assert frames(read_events(port, framer, has_frame)) == [SENSUS]


def test_rc1180_emulator_telegram_before_prompt_and_silent(
    plug: Callable[[PtyDevice], serial.Serial],
) -> None:
    talkative = Rc1180Emulator(telegram_before_ack=SENSUS)
    port = plug(talkative)
    port.write(b"\x00")
    wire = port.read(len(RC1180_TELEGRAM) + 1)
    assert wire == RC1180_TELEGRAM + b">"  # the telegram first, then the prompt
    silent = Rc1180Emulator(silent=True)
    quiet_port = plug(silent)
    quiet_port.write(b"\x00")
    assert silent.wait_for(lambda: len(silent.commands) == 1, timeout=1)
    assert quiet_port.read(4) == b"" and not silent.configuring
