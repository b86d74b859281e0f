"""How the blocking client waits for a reply: sleep in the kernel (the default), or poll.

Polling is a trade, so it is opt-in (``Client(busy_wait=...)``). A process that sleeps
until the kernel wakes it for the reply pays for the wake-up (on a virtual machine, tens of
microseconds up to a quarter of a millisecond); polling instead costs CPU for as long as it
polls, CPU that the daemon on the same machine may need. The benchmark table shows the
round trip with and without it (``benchmarks/``).

When it is on, a call learns what calls of its kind (method and target) took lately: a fast
one polls from the start; a slow one (a serial board's wire time) sleeps until
:data:`POLL_EARLY` before its reply is due, then polls. A reply that comes earlier ends the
sleep at once. Polling gives the CPU away between two looks. After a miss, polling is
skipped for the next 1, 2, 4 ... up to 1024 calls of the kind, so that calls whose time
varies burn no CPU.
"""

from __future__ import annotations

import os
import select
import time

from labpower.client.state import RECEIVE_SIZE

# typing is not imported at run time (see frozen.py); the checker reads this block as true
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: What ``Client(busy_wait=...)`` takes when not given: never poll.
BUSY_WAIT = 0.0
#: A value that pays on an idle virtual machine, for those who opt in (seconds).
SUGGESTED_BUSY_WAIT = 400e-6
#: How long before a reply is due (by what the same call took lately) polling starts: a
#: process sleeping in select() wakes up to about a quarter of a millisecond late on a VM.
POLL_EARLY = 250e-6
#: select() takes descriptors below this only.
_FD_SETSIZE = 1024
#: The most kinds of call (method and target) whose durations a poller remembers.
_MAX_KINDS = 4096


class Timing:
    """What one kind of call (method and target) took lately."""

    __slots__ = ("backoff", "skip", "took")

    def __init__(self) -> None:
        self.took = 0.0  # 0: not known yet
        self.skip = 0  # calls left before the next poll
        self.backoff = 1


class ReplyPoller:
    """Polls a non-blocking descriptor for a reply around the moment it is due."""

    def __init__(self, fd: int, busy_wait: float) -> None:
        self.fd = fd
        self.busy_wait = busy_wait
        self.timings: dict[tuple[str, Any], Timing] = {}
        self._timing: Timing | None = None  # of the call waiting for its reply
        self._sent = 0.0

    def sent(self, method: str, target: Any, one_reply: bool) -> None:
        """A call was sent; ``one_reply``: it waits for one reply (not oneway, not "more")."""
        self._sent = time.perf_counter()
        if not one_reply:
            self._timing = None
            return
        key = (method, target)
        timing = self.timings.get(key)
        if timing is None:
            if len(self.timings) >= _MAX_KINDS:
                self.timings.clear()
            timing = self.timings[key] = Timing()
        self._timing = timing

    def poll(self) -> bytes | None:
        """The reply's bytes if they came while polling; None: sleep in recv() for them."""
        timing = self._timing
        if timing is None:
            return None
        if timing.skip:
            timing.skip -= 1
            return None
        fd = self.fd
        sleep = self._sent + timing.took - POLL_EARLY - time.perf_counter()
        if sleep > 0:
            if fd < _FD_SETSIZE:
                select.select((fd,), (), (), sleep)
            elif sleep >= 1e-3:
                poller = select.poll()
                poller.register(fd, select.POLLIN)
                poller.poll(int(sleep * 1e3))  # whole milliseconds, rounded down
        deadline = time.perf_counter() + self.busy_wait
        while True:
            try:
                data = os.read(fd, RECEIVE_SIZE)
            except BlockingIOError:
                if time.perf_counter() < deadline:
                    os.sched_yield()
                    continue
                timing.skip = timing.backoff
                timing.backoff = min(timing.backoff * 2, 1024)
                return None
            except OSError:
                return None  # the blocking receive reports it
            timing.backoff = 1
            return data

    def received(self) -> None:
        """The reply is complete: remember how long it took."""
        timing, self._timing = self._timing, None
        if timing is not None:
            took = time.perf_counter() - self._sent
            # down at once, up by an eighth: the window follows the fast replies
            known = timing.took
            timing.took = took if took < known or not known else known + (took - known) / 8
