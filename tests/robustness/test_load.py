"""Load: 200 concurrent clients x 500 operations, with 20 log subscribers following all along.

Clients run in 8 worker processes of 25 threads, each thread a blocking :class:`Client` on
its own connection, switching and reading its own target. Subscribers run in 4 processes of
5 threads, each its own ``Logs`` connection. Zero errors; every subscriber sees every entry
from before the load to after it, gap-free, with no "entries dropped" notice at the default
queue size; the daemon's RSS grows less than 10% between after a warm-up and after the load.
On this 2-core box the 100,000 operations take about 30 s, the whole test about 60 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest
from labpower.client.wire import Call
from labpower.daemon.testing import DaemonProcess

from ..conftest import StartDaemon, mock_config
from .conftest import POWER, rss_bytes

WORKERS = 8
THREADS = 25
OPERATIONS = 500
SUBSCRIBER_PROCESSES = 4
SUBSCRIBER_THREADS = 5
#: per client, before the RSS baseline: the daemon's heap (glibc malloc) reaches its
#: high-water mark within some 50,000 operations and stays flat after that (measured: 28.9 MiB
#: at start, 33.7 after 60k, then 34.5, 35.3, 34.5, 34.7 after each further 30k)
WARMUP_OPERATIONS = 250
CLIENTS = WORKERS * THREADS

WORKER = textwrap.dedent("""
    import json, sys, threading
    from labpower.client import Client

    path, first, threads, operations = sys.argv[1], *map(int, sys.argv[2:5])
    results = []

    def run(target):
        errors, done = [], 0
        with Client(path, timeout=60.0) as lab:
            state = lab.get(target).state
            for k in range(operations):
                try:
                    if k % 3 == 2:
                        got = lab.get(target)
                    else:
                        got = lab.on(target) if k % 3 == 0 else lab.off(target)
                        state = got.state
                    if got.state != state or not got.verified:
                        errors.append(f"{target} op {k}: {got}")
                except Exception as exc:  # counted: the test wants none
                    errors.append(f"{target} op {k}: {exc!r}")
                done += 1
        results.append((done, errors))

    pool = [threading.Thread(target=run, args=(f"t{first + i}",)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    print(json.dumps({"ops": sum(d for d, _ in results),
                      "errors": [e for _, es in results for e in es][:20]}))
""")

SUBSCRIBER = textwrap.dedent("""
    import json, sys, threading
    from array import array
    from labpower.client import Client
    from labpower.client.wire import Call

    path, threads = sys.argv[1], int(sys.argv[2])
    live = threading.Barrier(threads + 1)
    final = []
    results = []

    def follow():
        seqs, drops, error = array("q"), [], None
        lab = Client(path, timeout=3.0)
        stream = lab.stream(Call("io.labpower.Power.Logs", {}, more=True))
        next(stream)  # the empty first reply: the subscription is live
        live.wait()
        try:
            for params in stream:
                entry = params["entry"]
                if "entries dropped" in entry["message"]:
                    drops.append(entry["message"])
                seqs.append(entry["seq"])
                if final and entry["seq"] >= final[0]:
                    break
        except Exception as exc:
            # after the last entry the test waits for, the stream falls silent: that is the end
            if not (final and seqs and seqs[-1] >= final[0]):
                error = repr(exc)
        stream.close()
        gaps = [(a, b) for a, b in zip(seqs, seqs[1:]) if b != a + 1]
        results.append({"first": seqs[0] if seqs else None, "last": seqs[-1] if seqs else None,
                        "count": len(seqs), "gaps": gaps[:10], "drops": drops[:10],
                        "error": error})

    pool = [threading.Thread(target=follow) for _ in range(threads)]
    for t in pool:
        t.start()
    live.wait()
    print("live", flush=True)
    final.append(int(sys.stdin.readline()))
    for t in pool:
        t.join()
    print(json.dumps(results), flush=True)
""")


def _run_workers(daemon: DaemonProcess, operations: int) -> tuple[int, list[str]]:
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                daemon.socket_path,
                str(w * THREADS),
                str(THREADS),
                str(operations),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for w in range(WORKERS)
    ]
    ops, errors = 0, []
    for proc in procs:
        out, _ = proc.communicate(timeout=400)
        assert proc.returncode == 0, out
        result = json.loads(out)
        ops += result["ops"]
        errors += result["errors"]
    return ops, errors


@pytest.fixture
def load_daemon(start_daemon: StartDaemon) -> DaemonProcess:
    return start_daemon(
        mock_config(
            {"rack": {"channels": CLIENTS}},
            {f"t{i}": {"device": "rack", "channel": i + 1} for i in range(CLIENTS)},
            {"log_level": "info"},
        )
    )


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_200_clients_x_500_operations_with_20_subscribers(load_daemon: DaemonProcess) -> None:
    daemon = load_daemon
    subscribers = [
        subprocess.Popen(
            [sys.executable, "-c", SUBSCRIBER, daemon.socket_path, str(SUBSCRIBER_THREADS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(SUBSCRIBER_PROCESSES)
    ]
    try:
        for sub in subscribers:
            assert sub.stdout is not None
            assert sub.stdout.readline() == "live\n"
        with daemon.client(timeout=30.0) as lab:
            start_seq = int(lab.call(Call(f"{POWER}.Off", {"target": "t0"}))["log_seq"])
            # warm-up: every client, target and subscriber path has run
            ops, errors = _run_workers(daemon, WARMUP_OPERATIONS)
            assert errors == []
            warm = rss_bytes(daemon.pid)

            started = time.monotonic()
            ops, errors = _run_workers(daemon, OPERATIONS)
            elapsed = time.monotonic() - started
            after = rss_bytes(daemon.pid)
            end_seq = int(lab.call(Call(f"{POWER}.Off", {"target": "t0"}))["log_seq"])
        print(
            f"load: {ops} operations by {CLIENTS} clients in {elapsed:.1f} s "
            f"({ops / elapsed:.0f}/s), entries {start_seq}..{end_seq}, RSS "
            f"{warm / 2**20:.1f} -> {after / 2**20:.1f} MiB"
        )
        assert errors == [], errors
        assert ops == CLIENTS * OPERATIONS

        results: list[dict[str, Any]] = []
        for sub in subscribers:
            assert sub.stdin is not None
            sub.stdin.write(f"{end_seq}\n")
            sub.stdin.flush()
        for sub in subscribers:
            out, _ = sub.communicate(timeout=120)
            results += json.loads(out.splitlines()[-1])
    finally:
        for sub in subscribers:
            if sub.poll() is None:
                sub.kill()
                sub.wait()
    assert len(results) == SUBSCRIBER_PROCESSES * SUBSCRIBER_THREADS
    for r in results:
        assert r["error"] is None, r
        assert r["drops"] == [], r
        assert r["gaps"] == [], r
        assert r["first"] <= start_seq, r
        assert r["last"] >= end_seq, r
    assert after < warm * 1.10, f"RSS grew from {warm} to {after} bytes"
