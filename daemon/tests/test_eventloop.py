"""The daemon's event loop: its selector polls briefly, never returns early, and fires timers
on time rather than on the next whole millisecond."""

from __future__ import annotations

import socket
import statistics
import threading
import time

import pytest
from labpower.daemon.eventloop import SpinningSelector, new_event_loop


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


def test_timers_fire_within_a_fraction_of_a_millisecond() -> None:
    # epoll_wait() counts whole milliseconds and asyncio rounds up: on a plain loop a timer
    # fires on average half a millisecond late. This loop sleeps in select() instead.
    loop = new_event_loop()
    late: list[float] = []

    async def measure() -> None:
        for i in range(30):
            delay = 0.002 + (i % 10) * 0.00037  # all over the millisecond
            fired = loop.create_future()
            due = loop.time() + delay
            loop.call_at(due, fired.set_result, None)
            await fired
            late.append(loop.time() - due)

    try:
        loop.run_until_complete(measure())
    finally:
        loop.close()
    assert min(late) >= 0
    assert statistics.median(late) < 0.0004, late
