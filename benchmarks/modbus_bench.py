"""Modbus RTU benchmark: a real ``labpowerd`` child process driving a Modbus RTU coil board
simulator (:class:`~labpower.backends.sim.modbus.ModbusRtuSimulator`, in a process of its own)
whose pty emulates the wire time of 9600 baud, through the sync :class:`Client`.

- ``switch_readback_median_ms``: one On/Off call: write single coil (05, 8 bytes) and its
  echo (8), then read coils (01, 8 bytes) and its answer (6).
- ``wire_median_ms``: the part of it the bytes spend on the emulated wire, plus the silent
  interval RTU requires between the echo and the next request (3.5 characters): what any
  master needs at 9600 baud. ``overhead_median_ms`` / ``overhead_p90_ms``: all the rest
  (client, varlink, daemon, pymodbus framing, serial port handling, pty and simulator).
  Target: <= 0.3 ms median, like the other serial boards.
- ``overhead_client_spin_median_ms``: the same with the client polling for its reply
  (``Client(busy_wait=SUGGESTED_BUSY_WAIT)``, off by default), as the serial boards' row.
- ``daemon_baseline_median_ms``: a mock target's On/Off through the same daemon and client,
  called at the same pace: the share of the client, varlink and the daemon, which any
  backend pays.
- ``backend_overhead_median_ms``: the backend alone (set, then get), in this process on the
  daemon's event loop, above wire time and silent interval: the Modbus share.
- ``pymodbus_us``: of that, pymodbus's own work per call (build both request frames, decode
  both answers: CPU, no I/O).
- ``rig_floor_median_ms``: the same two exchanges without labpower, by a loop that writes the
  frames to the simulator's pty and polls for the answers (giving the CPU away between two
  looks, like the daemon's polling): the rig's own share (pty hops through the kernel's
  worker, the simulator waking); ``own_overhead_median_ms``: the overhead minus it.

``python benchmarks/modbus_bench.py [--quick]`` prints the figures.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import tty
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labpower.backends.modbus.backend import ModbusBackend, silent_interval
from labpower.backends.modbus.options import ModbusOptions
from labpower.backends.modbus.protocol import Codec
from labpower.backends.sim.modbus import ModbusRtuSimulator
from labpower.client import Client
from labpower.client.timing import SUGGESTED_BUSY_WAIT
from labpower.daemon.eventloop import new_event_loop
from labpower.daemon.testing import DaemonProcess

HERE = Path(__file__).resolve().parent
# Run as a script: make ``benchmarks`` importable as a package (as benchmarks/run.py does).
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from benchmarks.serial_bench import cli, exchange_spinning  # noqa: E402 - needs the path set above

WIRE_BAUD = 9600
#: bytes on the wire of one switch with read-back, both directions
CALL_BYTES = 8 + 8 + 8 + 6
CALL_WIRE_TIME = CALL_BYTES * 10 / WIRE_BAUD
LIMITS = {"overhead_median_ms": 0.3}
#: the simulator keeps listening this long after each command (see PtySimulator.listen)
LISTEN = 0.005


def _serve(conn: Any, link: str) -> None:
    board = ModbusRtuSimulator(link, channels=8, wire_baud=WIRE_BAUD)
    board.listen = LISTEN
    board.start()
    try:
        conn.send("ready")
        while conn.recv() == "wire":
            conn.send(board.wire_time)
    finally:
        board.stop()


def _calls(lab: Client, target: str, calls: int, warmup: int) -> list[float]:
    """Seconds of each On/Off call after the warm-up, one silent interval apart."""
    totals: list[float] = []
    for i in range(warmup + calls):
        # RTU's silent interval after the previous call's last frame is the bus's, not this
        # call's: let it pass, as a caller that switches now and then does
        time.sleep(silent_interval(WIRE_BAUD))
        started = time.perf_counter()
        result = lab.on(target) if i % 2 == 0 else lab.off(target)
        took = time.perf_counter() - started
        if not result.verified:
            raise RuntimeError(f"switch not verified: {result}")
        if i >= warmup:
            totals.append(took)
    return totals


def switch_readback(directory: Path, calls: int, warmup: int) -> dict[str, float]:
    """Overhead of one Modbus RTU switch plus read-back above its wire time, with and without
    the client's spin, and a mock target's call through the same daemon."""
    link = directory / "modbus0"
    sim, conn = _simulator(link)
    config = {
        "daemon": {"log_level": "warning"},
        "devices": {
            "coils": {"backend": "modbus", "port": str(link), "baudrate": WIRE_BAUD, "channels": 8},
            "mock": {"backend": "mock"},
        },
        "targets": {
            "t0": {"device": "coils", "channel": 1},
            "mock": {"device": "mock", "channel": 1},
        },
    }
    (directory / "daemon").mkdir()
    daemon = DaemonProcess(config, directory=str(directory / "daemon"))
    try:
        daemon.start()
        with daemon.client() as lab:
            _calls(lab, "t0", 0, warmup)
            conn.send("wire")
            before = conn.recv()
            totals = _calls(lab, "t0", calls, 0)
            conn.send("wire")
            moved = (conn.recv() - before) / calls
            baseline = _calls(lab, "mock", calls, warmup)
        with Client(daemon.socket_path, busy_wait=SUGGESTED_BUSY_WAIT) as lab:
            spinning = _calls(lab, "t0", calls, warmup)
        if not math.isclose(moved, CALL_WIRE_TIME, rel_tol=1e-6):
            raise RuntimeError(f"a call moved {moved * 1e3:.3f} ms of bytes, not the 30 expected")
        wire = moved + silent_interval(WIRE_BAUD)
    finally:
        daemon.cleanup()
        conn.send("stop")
        sim.join(10)
        conn.close()
    overheads = [t - wire for t in totals]
    return {
        "switch_readback_median_ms": statistics.median(totals) * 1e3,
        "wire_median_ms": wire * 1e3,
        "overhead_median_ms": statistics.median(overheads) * 1e3,
        "overhead_p90_ms": statistics.quantiles(overheads, n=10)[-1] * 1e3,
        "overhead_client_spin_median_ms": (statistics.median(spinning) - wire) * 1e3,
        "daemon_baseline_median_ms": statistics.median(baseline) * 1e3,
    }


def backend_alone(directory: Path, calls: int, warmup: int) -> dict[str, float]:
    """The backend without the daemon: ``set`` then ``get`` on the daemon's event loop in
    this process, against the same simulator; and pymodbus's CPU time per call."""
    link = directory / "modbus-direct"
    sim, conn = _simulator(link)
    gap = silent_interval(WIRE_BAUD)

    async def measure() -> list[float]:
        board = ModbusBackend("coils", 8, ModbusOptions(port=str(link), baudrate=WIRE_BAUD))
        await board.open()
        overheads: list[float] = []
        try:
            for i in range(warmup + calls):
                await asyncio.sleep(gap)  # the bus's silent interval, as in the daemon's run
                started = time.perf_counter()
                await board.set(1, i % 2 == 0)
                state = await board.get(1)
                took = time.perf_counter() - started
                if state != (i % 2 == 0):
                    raise RuntimeError(f"coil 1 read back {state} after switching")
                if i >= warmup:
                    overheads.append(took - CALL_WIRE_TIME - gap)
        finally:
            await board.close()
        return overheads

    loop = new_event_loop()
    try:
        overheads = loop.run_until_complete(measure())
    finally:
        loop.close()
        conn.send("stop")
        sim.join(10)
        conn.close()
    return {
        "backend_overhead_median_ms": statistics.median(overheads) * 1e3,
        "pymodbus_us": _pymodbus_cpu() * 1e6,
    }


