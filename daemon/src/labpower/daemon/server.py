"""The varlink server: connections, dispatch, parameter checks.

Each connection is served by one task, one call at a time, in order (varlink allows
pipelining; replies keep the order of calls). Malformed input (bad JSON, a missing NUL
within the size limit, a message that is not a call) closes that connection only; a call
with a bad method or parameters gets the matching ``org.varlink.service`` error.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import anyio
from labpower.client.state import ServerConnection
from labpower.client.wire import (
    MAX_MESSAGE_SIZE,
    Call,
    LocalProtocolError,
    RemoteProtocolError,
    Reply,
    encode,
    encode_reply,
)
from labpower.daemon.access import check_allowed, is_admin, refuse
from labpower.daemon.api import ApiError
from labpower.daemon.connection import Connection, accept, peer_credentials
from labpower.daemon.history import HistorySource, MemoryHistory, parse_since
from labpower.daemon.interface import DESCRIPTIONS, POWER, SERVICE
from labpower.daemon.lab import Lab
from labpower.daemon.limits import ConnectionLimits, InputBudget
from labpower.daemon.logbus import BATCH_BYTES, CallContext, LogBus, Subscriber, current_call
from labpower.daemon.memory import trimmer
from labpower.daemon.stats import lab_stats

log = logging.getLogger("labpower.daemon.server")

_LEVELS = ("debug", "info", "warning", "error", "critical")
DEFAULT_READ_INTERVAL = 1.0
#: characters of a caller's value an error reply echoes at most, when echoing it whole
#: would make the reply too big
ECHO_LIMIT = 1024
#: What a connection ending under us looks like.
_HANGUP = (OSError, anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream)

try:
    VERSION = version("labpower-daemon")
except PackageNotFoundError:  # running from a source tree without metadata
    VERSION = "0+unknown"


def _error_reply(exc: ApiError) -> bytes:
    """The error reply; values echoed from the call are shortened when the reply would
    exceed the message size limit (a method name close to the limit must not crash us)."""
    try:
        return encode(Reply(exc.parameters, error=exc.name))
    except LocalProtocolError:
        short = {
            k: v[:ECHO_LIMIT] + "..." if isinstance(v, str) and len(v) > ECHO_LIMIT else v
            for k, v in exc.parameters.items()
        }
        return encode(Reply(short, error=exc.name))


def _invalid(name: str) -> ApiError:
    return ApiError("org.varlink.service.InvalidParameter", parameter=name)


class Params:
    """Typed access to a call's parameters; anything unexpected is InvalidParameter."""

    __slots__ = ("_p",)

    def __init__(self, params: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
        for key in params:
            if key not in allowed:
                raise _invalid(key)
        self._p = params

    def string(self, name: str) -> str:
        value = self._p.get(name)
        if not isinstance(value, str):
            raise _invalid(name)
        return value

    def optional_string(self, name: str) -> str | None:
        value = self._p.get(name)
        if value is not None and not isinstance(value, str):
            raise _invalid(name)
        return value

    def number(self, name: str, low: float, high: float) -> float | None:
        value = self._p.get(name)
        if value is None:
            return None
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not low <= value <= high
        ):
            raise _invalid(name)
        return float(value)

    def integer(self, name: str, low: int, high: int) -> int | None:
        value = self._p.get(name)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise _invalid(name)
        return value

    def flag(self, name: str) -> bool:
        value = self._p.get(name)
        if value is not None and not isinstance(value, bool):
            raise _invalid(name)
        return bool(value)

    def strings(self, name: str) -> list[str] | None:
        value = self._p.get(name)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _invalid(name)
        return value

    def level(self, name: str) -> str | None:
        value = self._p.get(name)
        if value is None:
            return None
        if value not in _LEVELS:
            raise _invalid(name)
        return str(value)


# A handler answers one call. It returns the reply parameters, or None when it has sent its
# replies itself; it raises anyio.EndOfStream when the connection must end after it.
Handler = Callable[[Call, Connection], Awaitable[Mapping[str, Any] | None]]


