"""The daemon's event loop: its selector polls briefly, never returns early, and fires timers
on time rather than on the next whole millisecond."""

from __future__ import annotations

import select
import socket
import threading
import time
from typing import Any

import pytest
from labpower.daemon import eventloop
from labpower.daemon.eventloop import TIMER_EARLY, SpinningSelector, new_event_loop


@pytest.mark.parametrize("big_descriptor", [False, True])
@pytest.mark.parametrize("timeout", [0.0003, 0.0015, 0.0042])
def test_select_never_returns_before_its_timeout(timeout: float, big_descriptor: bool) -> None:
    selector = SpinningSelector()
    if big_descriptor:  # as if the epoll descriptor were beyond select()'s reach
        selector._epoll_fd = 5000
    try:
        for _ in range(5):
            started = time.perf_counter()
            assert selector.select(timeout) == []
            assert time.perf_counter() - started >= timeout
    finally:
        selector.close()


@pytest.mark.timing
def test_a_ready_descriptor_ends_a_long_select_at_once() -> None:
    selector = SpinningSelector()
    a, b = socket.socketpair()
    try:
        selector.register(a, 1)  # EVENT_READ
        threading.Timer(0.05, b.send, args=(b"x",)).start()
        started = time.perf_counter()
        ready = selector.select(10.0)
        assert [key.fileobj for key, _ in ready] == [a]
        assert time.perf_counter() - started < 5.0
    finally:
        selector.close()
        a.close()
        b.close()


def test_a_timer_is_waited_for_to_the_microsecond(monkeypatch: pytest.MonkeyPatch) -> None:
    # epoll_wait() counts whole milliseconds and asyncio rounds up: on a plain loop a timer
    # fires on average half a millisecond late. This selector sleeps in select() (whose
    # timeout has microseconds) until TIMER_EARLY before the timer, then polls until it is
    # due. How late timers fire is a figure of benchmarks/serial_bench.py (it depends on the
    # machine's load, this test does not).
    dues: list[float] = []
    sleeps: list[tuple[float, float, float]] = []  # (timer due, select() called, timeout)
    real_select = select.select

    def recording_select(r: Any, w: Any, x: Any, timeout: float) -> Any:
        sleeps.append((dues[-1], time.monotonic(), timeout))
        return real_select(r, w, x, timeout)

    monkeypatch.setattr(eventloop.select, "select", recording_select)
    loop = new_event_loop()
    delays = [0.02 + i * 0.00037 for i in range(10)]  # all over the millisecond

    async def measure() -> list[float]:
        late = []
        for delay in delays:
            fired = loop.create_future()
            dues.append(loop.time() + delay)
            loop.call_at(dues[-1], fired.set_result, None)
            await fired
            late.append(loop.time() - dues[-1])
        return late

    try:
        late = loop.run_until_complete(measure())
    finally:
        loop.close()
    assert min(late) >= 0, "no timer fires early"
    assert [due for due, _, _ in sleeps] == dues, "one sleep per timer"
    for (due, called, timeout), delay in zip(sleeps, delays, strict=True):
        # it sleeps until TIMER_EARLY before the timer (not before), to the microsecond
        assert called + timeout >= due - TIMER_EARLY - 1e-6
        assert timeout <= delay - TIMER_EARLY
        assert abs(timeout * 1e3 - round(timeout * 1e3)) > 1e-6, "not whole milliseconds"
