"""The serial backends on their own (through Device, no daemon) against simulators on ptys:
port handling, dialect detection, options."""

from __future__ import annotations

import array
import fcntl
import os
import termios
import time
from typing import Any

import pytest
from labpower.backends import Device, OptionError, parse_options
from labpower.backends.errors import HardwareTimeout
from labpower.backends.registry import load
from labpower.backends.serial.devantech import DevantechBackend
from labpower.backends.serial.kmtronic import KmtronicBackend
from labpower.backends.serial.lcus import LcusBackend, LcusOptions
from labpower.backends.serial.numato import NumatoBackend
from labpower.backends.serial.port import SerialBackend
from labpower.backends.sim import SIMULATORS, PtySimulator, Switch

pytestmark = pytest.mark.anyio

KINDS = sorted(SIMULATORS)


def device(kind: str, board: PtySimulator, timeout: float = 0.5, **options: Any) -> Device:
    cls = load(kind)
    if kind == "lcus":
        options = {"gap": 0.0, "probe_timeout": 0.2, **options}
    opts = parse_options(cls.Options, {"port": str(board.link), **options})
    return Device(cls(kind, board.channels, opts, timeout), timeout)


def test_entry_points_name_the_serial_backends() -> None:
    assert load("lcus") is LcusBackend
    assert load("numato") is NumatoBackend
    assert load("kmtronic") is KmtronicBackend
    assert load("devantech") is DevantechBackend


@pytest.mark.parametrize("kind", KINDS)
async def test_port_is_exclusive(kind: str, boards: Any) -> None:
    board = boards(kind)
    first, second = device(kind, board), device(kind, board)
    assert await first.open()
    assert not await second.open()
    assert second.problem is not None
    assert "in use by another program" in second.problem
    await first.close()
    assert await second.open()
    await second.close()


async def test_hupcl_is_cleared_so_closing_does_not_drop_the_modem_lines(boards: Any) -> None:
    board = boards("kmtronic")
    fd = os.open(board.link, os.O_RDWR | os.O_NOCTTY)
    try:
        attrs = termios.tcgetattr(fd)
        attrs[2] |= termios.HUPCL  # what a fresh tty usually has
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        dev = device("kmtronic", board)
        assert await dev.open()  # modem-line ioctls fail with ENOTTY on a pty: tolerated
        assert not termios.tcgetattr(fd)[2] & termios.HUPCL
        await dev.close()
    finally:
        os.close(fd)


async def test_switching_respects_the_gap_between_commands(boards: Any) -> None:
    board = boards("lcus", dialect="raw")
    dev = device("lcus", board, gap=0.05)
    assert await dev.open()
    started = time.monotonic()
    assert await dev.switch(1, True) is True  # switch frame, pause, status query
    assert await dev.switch(1, False) is False
    assert time.monotonic() - started >= 3 * 0.05


@pytest.mark.timing
async def test_shorter_read_timeout_than_the_deadline(boards: Any) -> None:
    board = boards("devantech")
    dev = device("devantech", board, timeout=2.0, read_timeout=0.1)
    assert await dev.open()
    board.hang()
    started = time.monotonic()
    with pytest.raises(HardwareTimeout) as caught:
        await dev.state(1)
    assert caught.value.seconds == 0.1
    assert time.monotonic() - started < 1.0
    await dev.close()


async def test_lcus_keeps_its_dialect_after_a_hang(boards: Any) -> None:
    board = boards("lcus", dialect="feedback")
    dev = device("lcus", board)
    backend = dev.backend
    assert isinstance(backend, LcusBackend)
    assert await dev.open()
    assert backend.dialect == "feedback"
    board.hang()
    with pytest.raises(HardwareTimeout):
        await dev.switch(1, True)
    board.heal()
    seen = len(board.received)
    assert await dev.switch(1, True) is True  # re-opened, still read back
    assert backend.dialect == "feedback"
    assert backend.readback
    assert board.received[seen:] == bytes.fromhex("a0 01 01 a2 ff")  # no second probe
    await dev.close()


