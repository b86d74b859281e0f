"""Giving memory back to the system after a burst.

CPython frees objects into the C allocator, and glibc keeps freed heap memory for reuse
instead of returning it: after a flood of connections or of log entries the daemon's RSS
would stay at its peak. Whoever frees a lot at once reports it (:meth:`Trimmer.released`),
and the daemon's :meth:`Trimmer.run` task then asks glibc to return free pages
(``malloc_trim``), at most once per :data:`TRIM_INTERVAL`, after collecting the garbage
cycles of connections that ended. Elsewhere than glibc nothing
happens.
"""

from __future__ import annotations

import ctypes
import gc
from collections.abc import Callable

import anyio

#: Bytes freed since the last trim that make the next one worth its cost (a few ms).
TRIM_THRESHOLD = 4 * 1024 * 1024
#: How often a trim may run, seconds.
TRIM_INTERVAL = 1.0


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


class Trimmer:
    """Counts bytes freed; trims when enough were."""

    def __init__(self) -> None:
        self.freed = 0
        self._trim = _malloc_trim()

    def released(self, nbytes: int) -> None:
        """``nbytes`` of buffers were (or are about to be) freed."""
        self.freed += nbytes

    def trim_now(self) -> None:
        self.freed = 0
        # Connections that ended with an exception are reference cycles (exception,
        # traceback, frame), with their buffers: freed only by a collection, and one of
        # the oldest generation may not come for a long time.
        gc.collect()
        if self._trim is not None:
            self._trim(0)

    async def run(self) -> None:
        """Trim after bursts of freeing, for the daemon's lifetime."""
        while True:
            await anyio.sleep(TRIM_INTERVAL)
            if self.freed >= TRIM_THRESHOLD:
                self.trim_now()


#: the daemon's; one per process is enough (what a trim frees is the process's)
trimmer = Trimmer()
