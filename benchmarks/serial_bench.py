"""Serial relay benchmarks: a real ``labpowerd`` child process driving LCUS simulators whose
pty emulates the wire time of 9600 baud, through the sync :class:`Client`.

Figures (see :func:`run`):

- ``switch_readback_median_ms``: one On/Off call (switch frame, status query, status answer).
- ``wire_median_ms``: the part of it the bytes spend on the emulated wire (what any software
  would need at 9600 baud); ``overhead_median_ms`` / ``overhead_p90_ms``: the rest, i.e.
  labpower's own cost (client, varlink, daemon, worker thread, pty). Target: <= 0.3 ms median.
- ``daemon_baseline_ms``: for comparison, a mock-backend On/Off on the same daemon after a
  pause as long as the wire time (the daemon's own wake-up and call cost, no serial code);
  ``serial_extra_ms``: ``overhead_median_ms`` minus it, i.e. what the serial path adds.
- ``backend_overhead_median_ms``: the same switch plus read-back through
  :class:`~labpower.backends.Device` and the LCUS backend in this process, without daemon and
  client: the serial code's own share.
- ``one_board_ms`` / ``eight_boards_ms``: the median time for one board alone, and for eight
  boards switched at once by eight clients; ``eight_boards_ratio``: their quotient.
  Target: <= 1.5.

``python benchmarks/serial_bench.py [--quick]`` prints the figures; ``benchmarks/run.py``
includes them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
from labpower.backends import Device
from labpower.backends.serial.lcus import LcusBackend, LcusOptions
from labpower.backends.sim import LcusSimulator
from labpower.backends.sim.boards import SimDialect
from labpower.client import Client
from labpower.daemon.testing import DaemonProcess

WIRE_BAUD = 9600
CHANNELS = 4
DIALECT: SimDialect = "raw"
#: the targets the figures should meet (lower is better for both)
LIMITS = {"overhead_median_ms": 0.3, "eight_boards_ratio": 1.5}


def _config(boards: Sequence[LcusSimulator]) -> dict[str, Any]:
    devices: dict[str, Any] = {}
    targets: dict[str, Any] = {}
    for i, board in enumerate(boards):
        devices[f"b{i}"] = {
            "backend": "lcus",
            "port": str(board.link),
            "channels": CHANNELS,
            "timeout": 5.0,
            "gap": 0.0,
            "status": DIALECT,
        }
        targets[f"t{i}"] = {"device": f"b{i}", "channel": 1}
    devices["mock"] = {"backend": "mock"}
    targets["mock"] = {"device": "mock", "channel": 1}
    return {"daemon": {"log_level": "warning"}, "devices": devices, "targets": targets}


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def switch_readback(directory: Path, calls: int, warmup: int) -> dict[str, float]:
    """Overhead of one switch plus read-back above its wire time."""
    board = LcusSimulator(
        directory / "lcus0", channels=CHANNELS, wire_baud=WIRE_BAUD, dialect=DIALECT
    )
    board.start()
    (directory / "one").mkdir()
    daemon = DaemonProcess(_config([board]), directory=str(directory / "one"))
    try:
        daemon.start()
        totals: list[float] = []
        wires: list[float] = []
        with daemon.client() as lab:
            for i in range(warmup + calls):
                before = board.wire_time
                started = time.perf_counter()
                target = lab.on("t0") if i % 2 == 0 else lab.off("t0")
                took = time.perf_counter() - started
                if not target.verified:
                    raise RuntimeError(f"switch not verified: {target}")
                if i >= warmup:
                    totals.append(took)
                    wires.append(board.wire_time - before)
            pause = statistics.median(wires)
            baseline: list[float] = []
            for i in range(warmup + calls):
                time.sleep(pause)  # the daemon idles as long as during a switch on the wire
                started = time.perf_counter()
                lab.on("mock") if i % 2 == 0 else lab.off("mock")
                if i >= warmup:
                    baseline.append(time.perf_counter() - started)
        overheads = [t - w for t, w in zip(totals, wires, strict=True)]
    finally:
        daemon.cleanup()
        board.stop()
    return {
        "switch_readback_median_ms": statistics.median(totals) * 1e3,
        "wire_median_ms": statistics.median(wires) * 1e3,
        "overhead_median_ms": statistics.median(overheads) * 1e3,
        "overhead_p90_ms": _percentile(overheads, 0.9) * 1e3,
        "daemon_baseline_ms": statistics.median(baseline) * 1e3,
        "serial_extra_ms": (statistics.median(overheads) - statistics.median(baseline)) * 1e3,
    }


def backend_only(directory: Path, calls: int, warmup: int) -> dict[str, float]:
    """Overhead of the Device + LcusBackend path alone (no daemon, no client)."""
    board = LcusSimulator(
        directory / "lcus-inproc", channels=CHANNELS, wire_baud=WIRE_BAUD, dialect=DIALECT
    )
    options = LcusOptions(port=str(board.link), gap=0.0, status="raw")
    device = Device(LcusBackend("bench", CHANNELS, options, 5.0), 5.0)
    overheads: list[float] = []

    async def measure() -> None:
        for i in range(warmup + calls):
            before = board.wire_time
            started = time.perf_counter()
            if await device.switch(1, i % 2 == 0) is not (i % 2 == 0):
                raise RuntimeError("read-back disagrees")
            took = time.perf_counter() - started
            if i >= warmup:
                overheads.append(took - (board.wire_time - before))
        await device.close()

    board.start()
    try:
        anyio.run(measure)
    finally:
        board.stop()
    return {"backend_overhead_median_ms": statistics.median(overheads) * 1e3}


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
    boards = [
        LcusSimulator(
            directory / f"lcus{i}", channels=CHANNELS, wire_baud=WIRE_BAUD, dialect=DIALECT
        )
        for i in range(8)
    ]
    for board in boards:
        board.start()
    (directory / "eight").mkdir()
    daemon = DaemonProcess(_config(boards), directory=str(directory / "eight"))
    clients: list[Client] = []
    try:
        daemon.start()
        clients = [daemon.client() for _ in boards]
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
        for board in boards:
            board.stop()
    one_ms, eight_ms = statistics.median(one) * 1e3, statistics.median(eight) * 1e3
    return {
        "one_board_ms": one_ms,
        "eight_boards_ms": eight_ms,
        "eight_boards_ratio": eight_ms / one_ms,
    }


def run(quick: bool = False) -> dict[str, float]:
    """Every serial figure (see the module docstring), keyed by name; units in the suffix."""
    calls, warmup, rounds = (200, 20, 20) if quick else (1000, 50, 60)
    with tempfile.TemporaryDirectory(prefix="labpower-serial-bench-") as tmp:
        figures = switch_readback(Path(tmp), calls, warmup)
        figures.update(backend_only(Path(tmp), calls, warmup))
        figures.update(eight_boards(Path(tmp), rounds))
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="fewer calls (a few seconds)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    figures = run(quick=args.quick)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    for key, value in figures.items():
        limit = LIMITS.get(key)
        verdict = "" if limit is None else ("  pass" if value <= limit else "  FAIL")
        target = "" if limit is None else f"  (target <= {limit:g})"
        print(f"{key:28} {value:9.3f}{target}{verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
