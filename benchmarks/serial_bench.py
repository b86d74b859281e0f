"""Serial relay benchmarks: a real ``labpowerd`` child process driving LCUS simulators whose
pty emulates the wire time of 9600 baud, through the sync :class:`Client`. The simulators run
in a process of their own, as a board is not in the test script's process (a simulator thread
sharing the client's interpreter lock would add its own waits to the figures).

Figures (see :func:`run`):

- ``switch_readback_median_ms``: one On/Off call (switch frame, status query, status answer).
- ``wire_median_ms``: the part of it the bytes spend on the emulated wire (what any software
  would need at 9600 baud); ``overhead_median_ms`` / ``overhead_p90_ms``: all the rest
  (client, varlink, daemon, serial port handling, and the rig: pty and simulator).
  Target: <= 0.3 ms median, with the rig's share counted against labpower.
- ``overhead_client_spin_median_ms``: the same with the client polling for its reply
  (``Client(busy_wait=SUGGESTED_BUSY_WAIT)``, off by default);
  ``overhead_no_port_poll_median_ms``: the same (client not polling) with a daemon that does
  not poll for the board's answer either, but sleeps until the kernel reports it: what that
  polling, the one kept on by default (``labpower.backends.timing``), buys.
- ``daemon_baseline_ms``: for comparison, a mock-backend On/Off on the same daemon after a
  pause as long as the wire time: what a call costs a daemon that was idle (it cannot know
  when the call comes, whereas it knows when a board's answer is due).
- ``rig_floor_median_ms``: the same exchange without labpower, by a plain loop that writes
  to the pty and polls for the answer without ever sleeping: the test rig's own share of the
  overhead (the pty's hops through the kernel, the simulator's reaction), which no software
  could avoid on this machine; ``own_overhead_median_ms``: ``overhead_median_ms`` minus it.
- ``backend_overhead_median_ms``: the same switch plus read-back through
  :class:`~labpower.backends.Device` and the LCUS backend in this process (on the daemon's
  event loop), without daemon and client: the serial code's own share.
- ``timer_late_median_ms`` / ``timer_late_asyncio_median_ms``: how late a timer fires (the
  moment a board's answer is due, a cycle's off time) on labpowerd's event loop, and on
  asyncio's default loop for comparison, over timers spread across the millisecond.
- ``one_board_ms`` / ``eight_boards_ms``: the median time for one board alone, and for eight
  boards switched at once by eight clients; ``eight_boards_ratio``: their quotient.
  Target: <= 1.5.

``python benchmarks/serial_bench.py [--quick]`` prints the figures; ``benchmarks/run.py``
includes them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
import tty
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
from labpower.backends import Device
from labpower.backends.serial.lcus import STATUS_QUERY, LcusBackend, LcusOptions, switch_frame
from labpower.backends.sim import LcusSimulator
from labpower.backends.sim.boards import SimDialect
from labpower.client import Client
from labpower.client.timing import SUGGESTED_BUSY_WAIT
from labpower.daemon.eventloop import backend_options, new_event_loop
from labpower.daemon.testing import DaemonProcess

WIRE_BAUD = 9600
#: the bytes of one switch with read-back: switch frame (4), status query (1), answer (4)
CALL_WIRE_TIME = (4 + 1 + 4) * 10 / WIRE_BAUD
CHANNELS = 4
DIALECT: SimDialect = "raw"
#: the simulators keep listening this long after each command (see PtySimulator.listen)
LISTEN = 0.005
#: the targets the figures should meet (lower is better for both)
LIMITS = {"overhead_median_ms": 0.3, "eight_boards_ratio": 1.5}


def _config(links: Sequence[Path]) -> dict[str, Any]:
    devices: dict[str, Any] = {}
    targets: dict[str, Any] = {}
    for i, link in enumerate(links):
        devices[f"b{i}"] = {
            "backend": "lcus",
            "port": str(link),
            "channels": CHANNELS,
            "timeout": 5.0,
            "gap": 0.0,
            "status": DIALECT,
        }
        targets[f"t{i}"] = {"device": f"b{i}", "channel": 1}
    devices["mock"] = {"backend": "mock"}
    targets["mock"] = {"device": "mock", "channel": 1}
    return {"daemon": {"log_level": "warning"}, "devices": devices, "targets": targets}


def _serve_boards(conn: Any, links: list[str]) -> None:
    """The simulator process: boards at ``links`` until told to stop; reports wire times."""
    boards = [
        LcusSimulator(link, channels=CHANNELS, wire_baud=WIRE_BAUD, dialect=DIALECT)
        for link in links
    ]
    for board in boards:
        board.listen = LISTEN
        board.start()
    try:
        conn.send("ready")
        while conn.recv() == "wire":
            conn.send([board.wire_time for board in boards])
    finally:
        for board in boards:
            board.stop()


class SimulatorProcess:
    """LCUS simulators at ``links``, in a child process (see the module docstring)."""

    def __init__(self, links: Sequence[Path]) -> None:
        self.links = list(links)
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve_boards, args=(child, [str(link) for link in links]), daemon=True
        )

    def start(self) -> SimulatorProcess:
        self._process.start()
        if not self._conn.poll(60) or self._conn.recv() != "ready":
            raise RuntimeError("the simulator process did not start")
        return self

    def wire_times(self) -> list[float]:
        """Wire time each board emulated so far, seconds."""
        self._conn.send("wire")
        times: list[float] = self._conn.recv()
        return times

    def stop(self) -> None:
        if self._process.is_alive():
            self._conn.send("stop")
            self._process.join(10)
        self._conn.close()


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


#: ``python -c`` this, then ``labpower.daemon`` and its arguments: the daemon without its
#: polling for a serial answer (labpower.backends.timing), for the row that shows what the
#: polling buys.
_NO_PORT_POLL = """
import runpy, sys
from labpower.backends import timing
timing.SERIAL_POLL_BEFORE = timing.SERIAL_POLL_AFTER = 0.0
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


