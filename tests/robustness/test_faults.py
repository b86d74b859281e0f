"""Faults: SIGKILL the daemon in the middle of operations on simulated serial boards, and a
board that hangs.

The kill test drives five simulated boards of four kinds (two LCUS read-back dialects,
KMTronic, Numato, Devantech) through the real ``labpowerd`` with one client thread per board,
each recording every switching command it sent and whether the daemon confirmed it. The daemon
is SIGKILLed at random moments (seeded) 50 times and restarted each time on the same socket
path (stale after a SIGKILL) and state directory, with the default start policy ``keep``.
Afterwards:

- every switching command a simulator received is one a client sent for that board, in order
  (confirmed calls must all be there; calls cut off by a kill may or may not have arrived), so
  no restart, open, read or read-back ever produced a switching byte;
- after each restart the daemon reports every target as its board's relay, verified, and its
  history of that run holds no ``start`` switch and no error;
- after a clean stop the persisted state file agrees with the relays.

The hang test makes one board stop answering: its call fails with Timeout at its deadline,
while calls to other boards keep completing quickly during that time.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from labpower.backends.sim import (
    DevantechSimulator,
    KmtronicSimulator,
    LcusSimulator,
    NumatoSimulator,
    PtySimulator,
    Switch,
)
from labpower.client import Client
from labpower.client.errors import DaemonUnreachable, Timeout, VarlinkError
from labpower.daemon.state import FILENAME, decode
from labpower.daemon.testing import DaemonProcess

KILLS = 50
SEED = 20240507
#: every device's deadline in the kill test, seconds
TIMEOUT = 0.5
#: how long the drivers run between a restart and the next kill, seconds (uniform)
RUN_TIME = (0.02, 0.2)
#: the least share of kills that must land while a call was in flight
INTERRUPTED_SHARE = 0.6
#: the hung board's deadline, and the margin its Timeout may come after it (a loaded CI box)
HANG_TIMEOUT = 1.0
HANG_MARGIN = 0.3
#: the longest a call to a healthy board may take while another board hangs
FAST_CALL = 0.3

MakeBoard = Callable[..., PtySimulator]


@pytest.fixture
def boards(tmp_path: Path) -> Iterator[MakeBoard]:
    """``boards(cls, name, **options)``: a started simulator linked at tmp_path/tty-NAME;
    stopped after the test."""
    made: list[PtySimulator] = []

    def make(cls: type[PtySimulator], name: str, **options: Any) -> PtySimulator:
        sim = cls(tmp_path / f"tty-{name}", **options)
        made.append(sim)
        return sim.start()

    yield make
    for sim in made:
        sim.stop()


def lab_config(boards: Mapping[str, PtySimulator], timeouts: Mapping[str, float]) -> dict[str, Any]:
    """Device NAME on each simulator (fast options), targets NAME1, NAME2, ... on its
    channels, every one with the default start policy (keep)."""
    devices: dict[str, Any] = {}
    targets: dict[str, Any] = {}
    for name, sim in boards.items():
        device: dict[str, Any] = {
            "backend": sim.kind,
            "port": str(sim.link),
            "channels": sim.channels,
            "timeout": timeouts[name],
        }
        if sim.kind == "lcus":
            device |= {"gap": 0.0, "probe_timeout": 0.2}
        devices[name] = device
        for ch in range(1, sim.channels + 1):
            targets[f"{name}{ch}"] = {"device": name, "channel": ch}
    return {"daemon": {"log_level": "debug"}, "devices": devices, "targets": targets}


@dataclass(frozen=True, slots=True)
class Sent:
    """One switching command a client sent: relay ``channel`` to ``on``; ``confirmed`` when
    the daemon replied success (so the board surely got it)."""

    channel: int
    on: bool
    confirmed: bool


class Gate:
    """Lets the drivers run while the daemon is up; they park at it once it is gone."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.open = True
        self.stopping = False
        self.parked = 0
        #: calls the drivers completed
        self.calls = 0

    def close(self) -> None:
        with self.cond:
            self.open = False
            self.parked = 0

    def reopen(self) -> None:
        with self.cond:
            self.open = True
            self.cond.notify_all()

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()

    def park(self) -> None:
        """Wait (after a call found the daemon gone) until it is back."""
        with self.cond:
            self.parked += 1
            self.cond.notify_all()
            self.cond.wait_for(lambda: self.open or self.stopping)

    def wait_parked(self, count: int, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.parked >= count, timeout)

    def completed(self) -> None:
        """A driver's call got its reply."""
        with self.cond:
            self.calls += 1
            self.cond.notify_all()

    def wait_calls(self, count: int, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.calls >= count, timeout)