def _pymodbus_cpu(rounds: int = 2000) -> float:
    """Seconds of CPU pymodbus takes per call: both request frames built, both answers
    decoded (the answers as the simulator frames them)."""
    codec = Codec("rtu", 1)
    board = ModbusRtuSimulator(channels=8)  # its parser only: never started
    (_, coils_answer) = board.handle(codec.read_coils(0, 1).frame)[0]
    started = time.process_time()
    for _ in range(rounds):
        write = codec.write_coil(0, False)
        codec.decode(write, write.frame)  # the board echoes a write
        read = codec.read_coils(0, 1)
        codec.decode(read, coils_answer)
    return (time.process_time() - started) / rounds


def _simulator(link: Path) -> tuple[Any, Any]:
    """The simulator in a process of its own: (its process, the pipe to it), once ready.

    :raises RuntimeError: it did not start.
    """
    context = multiprocessing.get_context("spawn")
    conn, child = context.Pipe()
    sim = context.Process(target=_serve, args=(child, str(link)), daemon=True)
    sim.start()
    if not conn.poll(60) or conn.recv() != "ready":
        raise RuntimeError("the simulator process did not start")
    return sim, conn


def rig_floor(directory: Path, calls: int, warmup: int) -> dict[str, float]:
    """The same two exchanges without labpower: a plain loop writes each frame to the
    simulator's pty, polls for the answer without ever sleeping, and spins through the
    silent interval. What that takes above the wire time and the interval belongs to the rig
    (the pty's hops through the kernel, the simulator waking up)."""
    sim, conn = _simulator(directory / "modbus-raw")
    codec = Codec("rtu", 1)
    frames = [
        [(codec.write_coil(0, on).frame, 8), (codec.read_coils(0, 1).frame, 6)]
        for on in (True, False)
    ]
    fd = os.open(directory / "modbus-raw", os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    gap = silent_interval(WIRE_BAUD)
    overheads: list[float] = []
    try:
        tty.setraw(fd)
        for i in range(warmup + calls):
            time.sleep(gap)
            started = time.perf_counter()
            for n, (frame, size) in enumerate(frames[i % 2]):
                if n:
                    quiet = time.perf_counter() + gap
                    while time.perf_counter() < quiet:
                        os.sched_yield()
                answer = exchange_spinning(fd, frame, size)
                if n == 0 and answer != frame:
                    raise RuntimeError(f"the simulator answered {answer.hex(' ')}, not the echo")
            took = time.perf_counter() - started
            if i >= warmup:
                overheads.append(took - CALL_WIRE_TIME - gap)
    finally:
        os.close(fd)
        conn.send("stop")
        sim.join(10)
        conn.close()
    return {"rig_floor_median_ms": statistics.median(overheads) * 1e3}


def run(quick: bool = False) -> dict[str, float]:
    """Every Modbus figure, keyed by name; units in the suffix."""
    # quick: a part of run.py --quick, which must stay short (each call is 35 ms of wire)
    calls, warmup = (20, 3) if quick else (300, 30)
    with tempfile.TemporaryDirectory(prefix="labpower-modbus-bench-") as tmp:
        figures = switch_readback(Path(tmp), calls, warmup)
        figures.update(backend_alone(Path(tmp), calls, warmup))
        figures.update(rig_floor(Path(tmp), calls, warmup))
    figures["own_overhead_median_ms"] = (
        figures["overhead_median_ms"] - figures["rig_floor_median_ms"]
    )
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    return cli(argv, run, LIMITS, __doc__)


if __name__ == "__main__":
    sys.exit(main())