def _switch_times(
    lab: Client, board: SimulatorProcess, calls: int, warmup: int
) -> tuple[list[float], float]:
    """Seconds of each On/Off with read-back, and the wire time of one (checked)."""
    totals: list[float] = []
    for i in range(warmup + calls):
        if i == warmup:
            before = board.wire_times()[0]
        started = time.perf_counter()
        target = lab.on("t0") if i % 2 == 0 else lab.off("t0")
        took = time.perf_counter() - started
        if not target.verified:
            raise RuntimeError(f"switch not verified: {target}")
        if i >= warmup:
            totals.append(took)
    # every call moves the same bytes (switch frame, status query, status answer), so each
    # took the same wire time
    wire = (board.wire_times()[0] - before) / calls
    if not math.isclose(wire, CALL_WIRE_TIME, rel_tol=1e-6):
        raise RuntimeError(f"a call moved {wire * 1e3:.3f} ms of bytes, not 9.375")
    return totals, wire


def switch_readback(directory: Path, calls: int, warmup: int) -> dict[str, float]:
    """Overhead of one switch plus read-back above its wire time: as configured by default,
    with the client's spin, and without the daemon's polling for the answer."""
    board = SimulatorProcess([directory / "lcus0"]).start()
    (directory / "one").mkdir()
    (directory / "nopoll").mkdir()
    daemon = DaemonProcess(_config(board.links), directory=str(directory / "one"))
    try:
        daemon.start()
        with daemon.client() as lab:
            totals, wire = _switch_times(lab, board, calls, warmup)
            pause = wire
            baseline: list[float] = []
            for i in range(warmup + calls):
                time.sleep(pause)  # the daemon idles as long as during a switch on the wire
                started = time.perf_counter()
                lab.on("mock") if i % 2 == 0 else lab.off("mock")
                if i >= warmup:
                    baseline.append(time.perf_counter() - started)
        with Client(daemon.socket_path, busy_wait=SUGGESTED_BUSY_WAIT) as lab:
            spinning, _ = _switch_times(lab, board, calls, warmup)
        daemon.cleanup()
        daemon = DaemonProcess(
            _config(board.links),
            directory=str(directory / "nopoll"),
            launcher=("-c", _NO_PORT_POLL),
        )
        daemon.start()
        with daemon.client() as lab:
            unpolled, _ = _switch_times(lab, board, calls, warmup)
    finally:
        daemon.cleanup()
        board.stop()
    overheads = [t - wire for t in totals]
    return {
        "switch_readback_median_ms": statistics.median(totals) * 1e3,
        "wire_median_ms": wire * 1e3,
        "overhead_median_ms": statistics.median(overheads) * 1e3,
        "overhead_p90_ms": _percentile(overheads, 0.9) * 1e3,
        "overhead_client_spin_median_ms": (statistics.median(spinning) - wire) * 1e3,
        "overhead_no_port_poll_median_ms": (statistics.median(unpolled) - wire) * 1e3,
        "daemon_baseline_ms": statistics.median(baseline) * 1e3,
    }