class Driver(threading.Thread):
    """Keeps calling On/Off/Cycle/Get/List on the targets of one board through its own
    Client, and records every switching command it sent."""

    def __init__(
        self, device: str, channels: int, socket_path: str, gate: Gate, rng: random.Random
    ) -> None:
        super().__init__(name=f"driver-{device}", daemon=True)
        self.device = device
        self.channels = channels
        self.client = Client(socket_path, timeout=10.0)
        self.gate = gate
        self.rng = rng
        self.sent: list[Sent] = []
        self.errors: list[VarlinkError] = []
        #: time.monotonic() at which the last call cut off by the daemon's death was made
        self.cut_off_at = 0.0

    def run(self) -> None:
        try:
            while not self.gate.stopping:
                self._one_call()
        finally:
            self.client.close()

    def _one_call(self) -> None:
        rng = self.rng
        channel = rng.randint(1, self.channels)
        target = f"{self.device}{channel}"
        roll = rng.random()
        commands: list[bool] = []
        call: Callable[[], object]
        if roll < 0.7:
            on = rng.random() < 0.5
            commands = [on]
            call = (lambda: self.client.on(target)) if on else (lambda: self.client.off(target))
        elif roll < 0.8:
            commands = [False, True]
            call = lambda: self.client.cycle(target, delay=0.01)  # noqa: E731
        elif roll < 0.9:
            call = lambda: self.client.get(target)  # noqa: E731
        else:
            call = self.client.targets
        started = time.monotonic()
        try:
            call()
        except DaemonUnreachable:
            self.sent += [Sent(channel, on, False) for on in commands]
            self.cut_off_at = started
            self.gate.park()
            return
        except VarlinkError as exc:
            self.sent += [Sent(channel, on, False) for on in commands]
            self.errors.append(exc)
            return
        self.sent += [Sent(channel, on, True) for on in commands]
        self.gate.completed()


def unexplained_switch(received: list[Switch], sent: list[Sent]) -> str | None:
    """None if ``received`` is a subsequence of ``sent`` that holds every confirmed command;
    else what breaks it."""
    reachable = {0}  # how many received switches the sent commands so far can account for
    for i, s in enumerate(sent):
        step = {j + 1 for j in reachable if j < len(received) and received[j] == (s.channel, s.on)}
        if not s.confirmed:
            step |= reachable
        if not step:
            best = max(reachable)
            return (
                f"command #{i} {s} was confirmed, but the board's switch #{best} is "
                f"{received[best : best + 1]}: sent by no client, or out of order"
            )
        reachable = step
    if len(received) in reachable:
        return None
    best = max(reachable)
    return f"the board's switches from #{best} on, {received[best : best + 3]}, no client sent"


