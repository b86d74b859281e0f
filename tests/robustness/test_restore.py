"""``start = "restore"`` after failed state writes and SIGKILL: never a stale state.

A target that restores its state is switched on a simulated LCUS board (a relay that keeps
its state while the daemon is gone) by a client thread, over and over. Meanwhile the state
file is made unwritable at a random moment, in turn by exhausting the daemon's descriptors
(its RLIMIT_NOFILE lowered to what it holds) and by a read-only state directory (immutable,
which binds root too); the pressure is lifted again or not, and the daemon is SIGKILLed at a
random moment. After each restart the relay must be as the killed daemon left it: restore
either switched it to that very state or, when the file could not be trusted, switched
nothing (and said so). The issue's figure is the count of stale restores in :data:`TRIES`.

A switch whose state cannot be saved first is refused (StateNotSaved) and leaves the relay
alone; a failed write of a target that does not restore is retried until it lands.
"""

from __future__ import annotations

import json
import random
import resource
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from labpower.backends.sim import LcusSimulator
from labpower.client import Client, StateNotSaved
from labpower.client.errors import LabpowerError
from labpower.daemon.state import FILENAME, Remembered, decode, encode
from labpower.daemon.testing import DaemonProcess

from .conftest import exhaust_descriptors, wait_until

TRIES = 50
SEED = 20261207
#: seconds the client switches before the pressure, under it, and after it (uniform)
PHASE = (0.02, 0.15)


@pytest.fixture
def board(tmp_path: Path) -> Iterator[LcusSimulator]:
    sim = LcusSimulator(tmp_path / "tty-bench", channels=2)
    sim.start()
    yield sim
    sim.stop()


def _config(sim: LcusSimulator) -> dict[str, object]:
    return {
        "daemon": {"log_level": "debug"},
        "devices": {
            "bench": {
                "backend": "lcus",
                "port": str(sim.link),
                "channels": 2,
                "timeout": 0.5,
                "gap": 0.0,
                "probe_timeout": 0.2,
            }
        },
        "targets": {
            "dut": {"device": "bench", "channel": 1, "start": "restore"},
            "plain": {"device": "bench", "channel": 2},
        },
    }


def _daemon(sim: LcusSimulator, tmp_path: Path) -> DaemonProcess:
    directory = tmp_path / "daemon"
    directory.mkdir()
    return DaemonProcess(_config(sim), directory=str(directory))


class Pressure:
    """Makes the daemon's state file unwritable, and lifts that again."""

    def __init__(self, daemon: DaemonProcess, readonly: bool) -> None:
        self.daemon = daemon
        self.readonly = readonly
        self.state_dir = daemon.directory / "state"
        self.active = False
        self.limits = (0, 0)

    def apply(self) -> None:
        if self.readonly:
            subprocess.run(["chattr", "+i", str(self.state_dir)], check=True)
        else:
            # every descriptor it may have is taken: opening the temporary file fails
            self.limits = exhaust_descriptors(self.daemon.pid)
        self.active = True

    def lift(self) -> None:
        if not self.active:
            return
        if self.readonly:
            subprocess.run(["chattr", "-i", str(self.state_dir)], check=True)
        elif self.daemon.proc is not None and self.daemon.proc.poll() is None:
            resource.prlimit(self.daemon.pid, resource.RLIMIT_NOFILE, self.limits)
        self.active = False


class Switcher(threading.Thread):
    """Switches ``dut`` on and off until the daemon is gone; counts what happened."""

    def __init__(self, socket_path: str, first: bool) -> None:
        super().__init__(daemon=True)
        self.client = Client(socket_path, timeout=5.0)
        self.next = first
        self.done = 0
        self.refused = 0
        self.client.targets()  # connected before any pressure

    def run(self) -> None:
        try:
            while True:
                try:
                    (self.client.on if self.next else self.client.off)("dut")
                    self.done += 1
                except StateNotSaved:
                    self.refused += 1
                self.next = not self.next
        except (LabpowerError, OSError):
            return  # the daemon was killed
        finally:
            self.client.close()


def _drained(sim: LcusSimulator) -> None:
    """Wait until the simulator has taken every byte sent to it (no event says so)."""
    seen = -1
    while len(sim.received) != seen:
        seen = len(sim.received)
        time.sleep(0.05)


