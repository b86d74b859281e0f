"""Who may switch and read what: per-target allow lists, read policies, and exclusive leases.

Allow lists (``allow_users`` / ``allow_groups`` of a target) are checked against the
caller's credentials from the kernel (SO_PEERCRED, SO_PEERGROUPS), never against anything
the client says. Root may always switch. A target without allow lists is open to everyone
who can open the socket (its permissions are the first gate).

Reading a target (its state and lease holder in Get and List, its readings, its log entries
in Logs and History) follows its read policy: ``allowed`` (the default) lets in whoever may
switch it, ``all`` everyone who can open the socket.

A lease makes one connection the only one allowed to switch a target. It ends when that
connection closes (so a crashed test script frees it), when released, or when its optional
timeout passes. The holder may hand the lease's token to child processes
(``$LABPOWER_LEASES``), whose calls then count as the holder's; a token works only for the
user who took the lease. Root, and members of ``daemon.admin_groups``, may break a lease
(``Release`` with ``force``).
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

from labpower.client.escape import escape
from labpower.daemon.api import ApiError
from labpower.daemon.config import TargetConfig
from labpower.daemon.connection import Connection
from labpower.daemon.logbus import rfc3339

log = logging.getLogger("labpower.daemon.access")


def allowed(target: TargetConfig, conn: Connection) -> bool:
    """May the peer of ``conn`` switch ``target``?"""
    if not target.allow_users and not target.allow_groups:
        return True
    if conn.uid == 0 or conn.uid in target.allow_users:
        return True
    return bool(target.allow_groups) and not target.allow_groups.isdisjoint(conn.groups())


def readable(target: TargetConfig, conn: Connection, policy: str) -> bool:
    """May the peer of ``conn`` read ``target`` (``policy``: its effective read policy)?"""
    return policy == "all" or allowed(target, conn)


def is_admin(conn: Connection, admin_groups: frozenset[int]) -> bool:
    """May the peer break other users' leases? Root, and members of ``admin_groups``."""
    return conn.uid == 0 or (bool(admin_groups) and not admin_groups.isdisjoint(conn.groups()))


def refuse(target: str | None, conn: Connection, op: str, why: str) -> ApiError:
    """Log who was refused what, and the error to raise."""
    log.warning(
        "%s refused: uid %d (pid %d) %s",
        op,
        conn.uid,
        conn.pid,
        why,
        extra={"target": target, "op": op, "client_uid": conn.uid, "client_pid": conn.pid},
    )
    return ApiError("org.varlink.service.PermissionDenied")


def check_allowed(target: TargetConfig, conn: Connection, op: str) -> None:
    """:raises ApiError: PermissionDenied, after logging who was refused."""
    if not allowed(target, conn):
        raise refuse(target.name, conn, op, f"is not allowed to switch {target.name}")


def check_readable(target: TargetConfig, conn: Connection, policy: str, op: str) -> None:
    """:raises ApiError: PermissionDenied, after logging who was refused."""
    if not readable(target, conn, policy):
        raise refuse(target.name, conn, op, f"is not allowed to read {target.name}")


@dataclass(slots=True)
class Lease:
    target: str
    owner: Connection
    uid: int
    pid: int
    name: str | None
    token: str
    since: str
    #: time.monotonic() when it ends by itself, or None
    deadline: float | None = None

    def held_by(self, conn: Connection, token: str | None) -> bool:
        """Does ``conn`` act under this lease: it took it, or it shows the token and is the
        same user (a token that leaked to another user is worth nothing)?"""
        return self.owner is conn or (
            token is not None
            and conn.uid == self.uid
            and secrets.compare_digest(token.encode(), self.token.encode())
        )

    def expired(self, now: float) -> bool:
        return self.deadline is not None and now >= self.deadline

    def to_wire(self) -> dict[str, Any]:
        expires = None
        if self.deadline is not None:
            expires = rfc3339(time.time() + max(0.0, self.deadline - time.monotonic()))
        return {
            "uid": self.uid,
            "pid": self.pid,
            "name": self.name,
            "since": self.since,
            "expires": expires,
        }


class Leases:
    """Every lease held, by target name."""

    def __init__(self) -> None:
        self._by_target: dict[str, Lease] = {}

    def holder(self, target: str) -> Lease | None:
        lease = self._by_target.get(target)
        if lease is not None and lease.expired(time.monotonic()):
            self._end(lease, "expire", "expired")
            return None
        return lease

    def _end(self, lease: Lease, op: str, how: str) -> None:
        del self._by_target[lease.target]
        log.info(
            "lease of uid %d (pid %d) %s",
            lease.uid,
            lease.pid,
            how,
            extra={"target": lease.target, "op": op},
        )

    def acquire(
        self, target: str, conn: Connection, name: str | None, timeout: float | None
    ) -> Lease:
        """Take (or renew, for its holder) the lease of ``target``.

        :raises ApiError: Locked, naming the holder.
        """
        lease = self.holder(target)
        deadline = None if timeout is None else time.monotonic() + timeout
        if lease is not None and lease.owner is not conn:
            raise locked(lease)
        if lease is not None:
            lease.deadline, lease.name = deadline, name if name is not None else lease.name
            return lease
        lease = Lease(
            target,
            conn,
            conn.uid,
            conn.pid,
            name,
            secrets.token_urlsafe(18),
            rfc3339(time.time()),
            deadline,
        )
        self._by_target[target] = lease
        log.info(
            "lease taken by uid %d (pid %d)%s",
            conn.uid,
            conn.pid,
            f" for {escape(name)}" if name else "",
            extra={"target": target, "op": "acquire"},
        )
        return lease

    def release(self, target: str, conn: Connection, token: str | None) -> bool:
        """End the lease if ``conn`` holds it or presents its token; False if there was none.

        :raises ApiError: Locked, when somebody else holds it.
        """
        lease = self.holder(target)
        if lease is None:
            return False
        if not lease.held_by(conn, token):
            raise locked(lease)
        self._end(lease, "release", f"released by uid {conn.uid} (pid {conn.pid})")
        return True

    def break_lease(self, target: str, conn: Connection) -> bool:
        """End the lease of ``target`` whoever holds it (an admin's Release with ``force``;
        the caller checked that ``conn`` is an admin); False if there was none."""
        lease = self.holder(target)
        if lease is None:
            return False
        if lease.held_by(conn, None):
            return self.release(target, conn, None)
        del self._by_target[target]
        log.warning(
            "lease of uid %d (pid %d)%s broken by uid %d (pid %d)",
            lease.uid,
            lease.pid,
            f" for {escape(lease.name)}" if lease.name else "",
            conn.uid,
            conn.pid,
            extra={"target": target, "op": "release"},
        )
        return True

    def release_all(self, conn: Connection) -> None:
        """The connection closed: its leases end."""
        for lease in [lease for lease in self._by_target.values() if lease.owner is conn]:
            self._end(lease, "release", "ended with its connection")

    def check(self, target: str, conn: Connection, token: str | None) -> None:
        """:raises ApiError: Locked, when somebody else holds the lease of ``target``."""
        if not self._by_target:
            return
        lease = self.holder(target)
        if lease is not None and not lease.held_by(conn, token):
            raise locked(lease)


def locked(lease: Lease) -> ApiError:
    return ApiError("Locked", target=lease.target, holder=lease.to_wire())
