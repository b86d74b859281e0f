"""The asyncio event loop labpowerd runs on: asyncio's own, with a selector that polls for a
moment before it sleeps, and wakes a moment before a timer is due.

On a virtual machine, a process that sleeps and is woken (by a client's request, a board's
answer or a timer) pays a tenth to a quarter of a millisecond for the round trip through the
hypervisor, on top of the call itself. Two things keep that off the switching path:

- Test scripts call labpowerd back to back (switch, read back, switch the next...), so the
  next request usually arrives within a few tens of microseconds of the last reply. The
  selector therefore polls without blocking for up to :data:`SPIN_SECONDS` before it sleeps:
  at most that much CPU per idle moment, nothing while the daemon is busy (it has events
  then), and nothing when it is idle for longer (it sleeps as before).
- A timer (the moment a serial board's answer is due, a cycle's off time, a board's gap)
  should fire on time. ``epoll_wait`` counts in whole milliseconds and asyncio rounds its
  wait up, so a timer could fire up to a millisecond late, and a woken process comes later
  still. The selector sleeps in ``select()`` on the epoll descriptor instead (microsecond
  timeouts) until :data:`TIMER_EARLY` before the timer, then polls until it is due.

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

#: How long the loop keeps polling before it sleeps, seconds.
SPIN_SECONDS = 100e-6
#: How long before a timer is due the loop wakes up to poll for it, seconds.
TIMER_EARLY = 300e-6
#: select() takes descriptors below this only.
_FD_SETSIZE = 1024

Ready = list[tuple[selectors.SelectorKey, int]]


class SpinningSelector(selectors.EpollSelector):
    def __init__(self) -> None:
        super().__init__()
        self._epoll_fd = self.fileno()

    def select(self, timeout: float | None = None) -> Ready:
        if timeout is not None and timeout <= 0:
            return super().select(0)
        ready = super().select(0)
        if ready:
            return ready
        now = time.perf_counter()
        if timeout is None:
            return self._poll_until(now + SPIN_SECONDS) or super().select(None)
        due = now + timeout
        ready = self._poll_until(min(due, now + SPIN_SECONDS))
        if ready:
            return ready
        sleep = due - TIMER_EARLY - time.perf_counter()
        if sleep > 0:
            if self._epoll_fd < _FD_SETSIZE:
                select.select((self._epoll_fd,), (), (), sleep)
                ready = super().select(0)
            elif (ms := int(sleep * 1e3)) > 0:  # whole milliseconds, rounded down
                ready = super().select((ms - 0.5) * 1e-3)  # (epoll rounds up)
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
