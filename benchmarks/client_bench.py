"""The client's figures: the round trip with and without polling on either side, against
Jumpstarter's in-process power driver; the ``labpower`` command's start; the decoder.

- ``round trip, no spin``: one blocking ``Client`` alternates On/Off on one mock target of a
  real ``labpowerd`` (as the core round trip), with polling nowhere on the path: the daemon's
  loop sleeps when idle and the client sleeps in ``recv`` (both defaults). Median and p99,
  and the client's and the daemon's CPU time per call (user and system).
- ``with the client's spin``: the same with ``Client(busy_wait=SUGGESTED_BUSY_WAIT)``;
  ``with the daemon's spin too``: the daemon's event loop also polls when idle (as it did
  by default before; ``Labpowerd(spin=...)``). What each trade buys, and costs in CPU.
- ``Jumpstarter``: ``jumpstarter.common.utils.serve(MockPower())``, the driver and its client
  in one process (Jumpstarter's own way to run a driver locally), ``on()``/``off()``
  alternating, measured in the same run; the ratio is its median over ours (no spin).
- ``labpower on``: the command against a running daemon, wall time from spawn to exit,
  median of several runs, from cached bytecode (as installed); beside it ``python -c pass``
  and ``python -c "import labpower.client"`` in the same conditions.
- ``decoder``: the CPU time to decode one 1 MiB message fed in 256-byte pieces.
- ``daemon Python calls per On/Off``: the daemon's per-call work counted rather than timed
  (a count does not move with the machine's load): the function calls cProfile sees in a
  daemon that served ``N + 200`` calls, minus one that served 200, over ``N``.
"""

from __future__ import annotations

import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from labpower.client import Client
from labpower.client.timing import SUGGESTED_BUSY_WAIT
from labpower.client.wire import MAX_MESSAGE_SIZE, Decoder, Reply, encode

from benchmarks.harness import Figure, Labpowerd, percentile

#: the daemon's idle spin of the "with the daemon's spin" rows (its old default)
DAEMON_SPIN = 100e-6
TARGET = "t0"
LAB = """
[devices.bench]
backend = "mock"
channels = 4

[targets.t0]
device = "bench"
channel = 1
"""


def _round_trips(
    call: Callable[[bool], object], warmup: int, calls: int
) -> tuple[list[float], float]:
    """Microseconds per call (alternating on and off), and the caller's CPU us per call."""
    for i in range(warmup):
        call(i % 2 == 1)
    clock = time.perf_counter_ns
    ns: list[int] = []
    cpu = time.process_time()
    for i in range(calls):
        began = clock()
        call(i % 2 == 1)
        ns.append(clock() - began)
    cpu_us = (time.process_time() - cpu) / calls * 1e6
    return [n / 1000 for n in ns], cpu_us


def _client_rows(
    daemon: Labpowerd, key: str, label: str, busy_wait: float, sizes: tuple[int, int]
) -> tuple[list[Figure], float]:
    daemon_cpu = daemon.cpu_seconds()
    with Client(daemon.socket, busy_wait=busy_wait) as client:
        us, cpu = _round_trips(lambda on: client.on(TARGET) if on else client.off(TARGET), *sizes)
    # warm-up calls included: the daemon's time is read around the whole run
    daemon_us = (daemon.cpu_seconds() - daemon_cpu) / sum(sizes) * 1e6
    median = statistics.median(us)
    limits = (90.0, 250.0) if key == "rt_nospin" else (None, None)
    return [
        Figure(f"{key}_median_us", f"On/Off round trip {label}, median", median, "us", limits[0]),
        Figure(f"{key}_p99_us", f"  {label}: p99", percentile(us, 99), "us", limits[1]),
        Figure(f"{key}_client_cpu_us", f"  {label}: client CPU per call", cpu, "us"),
        Figure(f"{key}_daemon_cpu_us", f"  {label}: daemon CPU per call", daemon_us, "us"),
    ], median


def _jumpstarter(sizes: tuple[int, int]) -> float:
    """Median us of On/Off through Jumpstarter's in-process serve(MockPower())."""
    from jumpstarter.common.utils import serve
    from jumpstarter_driver_power.driver import MockPower

    # MockPower leaves some of the interface abstract; Jumpstarter itself instantiates it so
    with serve(MockPower()) as client:  # type: ignore[abstract]
        us, _ = _round_trips(lambda on: client.on() if on else client.off(), *sizes)
    return statistics.median(us)


