"""The asyncio event loop labpowerd runs on: asyncio's own, with a selector that polls for a
moment before it sleeps.

On a virtual machine, a process that sleeps in epoll_wait and is woken by a client's request
pays tens of microseconds for the round trip through the hypervisor, on top of the call
itself. Test scripts call labpowerd back to back (switch, read back, switch the next...), so
the next request usually arrives within a few tens of microseconds of the last reply. The
selector therefore polls without blocking for up to :data:`SPIN_SECONDS` before it sleeps:
at most that much CPU per idle moment, nothing while the daemon is busy (it has events
then), and nothing when it is idle for longer (it sleeps as before).
"""

from __future__ import annotations

import asyncio
import selectors
import time
from typing import Any

#: How long the loop keeps polling before it sleeps, seconds.
SPIN_SECONDS = 100e-6


class SpinningSelector(selectors.EpollSelector):
    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout <= 0:
            return super().select(0)
        ready = super().select(0)
        if ready:
            return ready
        now = time.perf_counter()
        until = now + SPIN_SECONDS if timeout is None else now + min(SPIN_SECONDS, timeout)
        while now < until:
            ready = super().select(0)
            if ready:
                return ready
            now = time.perf_counter()
        if timeout is not None:
            timeout = max(0.0, timeout - SPIN_SECONDS)
        return super().select(timeout)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """An asyncio loop on :class:`SpinningSelector`."""
    return asyncio.SelectorEventLoop(SpinningSelector())


def backend_options(backend: str) -> dict[str, Any]:
    """anyio.run() options for the daemon's event loop."""
    return {"loop_factory": new_event_loop} if backend == "asyncio" else {}