def exchange_spinning(fd: int, command: bytes, size: int) -> bytes:
    """Write ``command`` to the non-blocking ``fd`` and poll, never sleeping, until ``size``
    bytes came back: the fastest exchange this machine can do, for a rig's floor. Between two
    looks it gives the CPU away, as the daemon's polling does: on two cores a loop that never
    does starves the simulator (and the kernel's tty worker) it waits for."""
    os.write(fd, command)
    answer = b""
    while len(answer) < size:
        try:
            answer += os.read(fd, 64)
        except BlockingIOError:
            os.sched_yield()
    return answer


def rig_floor(directory: Path, calls: int, warmup: int) -> dict[str, float]:
    """The same exchange without labpower: a plain loop writes the switch frame and the
    status query to the simulator's pty and polls, never sleeping, for the answer. What that
    takes above the wire time belongs to the rig (the pty's hops through the kernel, the
    simulator waking up): no software on this machine could do the exchange faster."""
    board = SimulatorProcess([directory / "lcus-raw"]).start()
    fd = os.open(board.links[0], os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    overheads: list[float] = []
    try:
        tty.setraw(fd)
        for i in range(warmup + calls):
            command = switch_frame(1, i % 2 == 0) + STATUS_QUERY
            started = time.perf_counter()
            answer = exchange_spinning(fd, command, CHANNELS)
            took = time.perf_counter() - started
            if answer[0] != (i % 2 == 0):
                raise RuntimeError(f"the simulator answered {answer.hex(' ')}")
            if i >= warmup:
                overheads.append(took - CALL_WIRE_TIME)
    finally:
        os.close(fd)
        board.stop()
    return {"rig_floor_median_ms": statistics.median(overheads) * 1e3}


def backend_only(directory: Path, calls: int, warmup: int) -> dict[str, float]:
    """Overhead of the Device + LcusBackend path alone (no daemon, no client)."""
    board = SimulatorProcess([directory / "lcus-inproc"])
    options = LcusOptions(port=str(board.links[0]), gap=0.0, status="raw")
    device = Device(LcusBackend("bench", CHANNELS, options, 5.0), 5.0)
    totals: list[float] = []
    before = 0.0

    async def measure() -> None:
        for i in range(warmup + calls):
            started = time.perf_counter()
            if await device.switch(1, i % 2 == 0) is not (i % 2 == 0):
                raise RuntimeError("read-back disagrees")
            if i >= warmup:
                totals.append(time.perf_counter() - started)
            if i == warmup - 1:
                nonlocal before
                before = board.wire_times()[0]
        await device.close()

    board.start()
    try:
        anyio.run(measure, backend_options=backend_options("asyncio"))  # the daemon's loop
        wire = (board.wire_times()[0] - before) / calls
    finally:
        board.stop()
    return {"backend_overhead_median_ms": (statistics.median(totals) - wire) * 1e3}


def _round(clients: Sequence[Client], on: bool) -> float:
    """Switch target i through client i, all at once; seconds until the last is done."""
    start = threading.Barrier(len(clients) + 1)
    errors: list[BaseException] = []

    def switch(i: int, lab: Client) -> None:
        start.wait()
        try:
            target = lab.on(f"t{i}") if on else lab.off(f"t{i}")
            if not target.verified:
                raise RuntimeError(f"switch not verified: {target}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=switch, args=(i, lab)) for i, lab in enumerate(clients)]
    for t in threads:
        t.start()
    start.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    took = time.perf_counter() - started
    if errors:
        raise errors[0]
    return took


def eight_boards(directory: Path, rounds: int) -> dict[str, float]:
    """Eight boards switched at once against one board alone, on the same daemon."""
    boards = SimulatorProcess([directory / f"lcus{i}" for i in range(8)]).start()
    (directory / "eight").mkdir()
    daemon = DaemonProcess(_config(boards.links), directory=str(directory / "eight"))
    clients: list[Client] = []
    try:
        daemon.start()
        clients = [daemon.client() for _ in boards.links]
        for lab in clients:
            lab.connect()
        one: list[float] = []
        eight: list[float] = []
        for i in range(rounds + 2):  # the first two of each warm up
            on = i % 2 == 0
            single = _round(clients[:1], on)
            both = _round(clients, on)
            if i >= 2:
                one.append(single)
                eight.append(both)
    finally:
        for lab in clients:
            lab.close()
        daemon.cleanup()
        boards.stop()
    one_ms, eight_ms = statistics.median(one) * 1e3, statistics.median(eight) * 1e3
    return {
        "one_board_ms": one_ms,
        "eight_boards_ms": eight_ms,
        "eight_boards_ratio": eight_ms / one_ms,
    }


def timer_lateness(timers: int) -> dict[str, float]:
    """Median lateness of ``timers`` timers, 2-5.7 ms ahead, on each loop."""

    def late(loop: asyncio.AbstractEventLoop) -> float:
        lateness: list[float] = []

        async def measure() -> None:
            for i in range(timers):
                fired = loop.create_future()
                due = loop.time() + 0.002 + (i % 10) * 0.00037
                loop.call_at(due, fired.set_result, None)
                await fired
                lateness.append(loop.time() - due)

        try:
            loop.run_until_complete(measure())
        finally:
            loop.close()
        return statistics.median(lateness) * 1e3

    return {
        "timer_late_median_ms": late(new_event_loop()),
        "timer_late_asyncio_median_ms": late(asyncio.new_event_loop()),
    }


def run(quick: bool = False) -> dict[str, float]:
    """Every serial figure (see the module docstring), keyed by name; units in the suffix."""
    calls, warmup, rounds = (200, 20, 20) if quick else (1000, 50, 60)
    with tempfile.TemporaryDirectory(prefix="labpower-serial-bench-") as tmp:
        figures = switch_readback(Path(tmp), calls, warmup)
        figures.update(rig_floor(Path(tmp), calls, warmup))
        figures["own_overhead_median_ms"] = (
            figures["overhead_median_ms"] - figures["rig_floor_median_ms"]
        )
        figures.update(backend_only(Path(tmp), calls, warmup))
        figures.update(eight_boards(Path(tmp), rounds))
    figures.update(timer_lateness(100 if quick else 300))
    return figures


def cli(
    argv: Sequence[str] | None,
    run: Callable[..., dict[str, float]],
    limits: dict[str, float],
    doc: str | None,
) -> int:
    """The command line of a benchmark module: ``[--quick] [--json]``, figures printed
    against ``limits``."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0] if doc else None)
    ap.add_argument("--quick", action="store_true", help="fewer calls (a few seconds)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    figures = run(quick=args.quick)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    for key, value in figures.items():
        limit = limits.get(key)
        verdict = "" if limit is None else ("  pass" if value <= limit else "  FAIL")
        target = "" if limit is None else f"  (target <= {limit:g})"
        print(f"{key:28} {value:9.3f}{target}{verdict}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli(argv, run, LIMITS, __doc__)


if __name__ == "__main__":
    sys.exit(main())
