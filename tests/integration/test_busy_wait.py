"""The client polls for a reply around the moment it is due (learned per kind of call), and
backs the polling off for calls whose time it cannot tell."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from labpower.client import Client
from labpower.daemon.testing import DaemonProcess

# the polling learns reply times and backs off by them: other tests on the CPU skew both
pytestmark = pytest.mark.timing

CONFIG = {
    "devices": {
        "fast": {"backend": "mock", "channels": 1},
        "slow": {"backend": "mock", "channels": 1, "delay": 0.01},
    },
    "targets": {
        "quick": {"device": "fast", "channel": 1},
        "lazy": {"device": "slow", "channel": 1},
    },
}


@pytest.fixture(scope="module")
def daemon() -> Iterator[DaemonProcess]:
    process = DaemonProcess(CONFIG)
    process.start()
    try:
        yield process
    finally:
        process.cleanup()


#: How long these tests let the client poll: wider than the suggested 0.4 ms, so that a
#: machine busy with other work (a reply some milliseconds late) does not make a poll miss,
#: and still shorter than the 10 ms board, so that only a client that learned when its
#: reply is due catches that reply.
BUSY_WAIT = 0.005


def _timing(lab: Client, method: str, target: str) -> Any:
    conn = lab._conn
    assert conn is not None
    assert conn.poller is not None
    return conn.poller.timings[(f"io.labpower.Power.{method}", target)]


def _caught_in_a_row(lab: Client, call: Callable[[], object], method: str, target: str) -> bool:
    """Whether 20 calls in a row had their reply caught by polling (the first calls of a
    connection may miss on a busy machine, so up to 500 tries)."""
    caught = 0
    for _ in range(500):
        call()
        timing = _timing(lab, method, target)
        caught = caught + 1 if timing.backoff == 1 and timing.skip == 0 else 0
        if caught == 20:
            return True
    return False


def test_fast_replies_are_caught_by_polling(daemon: DaemonProcess) -> None:
    with Client(daemon.socket_path, busy_wait=BUSY_WAIT) as lab:
        assert _caught_in_a_row(lab, lambda: lab.get("quick"), "Get", "quick")


def test_slow_replies_are_polled_for_when_they_are_due(daemon: DaemonProcess) -> None:
    # a board that takes 10 ms: the client learns it and polls around 10 ms after sending
    with Client(daemon.socket_path, busy_wait=BUSY_WAIT) as lab:
        assert _caught_in_a_row(lab, lambda: lab.on("lazy"), "On", "lazy")
        assert 0.01 <= _timing(lab, "On", "lazy").took < 0.05
        # what one kind of call takes does not move the others' polling
        for _ in range(5):
            lab.on("quick")
        assert _timing(lab, "On", "lazy").took > 10 * _timing(lab, "On", "quick").took


def test_replies_that_come_later_than_learned_back_the_polling_off(
    daemon: DaemonProcess,
) -> None:
    with Client(daemon.socket_path, busy_wait=0.001) as lab:
        for _ in range(10):
            lab.cycle("quick", delay=0)  # quick cycles: polled from the start
        # now every cycle takes 30 ms more than polling expects: each poll misses and
        # polling is skipped for 1, 2, 4... calls, so it costs a few polls, not one per call
        for _ in range(15):
            lab.cycle("quick", delay=0.03)
        assert _timing(lab, "Cycle", "quick").backoff >= 8


@pytest.mark.parametrize("busy_wait", [0.0, None])
def test_by_default_the_client_never_polls(daemon: DaemonProcess, busy_wait: float | None) -> None:
    # polling is a trade (CPU for latency): only a client that asks for it polls
    with (
        Client(daemon.socket_path, busy_wait=busy_wait)
        if busy_wait is not None
        else Client(daemon.socket_path)
    ) as lab:
        assert lab.off("quick").state == "off"
        assert lab._conn is not None
        assert lab._conn.poller is None
