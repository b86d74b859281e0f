"""The lock that serialises the operations on one target.

anyio's ``Lock`` asks the event loop which task is running when it is taken and when it is
released, and whether that task was cancelled; on asyncio each of those questions is a
``getpid()`` system call (CPython 3.11 checks that the loop belongs to this process), three
per switch for this lock alone. :class:`FairLock` asks nothing when it is free: taking and
releasing it is a flag. Waiting is anyio's (an :class:`anyio.Event` per waiter), so it works
on asyncio and trio alike, in arrival order, and a waiter cancelled while it waits never
keeps the lock from the next one.

Unlike anyio's lock, taking a free lock is no cancellation checkpoint: a cancelled task
meets its cancellation at its next ``await`` (for a switch: the device's own lock, before
the board is touched).
"""

from __future__ import annotations

from collections import deque
from types import TracebackType

import anyio


class FairLock:
    """A first-come, first-served lock for tasks of one event loop."""

    __slots__ = ("_held", "_waiters")

    def __init__(self) -> None:
        self._held = False
        #: one event per waiting task, oldest first; setting it hands the lock over
        self._waiters: deque[anyio.Event] = deque()

    def locked(self) -> bool:
        return self._held

    async def acquire(self) -> None:
        if not self._held:
            self._held = True
            return
        handed = anyio.Event()
        self._waiters.append(handed)
        try:
            await handed.wait()
        except BaseException:
            if handed.is_set():  # handed over, then cancelled before it could run
                self.release()
            else:
                self._waiters.remove(handed)
            raise

    def release(self) -> None:
        """Hand the lock to the oldest waiter (it stays held), or free it.

        :raises RuntimeError: the lock is not held.
        """
        if not self._held:
            raise RuntimeError("release of a FairLock that is not held")
        if self._waiters:
            self._waiters.popleft().set()
        else:
            self._held = False

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
