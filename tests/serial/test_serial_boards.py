"""Every serial backend through the real daemon and client, against its simulator on a pty."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from labpower.backends.sim import PtySimulator, Switch
from labpower.client import Client
from labpower.client.errors import (
    DeviceUnavailable,
    LabpowerError,
    StateMismatch,
    Timeout,
    VarlinkError,
)
from labpower.client.wire import Call

POWER = "io.labpower.Power"
TIMEOUT = 0.5  # every device's deadline in these tests
HANG_TIMEOUT = 1.0  # the deadline where a test measures it: long enough to tell from load


def test_on_off_switch_the_relay_and_read_it_back(
    kind: str, boards: Any, serial_config: Any, start_daemon: Any
) -> None:
    board = boards(kind)
    daemon = start_daemon(serial_config({"a": board}, timeout=TIMEOUT))
    with daemon.client() as lab:
        on = lab.on("a1")
        assert (on.state, on.verified, on.available) == ("on", True, True)
        assert board.relays[1] is True
        off = lab.off("a1")
        assert (off.state, off.verified) == ("off", True)
        assert board.relays[1] is False
        assert lab.on("a2").is_on
    assert board.switches == [Switch(1, True), Switch(1, False), Switch(2, True)]


def test_cycle_switches_off_then_on(
    kind: str, boards: Any, serial_config: Any, start_daemon: Any
) -> None:
    board = boards(kind)
    daemon = start_daemon(serial_config({"a": board}, timeout=TIMEOUT))
    with daemon.client() as lab:
        lab.on("a3")
        after = lab.cycle("a3", delay=0.05)
    assert (after.state, after.verified) == ("on", True)
    assert board.switches == [Switch(3, True), Switch(3, False), Switch(3, True)]


def test_state_is_read_from_the_board(
    kind: str, boards: Any, serial_config: Any, start_daemon: Any
) -> None:
    board = boards(kind)
    daemon = start_daemon(serial_config({"a": board}, timeout=TIMEOUT))
    board.relays[2] = True  # switched behind the daemon's back (a button, another tool)
    with daemon.client() as lab:
        # what the daemon knows (read back at start) until asked to read the board again
        assert lab.get("a2").state == "off"
        got = lab.call(Call(f"{POWER}.Get", {"target": "a2", "refresh": True}))["target"]
        assert (got["state"], got["verified"]) == ("on", True)
        board.relays[3] = True
        listed = {
            t["name"]: (t["state"], t["verified"])
            for t in lab.call(Call(f"{POWER}.List", {"refresh": True}))["targets"]
        }
    assert listed["a1"] == ("off", True)
    assert listed["a3"] == ("on", True)
    assert board.switches == []


def test_board_that_ignores_a_command_is_a_state_mismatch(
    kind: str, boards: Any, serial_config: Any, start_daemon: Any
) -> None:
    board = boards(kind)
    daemon = start_daemon(serial_config({"a": board}, timeout=TIMEOUT))
    board.ignore_next_switch()
    with daemon.client() as lab:
        with pytest.raises(StateMismatch) as caught:
            lab.on("a1")
        assert caught.value.parameters == {"target": "a1", "expected": "on", "actual": "off"}
        got = lab.get("a1")
        assert (got.state, got.verified) == ("off", True)
        assert lab.on("a1").is_on  # the relay works again
    assert board.relays[1] is True


@pytest.mark.timing
def test_hung_board_times_out_at_the_deadline_and_others_keep_switching(
    kind: str, boards: Any, serial_config: Any, start_daemon: Any
) -> None:
    hung, other = boards(kind, "hung"), boards(kind, "other")
    daemon = start_daemon(serial_config({"h": hung, "o": other}, timeout=HANG_TIMEOUT))
    hung.hang()
    outcome: dict[str, Any] = {}

    def call_hung_board() -> None:
        with daemon.client() as lab:
            started = time.monotonic()
            try:
                lab.on("h1")
            except LabpowerError as exc:
                outcome["error"] = exc
            outcome["seconds"] = time.monotonic() - started

    caller = threading.Thread(target=call_hung_board)
    caller.start()
    assert hung.wait_until(lambda: len(hung.received) > 0)  # the daemon is talking to it
    slowest, switched = 0.0, 0
    with daemon.client() as lab:
        while caller.is_alive():
            started = time.monotonic()
            lab.on("o1") if switched % 2 == 0 else lab.off("o1")
            slowest = max(slowest, time.monotonic() - started)
            switched += 1
        caller.join()
        error = outcome["error"]
        assert isinstance(error, Timeout), error
        assert error.parameters == {"target": "h1", "seconds": HANG_TIMEOUT}
        assert HANG_TIMEOUT <= outcome["seconds"] < HANG_TIMEOUT + 0.8
        # the other board never waited for the hung one (that would take ~HANG_TIMEOUT)
        assert switched >= 3
        assert slowest < HANG_TIMEOUT / 2
        hung.heal()
        back = lab.on("h1")  # the port was closed after the timeout and opens again
        assert (back.state, back.verified) == ("on", True)
    assert hung.relays[1] is True


def test_garbled_answer_fails_the_call(
    kind: str, boards: Any, serial_config: Any, start_daemon: Any
) -> None:
    board = boards(kind)
    daemon = start_daemon(serial_config({"a": board}, timeout=TIMEOUT))
    board.garble()
    with daemon.client() as lab:
        with pytest.raises(VarlinkError) as caught:
            lab.on("a1")
        # recognised as garbage (not waited out until a Timeout)
        assert caught.value.name == "io.labpower.Power.DeviceError"
        got = lab.get("a1")
        assert got.state == "unknown" or not got.verified
        board.heal()
        assert lab.on("a1").verified


def test_board_that_drops_off_is_unavailable_and_works_again_when_back(
    kind: str, boards: Any, serial_config: Any, start_daemon: Any
) -> None:
    board = boards(kind)
    daemon = start_daemon(serial_config({"a": board}, timeout=TIMEOUT))
    with daemon.client() as lab:
        assert lab.on("a1").verified
        board.drop()
        with pytest.raises(DeviceUnavailable) as caught:
            lab.off("a1")
        assert caught.value.parameters["device"] == "a"
        with pytest.raises(DeviceUnavailable):  # still gone: the port does not open
            lab.off("a1")
        assert not lab.get("a1").available
        board.come_back()
        back = lab.on("a1")
        assert (back.state, back.verified, back.available) == ("on", True, True)
    assert board.relays[1] is True
    assert daemon.proc is not None
    assert daemon.proc.poll() is None


def _no_new_switches(board: PtySimulator, before: list[Switch]) -> None:
    assert board.switches == before, f"switched unasked: {board.switches[len(before) :]}"


def test_restarting_the_daemon_switches_nothing(
    kind: str, boards: Any, serial_config: Any, start_daemon: Any
) -> None:
    board = boards(kind)
    config = serial_config({"a": board}, timeout=TIMEOUT)
    first = start_daemon(config)
    with first.client() as lab:
        lab.on("a1")
        lab.on("a3")
        lab.off("a3")
    switched = list(board.switches)
    relays = dict(board.relays)
    assert first.stop() == 0
    _no_new_switches(board, switched)

    second = start_daemon(config)  # opens the port (LCUS: asks its status once)
    _no_new_switches(board, switched)
    with second.client() as lab:
        got = lab.get("a1")
        assert (got.state, got.verified) == ("on", True)
        states = {t.name: t.state for t in lab.targets()}
    assert states == {"a1": "on", "a2": "off", "a3": "off", "a4": "off"} | {
        f"a{ch}": "off" for ch in range(5, board.channels + 1)
    }
    assert second.stop() == 0
    _no_new_switches(board, switched)
    assert board.relays == relays


@pytest.mark.parametrize("dialect", ["ascii", "raw", "feedback", "silent"])
def test_lcus_status_dialect_is_detected(
    dialect: str, boards: Any, serial_config: Any, start_daemon: Any
) -> None:
    board = boards("lcus", channels=2, dialect=dialect)
    daemon = start_daemon(serial_config({"a": board}, timeout=TIMEOUT))
    # detection, and the read-back right after start, asked the status: nothing else
    assert bytes(board.received) in (b"\xff", b"\xff\xff")
    assert board.switches == []
    silent = dialect == "silent"
    with daemon.client() as lab:
        on = lab.on("a2")
        assert on.state == "on"
        assert on.verified is not silent
        got = lab.get("a1")
        # a silent board cannot tell: never invent a state
        assert (got.state, got.verified) == (("unknown", False) if silent else ("off", True))
    assert board.wait_until(lambda: board.switches == [Switch(2, True)])
    assert board.relays == {1: False, 2: True}


def test_client_sees_the_same_through_a_second_connection(
    boards: Any, serial_config: Any, start_daemon: Any
) -> None:
    board = boards("numato", channels=16)
    daemon = start_daemon(serial_config({"n": board}, timeout=TIMEOUT))
    with daemon.client() as lab, Client(daemon.socket_path) as other:
        lab.on("n16")
        assert other.get("n16").verified
        assert other.get("n16").is_on
    assert board.relays[16] is True
    assert b"relay on F\r" in board.received