def test_the_switch_check_tells_what_clients_sent_from_what_they_did_not() -> None:
    on1, off1, on2 = Sent(1, True, True), Sent(1, False, True), Sent(2, True, True)
    cut_off = Sent(2, False, False)  # the daemon died with it in flight
    assert unexplained_switch([Switch(1, True), Switch(1, False)], [on1, off1]) is None
    assert unexplained_switch([Switch(1, True)], [on1, cut_off]) is None
    assert unexplained_switch([Switch(1, True), Switch(2, False)], [on1, cut_off]) is None
    assert unexplained_switch([Switch(2, True)], [Sent(2, True, False), on2]) is None
    assert unexplained_switch([Switch(1, True)], [on1, off1]) is not None  # one lost
    assert unexplained_switch([Switch(1, False), Switch(1, True)], [on1, off1]) is not None
    extra = [Switch(1, True), Switch(3, False), Switch(1, False)]
    assert unexplained_switch(extra, [on1, off1]) is not None  # e.g. one sent at an open
    assert unexplained_switch([*extra[:2]], [on1]) is not None


def relay_state(sim: PtySimulator, channel: int) -> str:
    return "on" if sim.relays[channel] else "off"


def check_daemon_agrees(lab: Client, sims: Mapping[str, PtySimulator], when: str) -> None:
    """The daemon reports every target as its relay, verified; its history of this run holds
    no switch at start and no error."""
    got = {t.name: (t.state, t.verified, t.available) for t in lab.targets()}
    want = {
        f"{name}{ch}": (relay_state(sim, ch), True, True)
        for name, sim in sims.items()
        for ch in sim.relays
    }
    assert got == want, f"{when}: the daemon's view differs from the boards"
    entries = lab.history()
    started = [e for e in entries if (e.extra or {}).get("op") == "start"]
    assert started == [], f"{when}: the daemon switched at start: {started}"
    bad = [e for e in entries if e.level in ("error", "critical")]
    assert bad == [], f"{when}: the daemon logged errors: {bad}"


@pytest.mark.timing
@pytest.mark.slow
@pytest.mark.timeout(240)  # 51 daemon starts: ~20 s here, several times that on a busy box
def test_sigkill_mid_operation_never_switches_anything_nobody_asked_for(
    boards: MakeBoard, tmp_path: Path
) -> None:
    sims: dict[str, PtySimulator] = {
        "ascii": boards(LcusSimulator, "ascii", channels=4, dialect="ascii"),
        "feedback": boards(LcusSimulator, "feedback", channels=2, dialect="feedback"),
        "kmt": boards(KmtronicSimulator, "kmt", channels=4),
        "numato": boards(NumatoSimulator, "numato", channels=4),
        "dev": boards(DevantechSimulator, "dev", channels=4),
    }
    config = lab_config(sims, dict.fromkeys(sims, TIMEOUT))
    rng = random.Random(SEED)
    (tmp_path / "daemon").mkdir()
    daemon = DaemonProcess(config, directory=str(tmp_path / "daemon"))
    gate = Gate()
    drivers = [
        Driver(name, sim.channels, daemon.socket_path, gate, random.Random(rng.random()))
        for name, sim in sims.items()
    ]
    interrupted = 0
    try:
        daemon.start()
        for driver in drivers:
            driver.start()
        resumed_at = time.monotonic()
        for kill in range(1, KILLS + 1):
            # the drivers are under way again (a call each, on average), then a random
            # moment later the kill
            assert gate.wait_calls(gate.calls + len(drivers), 10.0), "the drivers are stuck"
            time.sleep(rng.uniform(*RUN_TIME))  # not a wait for anything: the kill's moment
            gate.close()
            killed_at = time.monotonic()
            assert daemon.proc is not None
            daemon.proc.kill()
            daemon.proc.wait()
            assert gate.wait_parked(len(drivers), 10.0), "a driver did not notice the kill"
            interrupted += any(resumed_at <= d.cut_off_at <= killed_at for d in drivers)
            daemon.start()  # the socket file the killed daemon left is stale now
            with daemon.client(timeout=10.0) as lab:
                check_daemon_agrees(lab, sims, f"after kill {kill}")
            if kill < KILLS:
                resumed_at = time.monotonic()
                gate.reopen()
        gate.stop()
        for driver in drivers:
            driver.join(10.0)
            assert not driver.is_alive()
        assert daemon.stop() == 0, daemon.stderr()
    finally:
        gate.stop()
        daemon.cleanup()

    assert interrupted >= INTERRUPTED_SHARE * KILLS, f"only {interrupted} kills cut a call off"
    for driver in drivers:
        sim = sims[driver.device]
        assert driver.errors == [], f"{driver.device}: calls failed"
        assert sum(s.confirmed for s in driver.sent) >= 50, f"{driver.device}: too few switches"
        problem = unexplained_switch(sim.switches, driver.sent)
        assert problem is None, f"{driver.device}: {problem}"

    state = tmp_path / "daemon" / "state"
    # temporary files of writes that kills cut short were cleaned up at the restarts
    assert [p.name for p in state.iterdir()] == [FILENAME]
    persisted = decode((state / FILENAME).read_bytes())
    assert {name: r.state for name, r in persisted.items()} == {
        f"{name}{ch}": relay_state(sim, ch) for name, sim in sims.items() for ch in sim.relays
    }


