"""One builder at a time for each cache entry under ``$XDG_CACHE_HOME/labpower``.

The suite runs on several pytest-xdist workers (and a developer may run two suites at once):
two of them needing the same Debian root, udev 254 or peer virtualenv must not build it
side by side, nor use one half-built or being replaced. Every builder takes the entry's lock
file, checks again whether the entry is there, and builds it only if not; the lock is an
``flock``, so it is released when the process dies, and a build that did not finish is
noticed by the next one (each entry has its own "done" mark).
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def cache_lock(entry: Path) -> Iterator[None]:
    """Hold the exclusive lock of the cache entry ``entry`` (the file ``entry.lock``)."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    with open(entry.with_name(entry.name + ".lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield
