"""labpower-pdudaemon: a pduclient round trip through the listener against a direct
``labpower on``, and 64 pduclient processes at once.

A real ``labpowerd`` on 64 mock targets (16 four-channel boards), each with a pdudaemon
address ``pdu<board>:<channel>``, and ``labpower-pdudaemon`` in front of it on pdudaemon's
fixed port 16421, in a network namespace of the benchmark's own (so it needs root).
pduclient is the tests' reproduction of its wire behaviour (tests/pdudaemon/pduclient.py),
run as a process the way LAVA runs it.

- ``pduclient_median_ms``: one ``pduclient ... --command on|off`` process, start to exit.
- ``labpower_cli_median_ms``: one ``labpower on|off TARGET`` process, start to exit.
- ``pduclient_vs_cli_ratio`` (target <= 2): the first over the second.
- ``exchange_median_ms``: pduclient's exchange alone (connect, message, ``ack``), in one
  process: what the listener and the daemon take.
- ``burst64_failures`` (target 0): 64 pduclient processes started at once, each switching its
  own target; those that did not exit 0. ``burst64_s``: until the last one exited.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from labpower.daemon.testing import to_toml

from benchmarks.harness import Figure, Labpowerd
from tests.pdudaemon.peers import PDU_PORT, NetNs, send_tcp, wait_listening

ROOT = Path(__file__).resolve().parent.parent
PDUCLIENT = ROOT / "tests/pdudaemon/pduclient.py"
BIN = Path(sys.executable).parent
TARGETS, CHANNELS = 64, 4


def lab() -> dict[str, object]:
    return {
        "daemon": {"log_level": "info"},
        "devices": {
            f"board{b:02d}": {"backend": "mock", "channels": CHANNELS}
            for b in range(TARGETS // CHANNELS)
        },
        "targets": {
            f"t{i:03d}": {
                "device": f"board{i // CHANNELS:02d}",
                "channel": i % CHANNELS + 1,
                "pdudaemon": f"pdu{i // CHANNELS:02d}:{i % CHANNELS + 1}",
            }
            for i in range(TARGETS)
        },
    }


def pduclient(i: int, command: str) -> list[str]:
    return [
        sys.executable,
        str(PDUCLIENT),
        "--daemon",
        "127.0.0.1",
        "--hostname",
        f"pdu{i // CHANNELS:02d}",
        "--port",
        str(i % CHANNELS + 1),
        "--command",
        command,
    ]


def timed(command: list[str]) -> float:
    """Seconds from start to exit. :raises RuntimeError: it failed."""
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, timeout=60, check=False)
    took = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"{command} failed ({done.returncode}): {done.stdout!r} {done.stderr!r}")
    return took


def run(quick: bool = False) -> list[Figure]:
    """:raises RuntimeError: the daemon, the listener or a client failed."""
    calls = 5 if quick else 60
    try:
        ns = NetNs()
    except OSError as exc:
        raise RuntimeError(f"pdudaemon benchmark: no network namespace of its own: {exc}") from exc
    directory = Path(tempfile.mkdtemp(prefix="labpower-bench-pdu-"))
    daemon = Labpowerd(directory / "lab.toml", directory)
    daemon.config.write_text(to_toml(lab()))
    listener: subprocess.Popen[bytes] | None = None
    try:
        daemon.start()
        with ns.entered(), open(directory / "listener.log", "wb") as log:
            listener = subprocess.Popen(
                [
                    str(BIN / "labpower-pdudaemon"),
                    "--listen",
                    f"127.0.0.1:{PDU_PORT}",
                    "--socket",
                    daemon.socket,
                ],
                stderr=log,
            )
            wait_listening(PDU_PORT, listener)
        cli = [sys.executable, "-m", "labpower.client.cli", "--socket", daemon.socket]
        pdu_times, cli_times = [], []
        for n in range(calls):
            command = ("on", "off")[n % 2]
            with ns.entered():
                pdu_times.append(timed(pduclient(0, command)))
            cli_times.append(timed([*cli, command, "t000"]))
        with ns.entered():
            exchanges = []
            for n in range(calls * 10):
                began = time.perf_counter()
                reply = send_tcp(f"pdu00 1 {('on', 'off')[n % 2]}".encode())
                exchanges.append(time.perf_counter() - began)
                if reply != b"ack\n":
                    raise RuntimeError(f"pdudaemon benchmark: the listener replied {reply!r}")
        with ns.entered():
            began = time.perf_counter()
            burst = [
                subprocess.Popen(
                    pduclient(i, "on"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
                for i in range(TARGETS)
            ]
            codes = [p.wait(timeout=120) for p in burst]
            burst_s = time.perf_counter() - began
    finally:
        if listener is not None:
            listener.terminate()
            listener.wait(timeout=30)
        daemon.stop()
        ns.close()
        shutil.rmtree(directory, ignore_errors=True)
    pdu_ms = statistics.median(pdu_times) * 1000
    cli_ms = statistics.median(cli_times) * 1000
    return [
        Figure(
            "pdudaemon.pduclient_median_ms", "pdudaemon: pduclient process, on/off", pdu_ms, "ms"
        ),
        Figure(
            "pdudaemon.labpower_cli_median_ms",
            "pdudaemon:   labpower on/off process, for comparison",
            cli_ms,
            "ms",
        ),
        Figure(
            "pdudaemon.pduclient_vs_cli_ratio",
            "pdudaemon: pduclient / labpower process",
            pdu_ms / cli_ms,
            "x",
            2.0,
        ),
        Figure(
            "pdudaemon.exchange_median_ms",
            "pdudaemon:   the TCP exchange alone (no process start)",
            statistics.median(exchanges) * 1000,
            "ms",
        ),
        Figure(
            "pdudaemon.burst64_failures",
            f"pdudaemon: {TARGETS} pduclient processes at once, failed",
            float(sum(1 for c in codes if c != 0)),
            "",
            0.0,
        ),
        Figure("pdudaemon.burst64_s", f"pdudaemon:   all {TARGETS} done in", burst_s, "s"),
    ]