def _restored(stderr: str) -> tuple[int, int]:
    """Start switches of ``dut`` and refusals to restore it, in the log."""
    return stderr.count("start by labpowerd"), stderr.count("start = restore refused for dut")


@pytest.mark.timing
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_restore_never_switches_to_a_stale_state(board: LcusSimulator, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    daemon = _daemon(board, tmp_path)
    stale = refused = 0
    try:
        daemon.start()
        for attempt in range(TRIES):
            pressure = Pressure(daemon, readonly=attempt % 2 == 1)
            switcher = Switcher(daemon.socket_path, rng.random() < 0.5)
            switcher.start()
            try:
                time.sleep(rng.uniform(*PHASE))
                pressure.apply()
                time.sleep(rng.uniform(*PHASE))
                if rng.random() < 0.5:
                    pressure.lift()
                    time.sleep(rng.uniform(*PHASE))
                daemon.signal(signal.SIGKILL)
                assert daemon.proc is not None
                daemon.proc.wait(10)
                switcher.join(10)
            finally:
                pressure.lift()
            refused += switcher.refused
            # a command the daemon wrote just before it died may still be in the pty
            _drained(board)
            left = board.relays[1]  # what the killed daemon left
            before = (daemon.directory / "state" / FILENAME).read_bytes()
            since = len(daemon.stderr())
            daemon.start()
            if board.relays[1] != left:
                stale += 1
                print(f"stale: relay was {left}, file {before!r}:\n{daemon.stderr()[since:]}")
        daemon.stop()
        # counted at the end: the log task writes stderr a moment after READY=1
        restored, distrusted = _restored(daemon.stderr())
    finally:
        daemon.cleanup()
    print(
        f"{TRIES} kills: {stale} stale restores, {restored} restored, {distrusted} refused as "
        f"untrusted, {refused} switches refused (StateNotSaved)"
    )
    assert stale == 0, f"{stale} of {TRIES} restarts switched the relay to a stale state"
    # the pressure really bit, and both outcomes of a restart were seen
    assert refused > 0
    assert restored > 0
    assert distrusted > 0 or restored == TRIES


def test_refused_switch_leaves_the_relay_and_says_why(board: LcusSimulator, tmp_path: Path) -> None:
    daemon = _daemon(board, tmp_path)
    try:
        daemon.start()
        with daemon.client(timeout=10.0) as lab:
            lab.on("dut")
            pressure = Pressure(daemon, readonly=True)
            pressure.apply()
            try:
                with pytest.raises(StateNotSaved) as caught:
                    lab.off("dut")
                assert caught.value.parameters["target"] == "dut"
                assert board.relays[1] is True  # nothing switched
                assert lab.get("dut").state == "on"
                # a target that does not restore is switched; its write fails, and is retried
                lab.on("plain")
            finally:
                pressure.lift()

            def saved() -> bool:
                try:
                    data = (daemon.directory / "state" / FILENAME).read_bytes()
                except FileNotFoundError:
                    return False
                return decode(data)["plain"].state == "on"

            assert wait_until(saved, 10.0), "the failed write was never retried"
            # the log task writes stderr after the replies
            assert wait_until(lambda: "written again" in daemon.stderr(), 10.0)
        stderr = daemon.stderr()
        assert "refused: the state file cannot be written" in stderr
        assert stderr.count("cannot write state file") == 1  # said once, not per retry
        assert "written again" in stderr
    finally:
        daemon.cleanup()


def test_pending_record_is_not_restored(board: LcusSimulator, tmp_path: Path) -> None:
    """A record whose switch never finished saving (as a kill leaves it) is not acted on."""
    daemon = _daemon(board, tmp_path)
    state = daemon.directory / "state"
    state.mkdir()
    (state / FILENAME).write_bytes(
        encode({"dut": Remembered("on", None, 0, 1, None, pending=True)})
    )
    assert json.loads((state / FILENAME).read_bytes())["targets"]["dut"]["pending"] is True
    try:
        daemon.start()
        assert board.relays[1] is False  # not switched on
        assert not board.switches
        assert wait_until(lambda: "start = restore refused for dut" in daemon.stderr(), 10.0)
        with daemon.client(timeout=10.0) as lab:
            assert lab.get("dut").state == "off"  # read back
    finally:
        daemon.cleanup()
