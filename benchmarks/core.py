"""The core benchmarks of labpower: a real ``labpowerd`` child process on the mock backend,
driven by clients in processes of their own.

Figures (see :func:`run`): the On/Off round trip through the sync :class:`Client`, the total
rate of 32 concurrent clients on 64 targets, the time from spawning the daemon to its first
answered call with 256 targets, the daemon's memory, and the loss and delivery latency of
log entries streamed to 20 subscribers.
"""

from __future__ import annotations

import math
import multiprocessing
import multiprocessing.synchronize
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any, cast

from labpower.client import Client, DaemonUnreachable
from labpower.client.wire import Call
from labpower.daemon.testing import to_toml

from benchmarks.harness import (
    FORK,
    WORKER_TIMEOUT,
    Figure,
    Labpowerd,
    Messages,
    children,
    collect,
    percentile,
    wait_barrier,
)

POWER = "io.labpower.Power"
#: Channels per mock board: the size of the common 4-channel relay boards.
CHANNELS = 4


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much work each benchmark does."""

    round_trip_warmup: int
    round_trip_calls: int
    clients: int
    client_targets: int
    throughput_seconds: float
    starts: int
    start_targets: int
    subscribers: int
    entries: int
    #: entries per second the producer holds while latency is measured
    log_rate: float

    @classmethod
    def full(cls) -> Sizes:
        return cls(
            round_trip_warmup=2000,
            round_trip_calls=10000,
            clients=32,
            client_targets=64,
            throughput_seconds=5.0,
            starts=9,
            start_targets=256,
            subscribers=20,
            entries=10000,
            log_rate=1000.0,
        )

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            round_trip_warmup=200,
            round_trip_calls=2000,
            clients=32,
            client_targets=64,
            throughput_seconds=1.0,
            starts=3,
            start_targets=256,
            subscribers=20,
            entries=1000,
            log_rate=1000.0,
        )


def target_names(count: int) -> list[str]:
    return [f"t{i:03d}" for i in range(count)]


def mock_lab(targets: int) -> dict[str, Any]:
    """A config mapping: ``targets`` mock targets ``t000``... on 4-channel mock boards."""
    boards = math.ceil(targets / CHANNELS)
    return {
        "daemon": {"log_level": "info"},
        "devices": {
            f"board{b:02d}": {"backend": "mock", "channels": CHANNELS} for b in range(boards)
        },
        "targets": {
            name: {"device": f"board{i // CHANNELS:02d}", "channel": i % CHANNELS + 1}
            for i, name in enumerate(target_names(targets))
        },
    }


# -- round trip


def round_trip(path: str, target: str, sizes: Sizes) -> list[Figure]:
    """Alternate On and Off on one target through one sync client, one call at a time."""
    with Client(path) as client:
        for i in range(sizes.round_trip_warmup):
            (client.on if i % 2 else client.off)(target)
        ns: list[int] = []
        clock = time.perf_counter_ns
        for i in range(sizes.round_trip_calls):
            call = client.on if i % 2 else client.off
            began = clock()
            call(target)
            ns.append(clock() - began)
    us = [n / 1000 for n in ns]
    return [
        Figure(
            "round_trip_median_us", "On/Off round trip, median", statistics.median(us), "us", 100.0
        ),
        Figure("round_trip_p99_us", "On/Off round trip, p99", percentile(us, 99), "us", 500.0),
    ]


# -- many clients


def _switcher(
    index: int,
    out: Messages,
    path: str,
    targets: list[str],
    barrier: multiprocessing.synchronize.Barrier,
    seconds: float,
) -> tuple[int, float, float, float]:
    """Switch ``targets`` for ``seconds``; return the calls made, when it began and ended,
    and the CPU time it used."""
    with Client(path) as client:
        for name in targets:  # warm: connected, and every target in a known state
            client.off(name)
        barrier.wait(WORKER_TIMEOUT)
        cpu = time.process_time()
        began = now = time.perf_counter()  # CLOCK_MONOTONIC: comparable across processes
        end = began + seconds
        done = 0
        while now < end:
            for name in targets:
                client.on(name)
                client.off(name)
            done += 2 * len(targets)
            now = time.perf_counter()
    return done, began, now, time.process_time() - cpu


def throughput(daemon: Labpowerd, sizes: Sizes) -> list[Figure]:
    """``clients`` processes switch their own share of the targets as fast as they can.

    Also says where the CPU went: the daemon's share of one core, and CPU per call in the
    daemon and in the clients (on 2 cores, both compete for the same CPUs).
    """
    names = target_names(sizes.client_targets)
    shares = [names[i :: sizes.clients] for i in range(sizes.clients)]
    barrier = FORK.Barrier(sizes.clients + 1)
    arglists = [(daemon.socket, share, barrier, sizes.throughput_seconds) for share in shares]
    with children(_switcher, arglists) as out:
        wait_barrier(barrier, out)
        cpu, began = daemon.cpu_seconds(), time.perf_counter()
        results = collect(out, "result", sizes.clients)
        daemon_cpu = daemon.cpu_seconds() - cpu
        elapsed = time.perf_counter() - began
    done = sum(r[0] for r in results.values())
    wall = max(r[2] for r in results.values()) - min(r[1] for r in results.values())
    client_cpu = sum(r[3] for r in results.values())
    return [
        Figure(
            "throughput_ops_per_s",
            f"{sizes.clients} clients on {sizes.client_targets} targets, total",
            done / wall,
            "ops/s",
            10000.0,
            "higher",
        ),
        Figure(
            "throughput_daemon_cpu_pct",
            "  daemon CPU use meanwhile (of one core)",
            daemon_cpu / elapsed * 100,
            "%",
        ),
        Figure(
            "throughput_daemon_cpu_us",
            "  daemon CPU per call",
            daemon_cpu / done * 1e6,
            "us",
        ),
        Figure(
            "throughput_client_cpu_us",
            "  client CPU per call",
            client_cpu / done * 1e6,
            "us",
        ),
    ]


# -- start-up and memory


def _start_once(config: Path, directory: Path, bytecode_cache: bool) -> tuple[float, float]:
    """Milliseconds from spawning the daemon to READY=1, and to its first answered call."""
    daemon = Labpowerd(config, directory, bytecode_cache=bytecode_cache)
    try:
        began = time.perf_counter()
        up = daemon.start()
        with Client(daemon.socket) as client:
            client.get("t000")
        answered = time.perf_counter() - began
    finally:
        daemon.stop()
    return up * 1000, answered * 1000


def startup(directory: Path, sizes: Sizes) -> list[Figure]:
    """Spawn the daemon with ``start_targets`` targets ``starts`` times; time READY=1 and the
    first answered call. Once more before, compiling every module from source."""
    config = directory / "startup.toml"
    config.write_text(to_toml(mock_lab(sizes.start_targets)))
    _, uncached = _start_once(config, directory, bytecode_cache=False)
    _start_once(config, directory, bytecode_cache=True)  # writes the bytecode cache
    ready: list[float] = []
    first_call: list[float] = []
    for _ in range(sizes.starts):
        up, answered = _start_once(config, directory, bytecode_cache=True)
        ready.append(up)
        first_call.append(answered)
    n = sizes.start_targets
    return [
        Figure(
            "start_to_first_call_ms",
            f"start to first answered call, {n} targets (median)",
            statistics.median(first_call),
            "ms",
            200.0,
        ),
        Figure(
            "start_to_ready_ms",
            f"start to READY=1, {n} targets (median)",
            statistics.median(ready),
            "ms",
        ),
        Figure(
            "start_uncached_ms",
            "start to first answered call, no bytecode cache",
            uncached,
            "ms",
        ),
    ]


# -- log streaming


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one subscriber saw of the entries it had to see."""

    received: int
    missing: int
    duplicates: int
    dropped_notices: int
    latencies_ms: list[float]


