"""The simulators answer byte for byte like the boards, over a real pty; and the CLI."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
import tty
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from labpower.backends.sim import LcusSimulator, Switch


class Port:
    """The user side of a simulator's pty, opened raw."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)

    def ask(self, data: bytes, expect: int, timeout: float = 2.0) -> bytes:
        """Send ``data`` and read ``expect`` bytes (fewer if none come within ``timeout``)."""
        os.write(self.fd, data)
        return self.read(expect, timeout)

    def read(self, expect: int, timeout: float = 2.0) -> bytes:
        got = b""
        deadline = time.monotonic() + timeout
        while len(got) < expect:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.fd], [], [], remaining)[0]:
                break
            got += os.read(self.fd, 4096)
        return got

    def close(self) -> None:
        os.close(self.fd)


@contextmanager
def port(path: str | os.PathLike[str]) -> Iterator[Port]:
    p = Port(path)
    try:
        yield p
    finally:
        p.close()


def test_lcus_dialects_answer_the_status_query(boards: Any) -> None:
    expected = {
        "ascii": b"CH1: ON\r\nCH2: OFF\r\n",
        "raw": b"\x01\x00",
        "feedback": bytes.fromhex("a0 01 01 a2 a0 02 00 a2"),
    }
    for dialect, answer in expected.items():
        board = boards("lcus", dialect, channels=2, dialect=dialect)
        with port(board.link) as p:
            os.write(p.fd, bytes.fromhex("a0 01 01 a2"))
            assert p.ask(b"\xff", len(answer)) == answer
        assert board.switches == [Switch(1, True)]


def test_lcus_silent_board_answers_nothing(boards: Any) -> None:
    board = boards("lcus", channels=1, dialect="silent")
    with port(board.link) as p:
        assert p.ask(b"\xff", 1, timeout=0.1) == b""
        os.write(p.fd, bytes.fromhex("a0 01 01 a2"))
        assert board.wait_until(lambda: board.relays[1])


def test_lcus_ignores_bad_checksums_and_noise(boards: Any) -> None:
    board = boards("lcus", channels=2, dialect="raw")
    with port(board.link) as p:
        # wrong checksum, then noise, then a good frame for channel 2
        assert p.ask(bytes.fromhex("a0 01 01 a3 55 a0 02 01 a3 ff"), 2) == b"\x00\x01"
    assert board.switches == [Switch(2, True)]


def test_lcus_feedback_firmware_ops(boards: Any) -> None:
    board = boards("lcus", channels=2, dialect="feedback")
    with port(board.link) as p:
        assert p.ask(bytes.fromhex("a0 01 03 a4"), 4) == bytes.fromhex("a0 01 01 a2")  # on+fb
        assert p.ask(bytes.fromhex("a0 01 04 a5"), 4) == bytes.fromhex("a0 01 00 a1")  # toggle
        assert p.ask(bytes.fromhex("a0 02 05 a7"), 4) == bytes.fromhex("a0 02 00 a2")  # query
    assert board.switches == [Switch(1, True), Switch(1, False)]


def test_numato_echoes_and_prompts(boards: Any) -> None:
    board = boards("numato", channels=16)
    dialogue = [
        (b"relay on A\r", b"relay on A\n\r>"),
        (b"relay read A\r", b"relay read A\n\ron\n\r>"),
        (b"relay readall\r", b"relay readall\n\r0400\n\r>"),
        (b"ver\r", b"ver\n\r00000008\n\r>"),
        (b"relay writeall 0003\r", b"relay writeall 0003\n\r>"),
        (b"bogus\r", b"bogus\n\r>"),
    ]
    with port(board.link) as p:
        for command, answer in dialogue:
            assert p.ask(command, len(answer)) == answer
        assert p.read(1, timeout=0.05) == b""  # and nothing more
    assert board.relays[1]
    assert board.relays[2]
    assert not board.relays[11]
    assert board.switches[0] == Switch(11, True)


