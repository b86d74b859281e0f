"""Shared reads: callers asking for the same read at once get one answer from the board.

Fifty clients streaming readings of one channel, or a loop of ``List(refresh: true)``, would
otherwise each put a read in the board's queue. With :class:`SharedReads`, a caller that asks
while the same read (same key) is in progress waits for it and gets its result (or its
error), so the board sees at most one read per key at a time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

import anyio

T = TypeVar("T")


class _Flight(Generic[T]):
    __slots__ = ("done", "error", "ok", "result")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.ok = False
        self.result: T
        self.error: Exception | None = None


class SharedReads(Generic[T]):
    """At most one read in progress per key; see the module docstring."""

    def __init__(self) -> None:
        self._flights: dict[Hashable, _Flight[T]] = {}

    def __len__(self) -> int:
        """Reads in progress."""
        return len(self._flights)

    async def run(self, key: Hashable, read: Callable[[], Awaitable[T]]) -> T:
        """``read()``'s result, from the read of ``key`` in progress if there is one.

        :raises Exception: what the shared read raised.
        """
        while True:
            flight = self._flights.get(key)
            if flight is None:
                return await self._lead(key, read)
            await flight.done.wait()
            if flight.error is not None:
                raise flight.error
            if flight.ok:
                return flight.result
            # its caller was cancelled before the board answered: read afresh

    async def _lead(self, key: Hashable, read: Callable[[], Awaitable[T]]) -> T:
        flight: _Flight[T] = _Flight()
        self._flights[key] = flight
        try:
            flight.result = result = await read()
            flight.ok = True
        except Exception as exc:
            flight.error = exc
            raise
        finally:
            del self._flights[key]
            flight.done.set()
        return result