def _subscriber(
    index: int,
    out: Messages,
    path: str,
    first: Synchronized[int],
    last: Synchronized[int],
    done: multiprocessing.synchronize.Barrier,
) -> Delivery:
    seen: list[tuple[int, float, str, str]] = []
    with Client(path, timeout=30.0) as client:
        # Client.stream is a generator function (typed as an Iterator): close() ends the call
        replies = cast(
            "Generator[dict[str, Any], None, None]",
            client.stream(Call(f"{POWER}.Logs", {}, more=True)),
        )
        try:
            if next(replies):  # the first reply carries no entry: the subscription is live
                raise RuntimeError("Logs started with an entry, not the empty reply")
            out.put(("ready", index, None))
            wall = time.time
            for params in replies:
                received = wall()
                entry = params["entry"]
                seq = entry["seq"]
                seen.append((seq, received, entry["time"], entry["message"]))
                stop = last.value
                if stop and seq >= stop:
                    break
        except DaemonUnreachable as exc:
            if "no reply in time" not in exc.reason:
                raise  # a silent stream ends the wait; anything else is a failure
        finally:
            replies.close()
    try:  # the work below must not steal the CPU from subscribers still receiving
        done.wait(WORKER_TIMEOUT)
    except threading.BrokenBarrierError:
        pass  # another subscriber failed; it reports why
    low, high = first.value, last.value
    wanted = [s for s in seen if low <= s[0] <= high and "entries dropped" not in s[3]]
    seqs = {s[0] for s in wanted}
    parse = datetime.fromisoformat
    return Delivery(
        received=len(seqs),
        missing=high - low + 1 - len(seqs),
        duplicates=len(wanted) - len(seqs),
        dropped_notices=sum("entries dropped" in s[3] for s in seen),
        latencies_ms=[(got - parse(stamp).timestamp()) * 1000 for _, got, stamp, _ in wanted],
    )


