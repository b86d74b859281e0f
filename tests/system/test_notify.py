"""sd_notify as systemd sees it, on a NOTIFY_SOCKET the test owns: READY=1 only once the
socket accepts calls, STATUS=, WATCHDOG=1 from the event loop at half of WATCHDOG_USEC,
RELOADING=1/READY=1 around SIGHUP, STOPPING=1 at SIGTERM."""

from __future__ import annotations

import itertools
import signal
import statistics
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from labpower.client import Client

from .conftest import Notification, NotifySocket, clean_env, labpowerd, write_toml

CONFIG = {
    "devices": {
        "bench": {"backend": "mock", "channels": 2},
        "rack": {"backend": "mock", "channels": 1},
    },
    "targets": {
        "dut1": {"device": "bench", "channel": 1},
        "dut2": {"device": "bench", "channel": 2},
    },
}
WATCHDOG_USEC = 600_000


@pytest.fixture
def daemon(tmp_path: Path, notify_socket: NotifySocket) -> Iterator[subprocess.Popen[bytes]]:
    config = write_toml(tmp_path / "labpowerd.toml", CONFIG)
    with open(tmp_path / "stderr.log", "wb") as stderr:
        proc = subprocess.Popen(
            labpowerd(
                "--config",
                str(config),
                "--socket",
                str(tmp_path / "labpower.sock"),
            ),
            env=clean_env(NOTIFY_SOCKET=notify_socket.path, WATCHDOG_USEC=str(WATCHDOG_USEC)),
            stdin=subprocess.DEVNULL,
            stderr=stderr,
        )
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


def test_ready_only_once_the_socket_accepts(
    tmp_path: Path, daemon: subprocess.Popen[bytes], notify_socket: NotifySocket
) -> None:
    ready = notify_socket.wait_for("READY", "1")
    assert notify_socket.seen == [ready], "nothing is announced before READY=1"
    assert ready.pid == daemon.pid
    assert ready.fields["MAINPID"] == str(daemon.pid)
    assert ready.fields["STATUS"] == "2 targets, 2/2 devices available"
    # the moment READY=1 arrives, a call goes through
    with Client(tmp_path / "labpower.sock", timeout=5) as lab:
        assert [t.name for t in lab.targets()] == ["dut1", "dut2"]


@pytest.mark.timing
def test_watchdog_pings_at_half_the_timeout_from_the_event_loop(
    daemon: subprocess.Popen[bytes], notify_socket: NotifySocket
) -> None:
    notify_socket.wait_for("READY", "1")
    pings = [notify_socket.wait_for("WATCHDOG", "1", timeout=5) for _ in range(5)]
    assert {p.pid for p in pings} == {daemon.pid}
    gaps = [b.when - a.when for a, b in itertools.pairwise(pings)]
    half = WATCHDOG_USEC / 2e6
    assert 0.7 * half < statistics.median(gaps) < 1.5 * half, gaps
    assert max(gaps) < 2 * half, f"a ping came too late for the watchdog: {gaps}"
    # a hung daemon (stopped, as by SIGSTOP): the pings stop, as they must for systemd to
    # notice; they come from the event loop, not from a thread that would outlive it
    daemon.send_signal(signal.SIGSTOP)
    deadline = time.monotonic() + 4 * half
    late: list[Notification] = []
    try:
        while True:  # until nothing more comes
            late.append(notify_socket.receive(max(deadline - time.monotonic(), 0.001)))
    except TimeoutError:
        pass
    # at most a ping already under way when the loop froze
    assert all(n.when - pings[-1].when < 3 * half for n in late), late


def test_reloading_then_ready_around_sighup(
    tmp_path: Path, daemon: subprocess.Popen[bytes], notify_socket: NotifySocket
) -> None:
    notify_socket.wait_for("READY", "1")
    bigger = {
        **CONFIG,
        "targets": {**CONFIG["targets"], "router": {"device": "rack", "channel": 1}},
    }
    write_toml(tmp_path / "labpowerd.toml", bigger)
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    daemon.send_signal(signal.SIGHUP)
    reloading = notify_socket.wait_for("RELOADING", "1")
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert before <= int(reloading.fields["MONOTONIC_USEC"]) <= after
    ready = notify_socket.wait_for("READY", "1")
    assert ready.fields["STATUS"] == "3 targets, 2/2 devices available"

    (tmp_path / "labpowerd.toml").write_text("[devices.bench]\nbackend = 'nonesuch'\n")
    daemon.send_signal(signal.SIGHUP)
    notify_socket.wait_for("RELOADING", "1")
    refused = notify_socket.wait_for("READY", "1")
    assert refused.fields["STATUS"].startswith("reload refused (devices.bench.backend)")
    with Client(tmp_path / "labpower.sock", timeout=5) as lab:
        assert len(lab.targets()) == 3, "the previous configuration keeps serving"


def test_stopping_at_sigterm(daemon: subprocess.Popen[bytes], notify_socket: NotifySocket) -> None:
    notify_socket.wait_for("READY", "1")
    daemon.send_signal(signal.SIGTERM)
    stopping = notify_socket.wait_for("STOPPING", "1")
    assert stopping.pid == daemon.pid
    assert daemon.wait(10) == 0
