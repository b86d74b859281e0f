"""The frames of every serial board, and what each parser does with malformed answers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from labpower.backends.errors import OperationError
from labpower.backends.serial import devantech, kmtronic, lcus, numato

# -- LCUS


@pytest.mark.parametrize(
    ("channel", "on", "frame"),
    [
        (1, True, "a0 01 01 a2"),
        (1, False, "a0 01 00 a1"),
        (2, True, "a0 02 01 a3"),
        (8, False, "a0 08 00 a8"),
    ],
)
def test_lcus_switch_frames(channel: int, on: bool, frame: str) -> None:
    assert lcus.switch_frame(channel, on) == bytes.fromhex(frame)


@given(st.integers(1, 8), st.booleans())
def test_lcus_feedback_frame_of_a_state_parses_back(channel: int, on: bool) -> None:
    # a feedback frame has the shape of a switch frame: A0 ch state sum
    assert lcus.parse_frame(lcus.switch_frame(channel, on)) == (channel, on)


def test_lcus_checksum_wraps() -> None:
    assert lcus.checksum(0xA0, 0xFE, 0x01) == 0x9F


@pytest.mark.parametrize(
    ("frame", "problem"),
    [
        ("a0 01 01 a3", "checksum"),
        ("a1 01 01 a3", "not an LCUS frame"),
        ("a0 01 07 a8", "unknown state"),
        ("a0 01 01", "not an LCUS frame"),
    ],
)
def test_lcus_malformed_frames(frame: str, problem: str) -> None:
    with pytest.raises(OperationError, match=problem):
        lcus.parse_frame(bytes.fromhex(frame))


def test_lcus_ascii_status_tolerates_firmware_spelling() -> None:
    lines = [b"CH1: OFF", b"ch2:on", b"CH 3 = ON", b"CH4:  off  "]
    assert lcus.parse_ascii(lines, 4) == {1: False, 2: True, 3: True, 4: False}


@pytest.mark.parametrize("line", [b"CH1: MAYBE", b"hello", b"CH: ON", b"\x00\x01"])
def test_lcus_ascii_status_refuses_other_lines(line: bytes) -> None:
    with pytest.raises(OperationError, match="not an LCUS status line"):
        lcus.parse_ascii([line], 1)


def test_lcus_ascii_status_must_cover_every_channel() -> None:
    with pytest.raises(OperationError, match="no state for channel 2"):
        lcus.parse_ascii([b"CH1: ON", b"CH3: ON"], 3)


def test_lcus_raw_status() -> None:
    assert lcus.parse_raw(b"\x00\x01\x01\x00", 4) == {1: False, 2: True, 3: True, 4: False}
    with pytest.raises(OperationError, match="0x02 of channel 2"):
        lcus.parse_raw(b"\x00\x02", 2)
    with pytest.raises(OperationError, match="1 bytes for 2 channels"):
        lcus.parse_raw(b"\x00", 2)


def test_lcus_feedback_status() -> None:
    data = bytes.fromhex("a0 02 01 a3 a0 01 00 a1")
    assert lcus.parse_feedback(data, 2) == {1: False, 2: True}
    with pytest.raises(OperationError, match="not whole frames"):
        lcus.parse_feedback(data[:-1], 2)
    with pytest.raises(OperationError, match="checksum"):
        lcus.parse_feedback(bytes.fromhex("a0 01 01 a1"), 1)
    with pytest.raises(OperationError, match="no state for channel 2"):
        lcus.parse_feedback(bytes.fromhex("a0 01 01 a2"), 2)


@pytest.mark.parametrize(
    ("first", "dialect"),
    [
        (0x00, "raw"),
        (0x01, "raw"),
        (0xA0, "feedback"),
        (ord("C"), "ascii"),
        (ord("\r"), "ascii"),
        (0x5A, None),
        (0xFF, None),
    ],
)
def test_lcus_dialect_from_first_byte(first: int, dialect: str | None) -> None:
    assert lcus.dialect_of(first) == dialect


# -- Numato


@pytest.mark.parametrize(
    ("channel", "channels", "index"),
    [(1, 8, "0"), (10, 16, "9"), (11, 16, "A"), (32, 32, "V"), (1, 64, "00"), (64, 64, "63")],
)
def test_numato_relay_index(channel: int, channels: int, index: str) -> None:
    assert numato.relay_index(channel, channels) == index


def test_numato_relay_index_out_of_range() -> None:
    with pytest.raises(ValueError, match="out of range"):
        numato.relay_index(9, 8)


def test_numato_answers() -> None:
    assert numato.encode("relay on 0") == b"relay on 0\r"
    assert numato.parse_answer("relay on 0", b"relay on 0\n\r>") is None
    assert numato.parse_answer("relay read 0", b"relay read 0\n\ron\n\r>") == "on"
    assert numato.parse_answer("relay readall", b"relay readall\n\r05\n\r>") == "05"


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"relay on 0\n\r", "without prompt"),
        (b"relay on 1\n\r>", "echoed 'relay on 1'"),
        (b"\xffrelay on 0\n\r>", "not ASCII"),
        (b">", "echoed ''"),
        (b"relay on 0\n\ra\n\rb\n\r>", "extra lines"),
    ],
)
def test_numato_malformed_answers(data: bytes, problem: str) -> None:
    with pytest.raises(OperationError, match=problem):
        numato.parse_answer("relay on 0", data)


def test_numato_states() -> None:
    assert numato.parse_state("on") is True
    assert numato.parse_state("OFF") is False
    with pytest.raises(OperationError, match="neither on nor off"):
        numato.parse_state("1")
    with pytest.raises(OperationError, match="neither on nor off"):
        numato.parse_state(None)
    assert numato.parse_mask("05", 4) == {1: True, 2: False, 3: True, 4: False}
    assert numato.parse_mask("8000", 16)[16] is True
    with pytest.raises(OperationError, match="not hexadecimal"):
        numato.parse_mask("0x05", 4)
    with pytest.raises(OperationError, match="too short"):
        numato.parse_mask("05", 16)


# -- KMTronic


def test_kmtronic_frames() -> None:
    assert kmtronic.switch_frame(1, True) == bytes.fromhex("ff 01 01")
    assert kmtronic.switch_frame(8, False) == bytes.fromhex("ff 08 00")
    assert kmtronic.query_frame(2) == bytes.fromhex("ff 02 03")
    assert bytes.fromhex("ff 09 00") == kmtronic.STATUS_ALL


def test_kmtronic_answers() -> None:
    assert kmtronic.parse_query_reply(bytes.fromhex("ff 02 01"), 2) is True
    assert kmtronic.parse_query_reply(bytes.fromhex("ff 02 00"), 2) is False
    assert kmtronic.parse_status(bytes.fromhex("01 00 00 01"), 4) == {
        1: True,
        2: False,
        3: False,
        4: True,
    }
    assert kmtronic.parse_status(bytes(8), 6) == dict.fromkeys(range(1, 7), False)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ("ff 01 01", "not a status of relay 2"),
        ("fe 02 01", "not a status"),
        ("ff 02 05", "not 00/01"),
        ("ff 02", "not a status"),
    ],
)
def test_kmtronic_malformed_query_answers(data: str, problem: str) -> None:
    with pytest.raises(OperationError, match=problem):
        kmtronic.parse_query_reply(bytes.fromhex(data), 2)


def test_kmtronic_malformed_status() -> None:
    with pytest.raises(OperationError, match="3 bytes, expected 4"):
        kmtronic.parse_status(bytes(3), 4)
    with pytest.raises(OperationError, match="0x5a of relay 2"):
        kmtronic.parse_status(bytes.fromhex("00 5a 00 00"), 4)


# -- Devantech


def test_devantech_commands() -> None:
    assert devantech.switch_command(1, True) == b"\x65"
    assert devantech.switch_command(8, True) == b"\x6c"
    assert devantech.switch_command(1, False) == b"\x6f"
    assert devantech.switch_command(8, False) == b"\x76"
    assert devantech.GET_STATES == b"\x5b"


def test_devantech_states() -> None:
    assert devantech.parse_states(b"\x05", 4) == {1: True, 2: False, 3: True, 4: False}
    assert devantech.parse_states(b"\x80", 8)[8] is True
    with pytest.raises(OperationError, match="2 bytes, expected 1"):
        devantech.parse_states(b"\x05\x00", 4)
    with pytest.raises(OperationError, match="0 bytes"):
        devantech.parse_states(b"", 4)
