"""Different devices switch concurrently; calls to one device run one at a time; a board that
hangs fails its caller with Timeout at the device's deadline and stalls nobody else."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime

import pytest
from labpower.client import Client, Timeout
from labpower.daemon.testing import DaemonProcess

from ..conftest import StartDaemon, mock_config

DELAY = 0.1  # per mock hardware call; a switch is set + read-back = 2 calls


@pytest.fixture
def slow_lab(start_daemon: StartDaemon) -> DaemonProcess:
    return start_daemon(
        mock_config(
            {"a": {"channels": 2, "delay": DELAY}, "b": {"channels": 1, "delay": DELAY}},
            {
                "a1": {"device": "a", "channel": 1},
                "a2": {"device": "a", "channel": 2},
                "b1": {"device": "b", "channel": 1},
            },
        )
    )


def _together(daemon: DaemonProcess, *calls: Callable[[Client], object]) -> float:
    """Run each call on its own connection, all at once; the wall time they took."""
    clients = [daemon.client() for _ in calls]
    for c in clients:
        c.connect()
    barrier = threading.Barrier(len(calls) + 1)
    errors: list[BaseException] = []

    def run(client: Client, call: Callable[[Client], object]) -> None:
        barrier.wait()
        try:
            call(client)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(c, f)) for c, f in zip(clients, calls, strict=True)
    ]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.monotonic()
    for t in threads:
        t.join(10)
    elapsed = time.monotonic() - start
    for c in clients:
        c.close()
    if errors:
        raise errors[0]
    return elapsed


@pytest.mark.timing
def test_different_devices_switch_concurrently(slow_lab: DaemonProcess) -> None:
    elapsed = _together(slow_lab, lambda c: c.on("a1"), lambda c: c.on("b1"))
    # one switch takes 2 * DELAY; in sequence the two would take 4 * DELAY
    assert 2 * DELAY <= elapsed < 3.5 * DELAY


def test_calls_to_one_device_run_one_at_a_time(slow_lab: DaemonProcess) -> None:
    elapsed = _together(slow_lab, lambda c: c.on("a1"), lambda c: c.on("a2"))
    assert elapsed >= 4 * DELAY
    with slow_lab.client() as lab:
        power = [e for e in lab.history() if e.message == "power on"]
    assert sorted(e.target or "" for e in power) == ["a1", "a2"]
    # the second "power on" waited for the first switch's set and read-back
    first, second = sorted(e.time for e in power)
    gap = _seconds(second) - _seconds(first)
    assert gap >= 2 * DELAY * 0.9


def _seconds(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


@pytest.mark.timeout(30)
def test_hung_board_times_out_and_stalls_nobody_else(start_daemon: StartDaemon) -> None:
    daemon = start_daemon(
        mock_config(
            {"hung": {"channels": 1, "delay": 5.0, "timeout": 0.3}, "fine": {"channels": 1}},
            {"stuck": {"device": "hung", "channel": 1}, "ok": {"device": "fine", "channel": 1}},
        )
    )
    outcome: list[BaseException | object] = []
    window: list[float] = []

    def hang() -> None:
        with daemon.client() as lab:
            window.append(time.monotonic())
            try:
                outcome.append(lab.on("stuck"))
            except BaseException as exc:
                outcome.append(exc)
            window.append(time.monotonic())

    with daemon.client() as lab:
        lab.connect()
        slow = threading.Thread(target=hang)
        slow.start()
        latencies: list[tuple[float, float]] = []
        on = True
        while slow.is_alive():
            start = time.monotonic()
            if on:
                lab.on("ok")
            else:
                lab.off("ok")
            latencies.append((start, time.monotonic()))
            on = not on
        slow.join()

        (error,) = outcome
        assert isinstance(error, Timeout), error
        assert isinstance(error, TimeoutError)
        assert error.parameters == {"target": "stuck", "seconds": 0.3}
        began, ended = window
        assert 0.3 <= ended - began < 2.0
        # switches of the other device went on while the hung one was waited for
        during = [(s, e) for s, e in latencies if s > began + 0.05 and e < ended - 0.05]
        assert len(during) >= 5
        assert max(e - s for s, e in during) < 0.15
        assert lab.get("stuck").available is False
        assert lab.get("ok").available is True
