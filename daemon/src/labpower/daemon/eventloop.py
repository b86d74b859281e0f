"""The asyncio event loop labpowerd runs on: asyncio's own, with a selector that fires timers
on time rather than on the next whole millisecond.

A timer (the moment a serial board's answer is due, a cycle's off time, a board's gap)
should fire on time. ``epoll_wait`` counts in whole milliseconds and asyncio rounds its wait
up, so a timer could fire up to a millisecond late, and a woken process comes later still.
The selector sleeps in ``select()`` on the epoll descriptor instead (microsecond timeouts)
until :data:`TIMER_EARLY` before the timer, then polls until it is due.

It can also poll for a moment before it sleeps when idle (``spin``): a request arriving
within that moment is then served without the wake-up through the hypervisor. That is off
by default (:data:`labpower.backends.timing.LOOP_IDLE_SPIN`): it costs CPU at every idle
moment, and the benchmark rows with and without it show what it buys.

Every poll gives the CPU away between two looks (``sched_yield``), so that polling never
keeps a client, a simulator or another process from running on a machine with few CPUs.
"""

from __future__ import annotations

import asyncio
import os
import select
import selectors
import time
from typing import Any

from labpower.backends import timing

#: How long the loop keeps polling before it sleeps, seconds (the default: 0, never).
SPIN_SECONDS = timing.LOOP_IDLE_SPIN
#: How long before a timer is due the loop wakes up to poll for it, seconds.
TIMER_EARLY = timing.TIMER_EARLY
#: select() takes descriptors below this only.
_FD_SETSIZE = 1024

Ready = list[tuple[selectors.SelectorKey, int]]


class SpinningSelector(selectors.EpollSelector):
    """``spin``: seconds to poll for events before sleeping when idle (0: never)."""

    def __init__(self, spin: float = SPIN_SECONDS) -> None:
        super().__init__()
        self._epoll_fd = self.fileno()
        self.spin = spin

    def select(self, timeout: float | None = None) -> Ready:
        if timeout is not None and timeout <= 0:
            return super().select(0)
        spin = self.spin
        if timeout is None:
            if spin and (ready := self._poll_until(time.perf_counter() + spin)):
                return ready
            return super().select(None)
        now = time.perf_counter()
        due = now + timeout
        if spin and (ready := self._poll_until(min(due, now + spin))):
            return ready
        sleep = due - TIMER_EARLY - time.perf_counter()
        if sleep > 0:
            if self._epoll_fd < _FD_SETSIZE:
                # select()'s timeout has microseconds, epoll's whole milliseconds
                select.select((self._epoll_fd,), (), (), sleep)
                ready = super().select(0)
            elif (ms := int(sleep * 1e3)) > 0:  # whole milliseconds, rounded down
                ready = super().select((ms - 0.5) * 1e-3)  # (epoll rounds up)
            else:
                ready = []
            if ready:
                return ready
        return self._poll_until(due)

    def _poll_until(self, until: float) -> Ready:
        """Poll without blocking until events come or ``until`` (perf_counter) passed."""
        poll = super().select
        while True:
            ready = poll(0)
            if ready or time.perf_counter() >= until:
                return ready
            os.sched_yield()


def new_event_loop() -> asyncio.AbstractEventLoop:
    """An asyncio loop on :class:`SpinningSelector`."""
    return asyncio.SelectorEventLoop(SpinningSelector())


def backend_options(backend: str) -> dict[str, Any]:
    """anyio.run() options for the daemon's event loop."""
    return {"loop_factory": new_event_loop} if backend == "asyncio" else {}