@pytest.mark.parametrize("dialect", ["ascii", "raw", "feedback", "silent"])
async def test_lcus_dialect_detection(dialect: str, boards: Any) -> None:
    board = boards("lcus", channels=2, dialect=dialect)
    dev = device("lcus", board)
    assert await dev.open()
    backend = dev.backend
    assert isinstance(backend, LcusBackend)
    assert backend.dialect == ("none" if dialect == "silent" else dialect)
    assert dev.readback is (dialect != "silent")
    expected = None if dialect == "silent" else True
    assert await dev.switch(2, True) is expected
    unknown = {1: None, 2: None}
    assert await dev.states() == (unknown if dialect == "silent" else {1: False, 2: True})
    assert board.wait_until(lambda: board.switches == [Switch(2, True)])
    await dev.close()


async def test_lcus_answer_no_dialect_starts_with_fails_open(boards: Any) -> None:
    board = boards("lcus", dialect="raw")
    board.garble()
    dev = device("lcus", board)
    assert not await dev.open()
    assert dev.problem is not None
    assert "unrecognised answer" in dev.problem
    board.heal()
    assert await dev.open()
    await dev.close()


async def test_lcus_status_option_skips_detection(boards: Any) -> None:
    board = boards("lcus", dialect="ascii")
    dev = device("lcus", board, status="ascii")
    assert await dev.open()
    assert bytes(board.received) == b""
    assert await dev.switch(3, True) is True
    await dev.close()
    blind = device("lcus", board, status="none")
    assert not blind.readback
    assert await blind.switch(3, False) is None
    await blind.close()


async def test_numato_64_relays_use_two_digits(boards: Any) -> None:
    board = boards("numato", channels=64)
    dev = device("numato", board)
    assert await dev.switch(64, True) is True
    assert b"relay on 63\r" in board.received
    states = await dev.states()
    assert states[64] is True
    assert not any(states[ch] for ch in range(1, 64))
    await dev.close()


async def test_kmtronic_small_board_queries_each_relay(boards: Any) -> None:
    board = boards("kmtronic", channels=2)
    dev = device("kmtronic", board)
    assert await dev.switch(2, True) is True
    assert await dev.states() == {1: False, 2: True}
    assert b"\xff\x09\x00" not in board.received
    await dev.close()


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({}, "port"),
        ({"port": ""}, "port"),
        ({"port": "/dev/x", "baud": 10}, "baud"),
        ({"port": "/dev/x", "read_timeout": 0}, "read_timeout"),
        ({"port": "/dev/x", "write_timeout": -1.0}, "write_timeout"),
        ({"port": "/dev/x", "gap": 11}, "gap"),
        ({"port": "/dev/x", "status": "loud"}, "status"),
        ({"port": "/dev/x", "probe_timeout": 0}, "probe_timeout"),
        ({"port": "/dev/x", "speed": 1}, "speed"),
    ],
)
def test_options_name_the_bad_key(table: dict[str, Any], key: str) -> None:
    with pytest.raises(OptionError) as caught:
        parse_options(LcusOptions, table)
    assert caught.value.key == key


def test_lcus_defaults_leave_a_gap() -> None:
    opts = parse_options(LcusOptions, {"port": "/dev/ttyUSB0"})
    assert opts.gap == 0.1
    assert opts.status == "auto"
    assert opts.baud == 9600
    assert issubclass(LcusBackend, SerialBackend)


def _wait_for_input(fd: int, count: int, timeout: float = 5.0) -> bool:
    """Wait until ``count`` bytes wait unread in the tty ``fd`` (FIONREAD)."""
    deadline = time.monotonic() + timeout
    pending = array.array("i", [0])
    while time.monotonic() < deadline:
        fcntl.ioctl(fd, termios.FIONREAD, pending)
        if pending[0] >= count:
            return True
        time.sleep(0.001)
    return False