def fit_history(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The History reply: the newest entries that fit in one message (``truncated`` says
    whether older ones were left out; ask again with ``since``/``limit`` for those)."""
    budget = MAX_MESSAGE_SIZE - 1024
    size = sum(len(json.dumps(e)) + 1 for e in entries)
    if size < budget:
        return {"entries": entries}
    kept = 0
    size = 0
    for entry in reversed(entries):
        size += len(json.dumps(entry)) + 1
        if size >= budget:
            break
        kept += 1
    return {"entries": entries[len(entries) - kept :], "truncated": True}


class Server:
    def __init__(self, lab: Lab, bus: LogBus) -> None:
        self.lab = lab
        self.bus = bus
        #: connections served, in all and per uid (the daemon sets the descriptor ceiling)
        self.limits = ConnectionLimits(lab.config.daemon)
        #: incomplete messages, all connections together
        self.input_budget = InputBudget()
        #: switching calls in progress; shutdown waits for them
        self.switching = 0
        # set when switching drops to 0; made only while somebody waits (not for every call)
        self._idle: anyio.Event | None = None
        #: streams (Read with "more", Logs) open, by uid
        self._streams: dict[int, int] = {}
        #: where History finds past entries (the daemon switches it to the journal)
        self.history: HistorySource = MemoryHistory(bus)
        #: for Stats' uptime
        self.started = time.monotonic()
        self._methods: dict[str, Handler] = {
            f"{SERVICE}.GetInfo": self._get_info,
            f"{SERVICE}.GetInterfaceDescription": self._get_description,
            f"{POWER}.List": self._list,
            f"{POWER}.Get": self._get,
            f"{POWER}.On": self._on,
            f"{POWER}.Off": self._off,
            f"{POWER}.Cycle": self._cycle,
            f"{POWER}.Read": self._read,
            f"{POWER}.Logs": self._logs,
            f"{POWER}.History": self._history,
            f"{POWER}.Acquire": self._acquire,
            f"{POWER}.Release": self._release,
            f"{POWER}.Stats": self._stats,
        }

    async def idle(self) -> None:
        """Wait until no switching call is in progress."""
        if self.switching:
            if self._idle is None:
                self._idle = anyio.Event()
            await self._idle.wait()

    def admit(self, sock: socket.socket) -> int | None:
        """The peer's uid if its connection may be served (:mod:`labpower.daemon.limits`);
        None: it was refused and closed. Cheap, so the accept loop asks it first, and a
        flood of refused connections costs no task each."""
        uid = peer_credentials(sock)[1]
        if self.limits.admit(uid):
            return uid
        sock.close()
        return None

    async def handle(self, sock: socket.socket, uid: int) -> None:
        """Serve one connection that :meth:`admit` let in until the peer closes it or breaks
        the protocol."""
        limits = self.limits
        try:
            conn = await accept(sock)
        except OSError:
            limits.release(uid)
            sock.close()
            return
        # the state machine hands out calls one at a time, in order; whole calls that came
        # before broken bytes are answered, then the connection ends
        protocol = ServerConnection()
        budget = self.input_budget
        charged = 0
        try:
            while data := await conn.receive():
                protocol.receive_data(data)
                pending = protocol.pending
                if pending or charged:  # nothing to charge for whole calls (the usual case)
                    charged = budget.charge(charged, pending, uid)
                while (call := protocol.next_call()) is not None:
                    conn.pipelined = protocol.pipelined
                    await self._dispatch(call, conn)
                    protocol.end_call()
        except RemoteProtocolError as exc:
            log.debug("closing connection of pid %s: %s", conn.pid, exc)
        except _HANGUP:
            pass
        finally:
            budget.release(charged, protocol.pending)
            limits.release(uid)
            conn.close()

    async def _dispatch(self, call: Call, conn: Connection) -> None:
        """Answer one call."""
        handler = self._methods.get(call.method)
        reply: bytes
        try:
            if handler is None:
                if call.interface not in DESCRIPTIONS:
                    raise ApiError(f"{SERVICE}.InterfaceNotFound", interface=call.interface)
                raise ApiError(f"{SERVICE}.MethodNotFound", method=call.method)
            if call.upgrade:
                raise _invalid("upgrade")
            result = await handler(call, conn)
            if result is None:
                return
            reply = encode_reply(result)
        except ApiError as exc:
            reply = _error_reply(exc)
        if not call.oneway:
            await conn.send(reply)

    # -- org.varlink.service
    async def _get_info(self, call: Call, conn: Connection) -> dict[str, Any]:
        Params(call.parameters, ())
        return {
            "vendor": "labpower",
            "product": "labpowerd",
            "version": VERSION,
            "url": "https://github.com/labpower/labpower",
            "interfaces": list(DESCRIPTIONS),
        }

    async def _get_description(self, call: Call, conn: Connection) -> dict[str, Any]:
        name = Params(call.parameters, ("interface",)).string("interface")
        if name not in DESCRIPTIONS:
            raise ApiError(f"{SERVICE}.InterfaceNotFound", interface=name)
        return {"description": DESCRIPTIONS[name]}

    def _open_stream(self, conn: Connection) -> None:
        """Count a stream of the caller's user until :meth:`_close_stream` (plain calls
        rather than a context manager: a thousand open streams then hold no generator each).

        :raises ApiError: TooManyStreams, when the user has ``max_streams_per_user`` open.
        """
        uid = conn.uid
        limit = self.lab.config.daemon.max_streams_per_user
        open_now = self._streams.get(uid, 0)
        if uid != 0 and open_now >= limit:
            raise ApiError("TooManyStreams", limit=limit)
        self._streams[uid] = open_now + 1
        if open_now + 1 == limit and uid != 0:  # once per time the user reaches it
            log.warning(
                "uid %d (pid %d) has %d streams open, the limit (daemon.max_streams_per_user)",
                uid,
                conn.pid,
                limit,
            )

    def _close_stream(self, conn: Connection) -> None:
        left = self._streams[conn.uid] - 1
        if left:
            self._streams[conn.uid] = left
        else:
            del self._streams[conn.uid]

    # -- io.labpower.Power
    async def _list(self, call: Call, conn: Connection) -> dict[str, Any]:
        p = Params(call.parameters, ("refresh", "known_only"))
        visible = self.lab.visible_to(conn)
        return {"targets": await self.lab.list(p.flag("refresh"), visible, p.flag("known_only"))}

    async def _get(self, call: Call, conn: Connection) -> dict[str, Any]:
        p = Params(call.parameters, ("target", "refresh"))
        name = p.string("target")
        self.lab.check_readable(name, conn, "get")
        return {"target": await self.lab.get(name, p.flag("refresh"))}

    async def _power(
        self, call: Call, conn: Connection, op: str, extra: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """On, Off and Cycle: permission and lease checked once the target is ours."""
        p = Params(call.parameters, ("target", "lease", *extra))
        name = p.string("target")
        token = p.optional_string("lease")
        delay = p.number("delay", 0.0, 3600.0) if extra else None
        lab = self.lab
        target = lab.target(name)

        def guard() -> None:
            check_allowed(target.config, conn, op)
            lab.leases.check(name, conn, token)

        lease = lab.leases.holder(name)
        ctx = CallContext(
            target=name,
            op=op,
            uid=conn.uid,
            pid=conn.pid,
            client=lease.name if lease is not None else None,
        )
        reset = current_call.set(ctx)
        self.switching += 1
        try:
            if op == "cycle":
                result = await lab.cycle(name, delay, guard)
            else:
                result = await lab.switch(name, op == "on", op, guard)
        finally:
            current_call.reset(reset)
            self.switching -= 1
            if not self.switching and self._idle is not None:
                self._idle.set()
                self._idle = None
        return {"target": result, "log_seq": ctx.last_seq}

    async def _on(self, call: Call, conn: Connection) -> dict[str, Any]:
        return await self._power(call, conn, "on")

    async def _off(self, call: Call, conn: Connection) -> dict[str, Any]:
        return await self._power(call, conn, "off")

    async def _cycle(self, call: Call, conn: Connection) -> dict[str, Any]:
        return await self._power(call, conn, "cycle", ("delay",))

    async def _acquire(self, call: Call, conn: Connection) -> dict[str, Any]:
        p = Params(call.parameters, ("target", "name", "timeout"))
        name, client = p.string("target"), p.optional_string("name")
        if client is not None and len(client) > ECHO_LIMIT:
            # the name is echoed in every List, Get and log entry about the target: a huge
            # one would make those too big for other clients to read
            raise _invalid("name")
        timeout = p.number("timeout", 0.001, 7 * 86400.0)
        target = self.lab.target(name)
        check_allowed(target.config, conn, "acquire")
        lease = self.lab.leases.acquire(name, conn, client, timeout)
        conn.on_close(self.lab.leases.release_all)
        return {"target": target.to_wire(self.lab.leases), "token": lease.token}

    async def _release(self, call: Call, conn: Connection) -> dict[str, Any]:
        p = Params(call.parameters, ("target", "token", "force"))
        name, token = p.string("target"), p.optional_string("token")
        target = self.lab.target(name)
        if not p.flag("force"):
            self.lab.leases.release(name, conn, token)
        elif is_admin(conn, self.lab.config.daemon.admin_groups):
            self.lab.leases.break_lease(name, conn)
        else:
            raise refuse(name, conn, "release", "may not break leases (not root or an admin)")
        return {"target": target.to_wire(self.lab.leases)}

    async def _read(self, call: Call, conn: Connection) -> dict[str, Any] | None:
        p = Params(call.parameters, ("target", "interval", "count"))
        name = p.string("target")
        interval = p.number("interval", 0.001, 86400.0)
        count = p.integer("count", 1, 2**31)
        self.lab.check_readable(name, conn, "read")
        if not call.more:
            return {"reading": await self.lab.read(name)}
        self._open_stream(conn)
        try:
            await self._read_stream(conn, name, interval, count)
        finally:
            self._close_stream(conn)
        return None

    async def _read_stream(
        self, conn: Connection, name: str, interval: float | None, count: int | None
    ) -> None:
        period = DEFAULT_READ_INTERVAL if interval is None else interval
        sent = 0
        # readings keep to one schedule (start + n periods), so that the timer's lateness
        # does not add up over a long stream; after a stall longer than a period (a slow
        # board) the schedule starts again from now rather than sending a burst
        deadline = anyio.current_time()
        while True:
            now = anyio.current_time()
            deadline = deadline + period if now <= deadline + period else now + period
            reading = await self.lab.read(name)  # an error reply ends the stream
            sent += 1
            last = count is not None and sent >= count
            await conn.send(encode_reply({"reading": reading}, continues=not last))
            if last:
                return None
            await anyio.sleep_until(deadline)

    async def _stats(self, call: Call, conn: Connection) -> dict[str, Any]:
        Params(call.parameters, ())
        return {
            "version": VERSION,
            "uptime": time.monotonic() - self.started,
            "connections": self.limits.open,
            "streams": sum(self._streams.values()),
            "subscribers": len(self.bus.subscribers),
            "dropped": self.bus.dropped,
            **lab_stats(self.lab, conn),
        }

    async def _history(self, call: Call, conn: Connection) -> dict[str, Any]:
        p = Params(call.parameters, ("targets", "level", "limit", "since"))
        since = None
        if call.parameters.get("since") is not None:
            try:
                since = parse_since(p.string("since"))
            except ValueError:
                raise _invalid("since") from None
        entries = await self.history(
            p.strings("targets"),
            p.level("level"),
            p.integer("limit", 1, 1_000_000),
            since,
            self.lab.visible_to(conn),
        )
        return fit_history(entries)

    async def _logs(self, call: Call, conn: Connection) -> None:
        """Stream entries until the peer hangs up; then the connection ends."""
        p = Params(call.parameters, ("targets", "level"))
        targets, level = p.strings("targets"), p.level("level")
        if not call.more:
            raise ApiError(f"{SERVICE}.ExpectedMore")
        self._open_stream(conn)
        try:
            await self._subscribe(conn, targets, level)
        finally:
            self._close_stream(conn)
        raise anyio.EndOfStream

    async def _subscribe(
        self, conn: Connection, targets: list[str] | None, level: str | None
    ) -> None:
        """Send entries as they come, until the peer sends anything or hangs up.

        One task waits on one thing, the connection, which the bus wakes when entries come:
        a subscriber costs no task group, second task or event of its own, so a thousand of
        them hold little memory (and leave none pinned behind when they go)."""
        sub = Subscriber(
            targets,
            level,
            self.lab.config.daemon.subscriber_queue,
            self.lab.visible_to(conn),
            self.lab.config.daemon.subscriber_bytes,
            conn.wake,
        )
        self.bus.subscribers.add(sub)
        try:
            await conn.send(encode_reply({}, continues=True))
            # more input after Logs ends the subscription, like a hang-up; input that came
            # with the call was already read from the socket (pipelined)
            while not (conn.pipelined or conn.input_pending()):
                if conn.writable() and (batch := sub.take()):
                    await conn.send(batch)
                else:  # for entries, for the peer to read what was sent, or for its input
                    await conn.wait_input()
        finally:
            self.bus.subscribers.discard(sub)
            trimmer.released(sub.queued_bytes + BATCH_BYTES)