@pytest.mark.timing
@pytest.mark.slow
def test_hung_board_times_out_at_its_deadline_while_others_keep_switching(
    boards: MakeBoard, tmp_path: Path
) -> None:
    sims: dict[str, PtySimulator] = {
        "hung": boards(KmtronicSimulator, "hung", channels=4),
        "lcus": boards(LcusSimulator, "lcus", channels=4, dialect="raw"),
        "dev": boards(DevantechSimulator, "dev", channels=4),
    }
    config = lab_config(sims, {"hung": HANG_TIMEOUT, "lcus": TIMEOUT, "dev": TIMEOUT})
    (tmp_path / "daemon").mkdir()
    daemon = DaemonProcess(config, directory=str(tmp_path / "daemon"))
    try:
        daemon.start()
        with daemon.client(timeout=10.0) as lab, daemon.client(timeout=10.0) as other:
            assert lab.on("hung1").is_on
            hung = sims["hung"]
            hung.hang()
            outcome: list[tuple[BaseException | None, float]] = []

            def hung_call() -> None:
                started = time.monotonic()
                try:
                    lab.off("hung1")
                except BaseException as exc:
                    outcome.append((exc, time.monotonic() - started))
                else:
                    outcome.append((None, time.monotonic() - started))

            thread = threading.Thread(target=hung_call)
            thread.start()
            # the hung call is in flight once its switching command reached the board
            assert hung.wait_until(lambda: len(hung.switches) == 2)
            fast: list[float] = []
            for i in range(8):
                target, on = ("lcus", "dev")[i % 2] + str(i // 2 + 1), i % 3 != 0
                started = time.monotonic()
                reply = other.on(target) if on else other.off(target)
                fast.append(time.monotonic() - started)
                assert (reply.state, reply.verified) == ("on" if on else "off", True)
            assert thread.is_alive(), "the other boards' calls did not overlap the hang"
            thread.join(HANG_TIMEOUT + 5)
            [(error, took)] = outcome
            assert isinstance(error, Timeout), f"the hung call did not time out: {error!r}"
            assert error.parameters == {"target": "hung1", "seconds": HANG_TIMEOUT}
            assert HANG_TIMEOUT - 0.01 <= took <= HANG_TIMEOUT + HANG_MARGIN
            assert max(fast) < FAST_CALL, f"calls to healthy boards took {fast}"
            assert hung.relays[1] is True  # a hung board acts on nothing

            hung.heal()
            after = lab.get("hung1")
            assert (after.state, after.verified) == ("on", True)
            assert lab.off("hung1").state == "off"
            assert hung.relays[1] is False
        assert daemon.stop() == 0, daemon.stderr()
    finally:
        daemon.cleanup()
    assert sims["hung"].switches == [Switch(1, True), Switch(1, False), Switch(1, False)]
    assert sims["lcus"].switches == [
        Switch(1, False),
        Switch(2, True),
        Switch(3, True),
        Switch(4, False),
    ]