class _ChunkRecorder:
    """Wraps a simulator's parser to record the chunks it reads off the pty."""

    def __init__(self, board: PtySimulator) -> None:
        self.chunks: list[bytes] = []
        self._handle = board.handle
        board.handle = self  # type: ignore[method-assign]

    def __call__(self, data: bytes) -> list[tuple[int, bytes]]:
        self.chunks.append(bytes(data))
        return self._handle(data)


async def test_lcus_without_gap_sends_switch_and_query_in_one_write(boards: Any) -> None:
    board = boards("lcus", dialect="raw")
    dev = device("lcus", board)
    assert await dev.open()
    recorder = _ChunkRecorder(board)
    assert await dev.switch(2, True) is True
    # one exchange: the switch frame and the status query arrive together
    assert recorder.chunks == [bytes.fromhex("a0 02 01 a3 ff")]
    await dev.close()


async def test_lcus_with_a_gap_sends_the_query_after_it(boards: Any) -> None:
    board = boards("lcus", dialect="raw")
    dev = device("lcus", board, gap=0.05)
    assert await dev.open()
    recorder = _ChunkRecorder(board)
    assert await dev.switch(2, True) is True
    assert recorder.chunks == [bytes.fromhex("a0 02 01 a3"), b"\xff"]
    await dev.close()


async def test_bytes_nobody_asked_for_are_not_taken_for_the_answer(boards: Any) -> None:
    board = boards("lcus", dialect="raw")
    dev = device("lcus", board)
    assert await dev.open()
    assert await dev.switch(1, True) is True  # the port now waits for 4-byte answers
    board.send(b"\x01\x01")  # fewer bytes than an answer, arriving while idle
    port = dev.backend.port
    assert port is not None
    assert _wait_for_input(port.fileno, 2)
    assert await dev.switch(1, False) is False
    assert await dev.state(1) is False
    assert board.relays[1] is False
    await dev.close()


@pytest.mark.timing
async def test_an_answer_quicker_than_the_wire_time_is_read_at_once(boards: Any) -> None:
    # At 50 baud the port expects the answer to a switch with read-back after 1.8 s of wire
    # time; the simulator (no wire time emulated) answers at once, and so must the call.
    board = boards("lcus", dialect="raw")
    dev = device("lcus", board, timeout=5.0, baud=50)
    assert await dev.open()
    started = time.monotonic()
    assert await dev.switch(1, True) is True
    assert time.monotonic() - started < 0.5
    await dev.close()


def test_serial_port_learns_how_late_answers_come() -> None:
    from labpower.backends.serial.port import SerialPort

    port = SerialPort("/nonexistent")
    assert port.lag == 0.0
    port._learn_lag(0.0008)  # later than the wire time: up by an eighth
    assert port.lag == pytest.approx(0.0001)
    port._learn_lag(-0.002)  # earlier (a board quicker than its wire): down at once
    assert port.lag == -0.002
    for _ in range(200):  # a board that is steadily 1 ms late is followed
        port._learn_lag(0.001)
    assert port.lag == pytest.approx(0.001, abs=1e-6)
    port._learn_lag(30.0)  # one wild value moves the estimate a bounded step
    assert port.lag < 0.2


async def test_answers_of_one_length_leave_the_terminal_settings_alone() -> None:
    """A port waits for an answer of n bytes by setting the tty's VMIN to n; an answer that
    came whole leaves it there, so the next exchange of the same shape (every Modbus one)
    changes no terminal setting: each change is four ioctls on the switching path."""
    from labpower.backends.serial.port import SerialPort

    board, slave = os.openpty()
    port = SerialPort(os.ttyname(slave))
    try:
        port.open()

        async def exchange(p: SerialPort) -> bytes:
            await p.command(b"?")
            os.write(board, b"ANSWER!!")  # 8 bytes, asked for as 5 that tell the length
            head = await p.read_exact(5, likely=8)
            return head + await p.read_exact(3)

        for _ in range(2):
            assert await port.run(exchange, 2.0) == b"ANSWER!!"
            assert os.read(board, 16) == b"?"
            assert termios.tcgetattr(slave)[6][termios.VMIN] == 5
    finally:
        port.request_close()
        os.close(board)
        os.close(slave)