def _bytecode_env(directory: Path) -> dict[str, str]:
    """Run from cached bytecode, as an installed command does (even where the environment
    disables writing it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABPOWER_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(directory / "pycache")
    return env


def _wall_ms(command: list[str], env: dict[str, str], runs: int) -> float:
    """Median wall milliseconds from spawn to exit (after one run that fills the cache)."""
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1e3


def _start_rows(path: str, directory: Path, runs: int) -> list[Figure]:
    env = _bytecode_env(directory)
    env["LABPOWER_SOCKET"] = path
    labpower = [sys.executable, "-m", "labpower.client.cli"]
    script = shutil.which("labpower", path=os.path.dirname(sys.executable))
    if script is not None:
        labpower = [script]
    return [
        Figure(
            "cli_on_ms",
            "`labpower on TARGET` against a running daemon (wall)",
            _wall_ms([*labpower, "on", TARGET], env, runs),
            "ms",
            25.0,
        ),
        Figure(
            "import_client_ms",
            "  `python -c 'import labpower.client'` (wall)",
            _wall_ms([sys.executable, "-c", "import labpower.client"], env, runs),
            "ms",
        ),
        Figure(
            "python_pass_ms",
            "  `python -c pass` (wall)",
            _wall_ms([sys.executable, "-c", "pass"], env, runs),
            "ms",
        ),
    ]


def _profiled_calls(config: Path, directory: Path, switches: int) -> int:
    """Function calls (cProfile) of a daemon that started, served ``switches`` On/Off
    calls from one client and stopped."""
    stats_file = directory / "daemon.prof"
    daemon = Labpowerd(config, directory, profile=stats_file)
    daemon.start()
    try:
        with Client(daemon.socket) as client:
            for i in range(switches):
                client.on(TARGET) if i % 2 else client.off(TARGET)
    finally:
        daemon.stop()
    return int(pstats.Stats(str(stats_file)).total_calls)  # type: ignore[attr-defined]


def _calls_per_switch(config: Path, directory: Path, switches: int) -> float:
    """Python function calls in the daemon per On/Off (start and stop subtracted)."""
    base = 200
    more = _profiled_calls(config, directory, base + switches)
    return (more - _profiled_calls(config, directory, base)) / switches


def _decoder_ms() -> float:
    """CPU milliseconds to decode a 1 MiB message fed in 256-byte pieces (best of 5)."""
    data = encode(Reply({"blob": "x" * (MAX_MESSAGE_SIZE - 64)}))
    pieces = [data[i : i + 256] for i in range(0, len(data), 256)]
    best = float("inf")
    for _ in range(5):
        decoder = Decoder()
        began = time.process_time()
        for piece in pieces:
            decoder.feed(piece)
        best = min(best, time.process_time() - began)
    return best * 1e3


def figures(quick: bool = False) -> list[Figure]:
    """Every figure above. :raises RuntimeError: the daemon failed to start."""
    sizes = (300, 2000) if quick else (2000, 10000)
    jump_sizes = (20, 200) if quick else (100, 1000)
    runs = 7 if quick else 21
    directory = Path(tempfile.mkdtemp(prefix="labpower-client-bench-"))
    rows: list[Figure] = []
    try:
        config = directory / "lab.toml"
        config.write_text(LAB)
        daemon = Labpowerd(config, directory)
        daemon.start()
        try:
            nospin, ours = _client_rows(daemon, "rt_nospin", "(no spin anywhere)", 0.0, sizes)
            client_spin, _ = _client_rows(
                daemon,
                "rt_client_spin",
                "with the client's spin",
                SUGGESTED_BUSY_WAIT,
                sizes,
            )
            rows += nospin + client_spin
            rows += _start_rows(daemon.socket, directory, runs)
        finally:
            daemon.stop()
        spinning = Labpowerd(config, directory, spin=DAEMON_SPIN)
        spinning.start()
        try:
            both, _ = _client_rows(
                spinning,
                "rt_both_spin",
                "with the daemon's spin too",
                SUGGESTED_BUSY_WAIT,
                sizes,
            )
            rows += both
        finally:
            spinning.stop()
        theirs = _jumpstarter(jump_sizes)
        rows += [
            Figure(
                "jumpstarter_median_us",
                "Jumpstarter serve(MockPower()) On/Off, median",
                theirs,
                "us",
            ),
            Figure(
                "jumpstarter_ratio",
                "  its median over ours (no spin)",
                theirs / ours,
                "x",
                8.0,
                "higher",
            ),
            Figure(
                "daemon_calls_per_switch",
                "daemon Python function calls per On/Off (cProfile)",
                _calls_per_switch(config, directory, 1000 if quick else 4000),
                "calls",
            ),
            Figure(
                "decoder_1mib_cpu_ms",
                "decoder: 1 MiB message in 256-byte pieces, CPU",
                _decoder_ms(),
                "ms",
                5.0,
            ),
        ]
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return rows
