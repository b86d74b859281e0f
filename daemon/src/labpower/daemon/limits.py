"""How many connections the daemon serves, in all and per user.

Every connection costs a file descriptor, and so does every write of the state file, every
board the daemon opens, its journal socket: a user who could take every descriptor would
lock everybody out (other users' calls, root's, the daemon's own writes). So:

- the connections served at once are at most ``daemon.max_connections``, and never more than
  the descriptor limit (RLIMIT_NOFILE, read at start) leaves after what the daemon holds then
  and a reserve of :data:`RESERVED_FDS` for its own use;
- one uid holds at most its share, ``daemon.max_connections_per_user`` (default: a quarter of
  the total), so a flooding user cannot lock out the others; root included;
- when several users together hold every connection, root still gets up to
  :data:`ROOT_EXTRA` more (taken from the reserve), so an administrator can always look in.

Input is bounded too: a connection holds at most :data:`INPUT_FREE` bytes of an incomplete
message on its own; beyond that it draws on one budget shared by all, :data:`INPUT_BUDGET`.
A connection whose incomplete message would overdraw it is closed (with the per-connection
read-ahead in :mod:`labpower.daemon.connection`, that bounds what a flood of never-ending
messages costs).

A refused connection is closed unanswered. The log names a uid the first time it is refused,
and once more, with the count, when it is well below its share again: never a line per
connection.
"""

from __future__ import annotations

import logging
import os
import resource
from collections import Counter

from labpower.client.wire import RemoteProtocolError
from labpower.daemon.config import DaemonSettings
from labpower.daemon.memory import trimmer

log = logging.getLogger("labpower.daemon.limits")

#: descriptors kept for the daemon's own use: state writes, boards opened later (hot-plug,
#: reload), journald, worker threads' files
RESERVED_FDS = 64
#: connections root may open beyond the total (out of RESERVED_FDS)
ROOT_EXTRA = 16
#: bytes of an incomplete message a connection may hold without drawing on the budget
INPUT_FREE = 16 * 1024
#: bytes of incomplete messages beyond that, all connections together
INPUT_BUDGET = 32 * 1024 * 1024


def descriptor_ceiling() -> int | None:
    """The most connections the descriptor limit leaves room for, from now on; None when
    there is no limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        held = len(os.listdir("/proc/self/fd"))
    except OSError:
        held = 32  # no /proc: a typical count for the daemon at start
    return max(1, soft - held - RESERVED_FDS)


class ConnectionLimits:
    """Counts connections per uid and decides whether to serve a new one."""

    def __init__(self, settings: DaemonSettings, ceiling: int | None = None) -> None:
        #: from the descriptor limit (:func:`descriptor_ceiling`); fixed for the daemon's life
        self.ceiling = ceiling
        self.total = 0
        self.per_user = 0
        self.open = 0
        self.by_uid: Counter[int] = Counter()
        #: connections refused per uid in the current episode (since it was named)
        self._refused: Counter[int] = Counter()
        self._refusing_all = 0
        self.configure(settings)

    def configure(self, settings: DaemonSettings) -> None:
        """Apply (new) settings: at start, and at each reload."""
        total = settings.max_connections
        if self.ceiling is not None and self.ceiling < total:
            log.warning(
                "serving at most %d connections, not daemon.max_connections = %d: the "
                "descriptor limit (RLIMIT_NOFILE, LimitNOFILE= under systemd) leaves room "
                "for no more",
                self.ceiling,
                total,
            )
            total = self.ceiling
        self.total = total
        if settings.max_connections_per_user is not None:
            self.per_user = min(settings.max_connections_per_user, total)
        else:
            self.per_user = max(1, total // 4)

    def admit(self, uid: int) -> bool:
        """Count a new connection of ``uid`` if it may be served; False: refuse it."""
        held = self.by_uid[uid]
        if held >= self.per_user:
            if not self._refused[uid]:
                log.warning(
                    "uid %d holds %d connections, its share (daemon.max_connections_per_user):"
                    " refusing its further connections",
                    uid,
                    held,
                )
            self._refused[uid] += 1
            return False
        if self.open >= self.total + (ROOT_EXTRA if uid == 0 else 0):
            if not self._refusing_all:
                top = ", ".join(f"uid {u}: {n}" for u, n in self.by_uid.most_common(3))
                log.warning(
                    "refusing connections: %d open, the limit (daemon.max_connections); "
                    "most held by %s",
                    self.open,
                    top,
                )
            self._refusing_all += 1
            return False
        self.by_uid[uid] = held + 1
        self.open += 1
        return True

    def release(self, uid: int) -> None:
        """A connection of ``uid`` that :meth:`admit` let in has closed."""
        self.open -= 1
        held = self.by_uid[uid] - 1
        if held > 0:
            self.by_uid[uid] = held
        else:
            del self.by_uid[uid]
        # the episode ends well below the limit, so that hovering at it is one episode
        refused = self._refused.get(uid)
        if refused and held <= self.per_user // 2:
            log.info("uid %d: %d connections were refused while it held its share", uid, refused)
            del self._refused[uid]
        if self._refusing_all and self.open <= self.total * 3 // 4:
            log.info(
                "accepting connections again: %d were refused at the limit", self._refusing_all
            )
            self._refusing_all = 0


class InputBudget:
    """The shared budget for incomplete messages (see the module docstring)."""

    def __init__(self, total: int = INPUT_BUDGET, free: int = INPUT_FREE) -> None:
        self.total = total
        self.free = free
        self.used = 0
        #: connections closed for want of budget in the current episode
        self._closed = 0

    def charge(self, charged: int, pending: int, uid: int) -> int:
        """A connection charged ``charged`` now holds ``pending`` bytes of an incomplete
        message. :returns: its new charge.

        :raises RemoteProtocolError: that would overdraw the budget: close the connection
            (its charge is unchanged; :meth:`release` it).
        """
        wanted = max(0, pending - self.free)
        if wanted > charged and self.used - charged + wanted > self.total:
            if not self._closed:
                log.warning(
                    "input buffers full (%d bytes of incomplete messages): closing "
                    "connections that send more of theirs, first one of uid %d",
                    self.used,
                    uid,
                )
            self._closed += 1
            raise RemoteProtocolError(
                f"incomplete message of {pending} bytes: the daemon's input buffers are full"
            )
        self.used += wanted - charged
        return wanted

    def release(self, charged: int, held: int) -> None:
        """A connection charged ``charged`` ends, freeing the ``held`` bytes it buffered."""
        self.used -= charged
        trimmer.released(held)
        if self._closed and self.used <= self.total // 2:
            log.info(
                "input buffers below their limit again: %d connections were closed", self._closed
            )
            self._closed = 0