def test_kmtronic_status_frames(boards: Any) -> None:
    board = boards("kmtronic", "four", channels=4)
    with port(board.link) as p:
        os.write(p.fd, bytes.fromhex("ff 02 01"))
        assert p.ask(bytes.fromhex("ff 09 00"), 4) == bytes.fromhex("00 01 00 00")
        assert p.ask(bytes.fromhex("ff 02 03"), 3) == bytes.fromhex("ff 02 01")
    small = boards("kmtronic", "two", channels=2)
    with port(small.link) as p:
        assert p.ask(bytes.fromhex("ff 01 03"), 3) == bytes.fromhex("ff 01 00")


def test_devantech_state_byte(boards: Any) -> None:
    board = boards("devantech", channels=8)
    with port(board.link) as p:
        os.write(p.fd, b"\x65\x67")  # relay 1 and 3 on
        assert p.ask(b"\x5b", 1) == b"\x05"
        os.write(p.fd, b"\x5c\x80")  # set all: only relay 8
        assert p.ask(b"\x5b", 1) == b"\x80"
        assert p.ask(b"\x5a", 2) == b"\x08\x01"
    assert board.switches[:2] == [Switch(1, True), Switch(3, True)]


def test_wire_time_is_emulated(boards: Any) -> None:
    board = boards("lcus", channels=4, dialect="raw", wire_baud=9600)
    with port(board.link) as p:
        started = time.monotonic()
        assert p.ask(b"\xff", 4) == bytes(4)
        took = time.monotonic() - started
    wire = 5 * 10 / 9600  # one byte out, four back
    assert took >= wire
    assert board.wire_time == pytest.approx(wire)


def test_faults(boards: Any) -> None:
    board = boards("lcus", channels=2, dialect="raw")
    with port(board.link) as p:
        board.hang()
        assert p.ask(b"\xff", 1, timeout=0.1) == b""
        board.heal()
        board.garble()
        assert p.ask(b"\xff", 3) == b"Z\r\n"
        board.heal()
        board.ignore_next_switch()
        assert p.ask(bytes.fromhex("a0 01 01 a2 ff"), 2) == b"\x00\x00"
        assert p.ask(bytes.fromhex("a0 01 01 a2 ff"), 2) == b"\x01\x00"
    assert board.switches == [Switch(1, True), Switch(1, True)]
    assert bytes(board.received).count(b"\xff") == 4


def test_drop_removes_the_link_and_come_back_restores_it(boards: Any) -> None:
    board = boards("devantech", channels=2)
    link = Path(board.link)
    with port(link) as p:
        os.write(p.fd, b"\x65")
        assert board.wait_until(lambda: board.relays[1])
        board.drop()
        assert not link.exists()
        with pytest.raises(OSError, match="Input/output error"):  # the other side is gone
            os.write(p.fd, b"\x5b")
    assert board.relays[1] is False  # the relays lost power
    board.come_back()
    with port(link) as p:
        assert p.ask(b"\x5b", 1) == b"\x00"


def test_simulator_refuses_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"1\.\.8 channels"):
        LcusSimulator(tmp_path / "x", channels=9)
    with pytest.raises(ValueError, match="dialect"):
        LcusSimulator(tmp_path / "x", dialect="loud")  # type: ignore[arg-type]  # on purpose


def test_cli_runs_a_board_until_interrupted(tmp_path: Path) -> None:
    link = tmp_path / "lcus0"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "labpower.backends.sim.cli",
            "lcus",
            "--link",
            str(link),
            "--channels",
            "2",
            "--dialect",
            "raw",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()  # printed once the link exists
        assert f"linked at {link}" in banner
        assert "2 relays" in banner
        with port(link) as p:
            os.write(p.fd, bytes.fromhex("a0 02 01 a3"))
            assert p.ask(b"\xff", 2) == b"\x00\x01"
        assert proc.stdout.readline() == "lcus: channel 2 on\n"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
        assert not link.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_cli_refuses_bad_arguments(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "labpower.backends.sim.cli",
            "numato",
            "--link",
            str(tmp_path / "n"),
            "--dialect",
            "raw",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "--dialect applies to lcus only" in done.stderr