def _producer(
    index: int,
    out: Messages,
    path: str,
    targets: list[str],
    go: multiprocessing.synchronize.Event,
    first: Synchronized[int],
    last: Synchronized[int],
    rate: float,
) -> tuple[int, float]:
    with Client(path) as client:
        go.wait(WORKER_TIMEOUT)
        began = time.perf_counter()
        calls = seq = 0
        base, stop = first.value - 1, last.value
        while seq < stop:
            name = targets[calls % len(targets)]
            member = "Off" if (calls // len(targets)) % 2 else "On"
            seq = client.call(Call(f"{POWER}.{member}", {"target": name}))["log_seq"]
            calls += 1
            if rate:  # hold the entry rate: sleep until the entries made so far are due
                wait = began + (seq - base) / rate - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
        return calls, time.perf_counter() - began


def _log_pass(path: str, sizes: Sizes, rate: float) -> tuple[list[Delivery], float]:
    """One round of ``entries`` entries produced at ``rate`` per second (0: flat out);
    returns what each subscriber saw, and the entries produced per second."""
    first = FORK.Value("q", 0, lock=False)
    last = FORK.Value("q", 0, lock=False)
    go = FORK.Event()
    done = FORK.Barrier(sizes.subscribers)
    with children(_subscriber, [(path, first, last, done)] * sizes.subscribers) as out:
        collect(out, "ready", sizes.subscribers)
        producer = [(path, target_names(sizes.client_targets), go, first, last, rate)]
        with children(_producer, producer) as produced:
            with Client(path) as client:  # everyone is listening: entries after this count
                base = client.call(Call(f"{POWER}.Off", {"target": "t000"}))["log_seq"]
            first.value = base + 1
            last.value = base + sizes.entries
            go.set()
            _, seconds = collect(produced, "result", 1)[0]
        deliveries: list[Delivery] = list(collect(out, "result", sizes.subscribers).values())
    return deliveries, sizes.entries / seconds


def logs(path: str, sizes: Sizes) -> list[Figure]:
    """``subscribers`` processes follow the log while a producer process switches targets
    until the daemon has made ``entries`` entries; every subscriber must get each of them.

    Twice: with the producer holding ``log_rate`` entries per second, which is where the
    latency target applies, and flat out, which shows the most the daemon and its 20
    readers manage together on this machine (and what queueing then does to latency).
    """
    paced, _ = _log_pass(path, sizes, sizes.log_rate)
    flat, flat_rate = _log_pass(path, sizes, 0.0)
    ms = [v for d in paced for v in d.latencies_ms]
    flat_ms = [v for d in flat for v in d.latencies_ms]
    n, rate = sizes.subscribers, f"{sizes.log_rate:,.0f}/s"
    return [
        Figure(
            "log_lost_entries",
            f"log entries lost or doubled, {n} subscribers x {sizes.entries} x 2 rounds",
            sum(d.missing + d.duplicates for d in paced + flat),
            "",
            0.0,
        ),
        Figure(
            "log_dropped_notices",
            "'entries dropped' notices received",
            sum(d.dropped_notices for d in paced + flat),
            "",
        ),
        Figure(
            "log_latency_p99_ms",
            f"log delivery latency at {rate}, p99",
            percentile(ms, 99),
            "ms",
            5.0,
        ),
        Figure(
            "log_latency_median_ms",
            f"log delivery latency at {rate}, median",
            statistics.median(ms),
            "ms",
        ),
        Figure("log_latency_max_ms", f"log delivery latency at {rate}, max", max(ms), "ms"),
        Figure("log_flat_out_per_s", "log entries produced, flat out", flat_rate, "entries/s"),
        Figure(
            "log_flat_out_p99_ms",
            "log delivery latency flat out, p99",
            percentile(flat_ms, 99),
            "ms",
        ),
        Figure(
            "log_flat_out_median_ms",
            "log delivery latency flat out, median",
            statistics.median(flat_ms),
            "ms",
        ),
    ]


# -- the whole suite


def run(
    quick: bool = False, profile: Path | None = None, progress: Callable[[str], None] | None = None
) -> list[Figure]:
    """Every core benchmark; ``profile``: run the loaded daemon under cProfile.

    :raises RuntimeError: the daemon or a benchmark process failed.
    """
    sizes = Sizes.quick() if quick else Sizes.full()
    say = progress or (lambda _: None)
    directory = Path(tempfile.mkdtemp(prefix="labpower-bench-"))
    figures: list[Figure] = []
    try:
        say(f"start-up ({sizes.starts} starts, {sizes.start_targets} targets)")
        figures += startup(directory, sizes)
        config = directory / "lab.toml"
        config.write_text(to_toml(mock_lab(sizes.start_targets)))
        daemon = Labpowerd(config, directory, profile=profile)
        daemon.start()
        try:
            with Client(daemon.socket) as client:
                client.get("t000")
            rss_start, _ = daemon.memory()
            say(f"round trip ({sizes.round_trip_calls} calls)")
            figures += round_trip(daemon.socket, "t000", sizes)
            say(f"throughput ({sizes.clients} clients, {sizes.throughput_seconds:g} s)")
            figures += throughput(daemon, sizes)
            rss_clients, _ = daemon.memory()
            say(
                f"logs ({sizes.subscribers} subscribers, {sizes.entries} entries, paced "
                "and flat out)"
            )
            figures += logs(daemon.socket, sizes)
            rss_load, peak = daemon.memory()
        finally:
            daemon.stop()
        figures += [
            Figure(
                "rss_after_start_mb",
                f"daemon RSS after start, {sizes.start_targets} targets",
                rss_start,
                "MB",
                35.0,
            ),
            Figure(
                "rss_after_clients_mb",
                "daemon RSS after round trips and 32 clients",
                rss_clients,
                "MB",
            ),
            Figure(
                "rss_after_load_mb",
                "daemon RSS after all of it (and the log runs)",
                rss_load,
                "MB",
                35.0,
            ),
            Figure("rss_peak_mb", "daemon RSS peak (VmHWM)", peak, "MB"),
        ]
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return figures
