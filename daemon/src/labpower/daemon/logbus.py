"""The daemon's log: numbered entries, a short history, and a push fan-out to subscribers.

The bus is a logging handler on the ``labpower.daemon`` and ``labpower.backends`` loggers
only, never on the root logger, so records a client library re-emits in the same process
(``labpower.remote.*``) can never loop back. Each entry gets the next daemon-wide ``seq``;
the call being served (a context variable, which anyio copies into worker threads) supplies
the target, device and caller, and learns the seq of the last entry it produced.

Every subscriber has its own bounded queue of references to pre-encoded reply bytes (each
entry is encoded once and shared by all subscribers): the producer never waits for a
subscriber, a slow subscriber never slows another, and one that falls behind by more than its
limit gets an explicit "N entries dropped" entry instead of silent loss.

The entries of every switch (:func:`log_entry`) skip Python logging where nothing but the bus
and the daemon's own log writers (:class:`EntryWriter`: journald, stderr) would see the
record: the entry goes straight to the bus and to those writers, with the same fields, the
same escaping and the same order as a record would have. A LogRecord, its handlers' walk
and their formatting cost about as much as serving the rest of the call; anywhere else (a
handler of somebody else's on the way, a logger filter, no bus attached) the entry is an
ordinary record.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
from labpower.client.escape import escape
from labpower.client.types import LEVELS, level_name
from labpower.client.wire import encode_reply

#: Loggers whose records become log entries.
SOURCES = ("labpower.daemon", "labpower.backends")
#: LogRecord attributes (``extra=``) that become entry fields.
_RECORD_FIELDS = (
    "device",
    "target",
    "channel",
    "op",
    "state",
    "before",
    "client_uid",
    "client_pid",
)
#: Longest message of an entry, in characters (before escaping).
MESSAGE_LIMIT = 48 * 1024
#: Most bytes sent to a subscriber in one write. What the socket does not take stays in the
#: connection's buffer, once per subscriber: this bounds it for one that stopped reading.
BATCH_BYTES = 32 * 1024
#: Entries a subscriber may fall behind by before entries are dropped for it.
SUBSCRIBER_LIMIT = 65536
#: Bytes of encoded entries a subscriber may fall behind by, likewise.
SUBSCRIBER_BYTES = 1024 * 1024


@dataclass(slots=True)
class CallContext:
    """Who is being served and for what; fields of every entry logged during the call."""

    target: str | None = None
    device: str | None = None
    channel: int | None = None
    op: str | None = None
    uid: int | None = None
    pid: int | None = None
    #: the name a client gave its lease, if any
    client: str | None = None
    #: seq of the last entry this call produced
    last_seq: int = 0


current_call: ContextVar[CallContext | None] = ContextVar("labpower_call", default=None)

#: level_name() of the few levels in use, looked up rather than searched for each entry
_level_name = functools.lru_cache(maxsize=64)(level_name)


class EntryWriter(logging.Handler):
    """A handler that also writes entries the bus publishes without a record
    (:class:`labpower.daemon.journal.LogOutput`)."""

    def write_entry(self, entry: dict[str, Any], levelno: int, logger: str) -> None:
        """Write ``entry`` (its message escaped already), logged on ``logger``."""
        raise NotImplementedError


_second: list[Any] = [None, ""]


def rfc3339(ts: float) -> str:
    """UTC RFC 3339 time with microseconds; the date part is formatted once a second."""
    whole = int(ts)
    if _second[0] != whole:
        _second[0], _second[1] = whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{_second[1]}.{int((ts - whole) * 1e6):06d}Z"


class Subscriber:
    """One live ``Logs`` call: a filter and its own queue of encoded replies.

    It holds no task, event or buffer of its own (a thousand idle subscribers cost a
    thousand small objects, not a thousand task groups): :meth:`push` calls ``wake`` when
    the subscriber goes from having nothing to send to having something, and whoever serves
    it :meth:`take` s what is queued when it can send.
    """

    __slots__ = (
        "_last_dropped_seq",
        "_wake",
        "dropped",
        "levelno",
        "limit",
        "limit_bytes",
        "queue",
        "queued_bytes",
        "targets",
        "visible",
    )

    def __init__(
        self,
        targets: Iterable[str] | None,
        level: str | None,
        limit: int = SUBSCRIBER_LIMIT,
        visible: Callable[[str | None], bool] | None = None,
        limit_bytes: int = SUBSCRIBER_BYTES,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.targets = frozenset(targets) if targets is not None else None
        #: which targets' entries the subscriber may see (None: all)
        self.visible = visible
        self.levelno = LEVELS[level] if level else logging.NOTSET
        self.limit = limit
        self.limit_bytes = limit_bytes
        #: entries to send, each the one bytes object every subscriber shares
        self.queue: deque[bytes] = deque()
        #: bytes in the queue (entries are shared between subscribers, so this is what the
        #: subscriber could cost, not what it does)
        self.queued_bytes = 0
        self.dropped = 0
        self._last_dropped_seq = 0
        self._wake = wake

    def wants(self, entry: dict[str, Any], levelno: int) -> bool:
        return (
            levelno >= self.levelno
            and (self.targets is None or entry.get("target") in self.targets)
            and (self.visible is None or self.visible(entry.get("target")))
        )

    def push(self, data: bytes, seq: int) -> bool:
        """Queue an entry; False: dropped (the subscriber is too far behind)."""
        idle = not self.queue and not self.dropped
        queued = len(self.queue) < self.limit and self.queued_bytes + len(data) <= self.limit_bytes
        if queued:
            self.queue.append(data)
            self.queued_bytes += len(data)
        else:
            self.dropped += 1
            self._last_dropped_seq = seq
        # only the first entry after a drained queue wakes the server: one that is still
        # sending, or waits for the peer to read, looks at the queue again when done
        if idle and self._wake is not None:
            self._wake()
        return queued

    def take(self) -> bytes:
        """What is queued (up to :data:`BATCH_BYTES`), as one buffer to send, with the
        notice of dropped entries after it once the queue is empty; b"" when nothing is."""
        queue = self.queue
        if not queue and not self.dropped:
            return b""
        parts: list[bytes] = []
        size = 0
        while queue and size < BATCH_BYTES:
            part = queue.popleft()
            parts.append(part)
            size += len(part)
        self.queued_bytes -= size
        if self.dropped and not queue:
            # Entries are only dropped while the queue is full, so every dropped entry came
            # after everything queued: the notice goes last, with the last dropped seq.
            notice = {
                "time": rfc3339(time.time()),
                "level": "warning",
                "message": f"{self.dropped} entries dropped: this subscriber reads too slowly",
                "seq": self._last_dropped_seq,
            }
            parts.append(encode_reply({"entry": notice}, continues=True))
            self.dropped = 0
        return parts[0] if len(parts) == 1 else b"".join(parts)


class LogBus(logging.Handler):
    """Turns log records into numbered entries; keeps history; feeds subscribers."""

    def __init__(self, history: int = 1000) -> None:
        super().__init__(logging.NOTSET)
        self.seq = 0
        self.history: deque[tuple[dict[str, Any], int]] = deque(maxlen=history or None)
        self._keep_history = history > 0
        self.subscribers: set[Subscriber] = set()
        #: entries dropped for subscribers that read too slowly, all of them together
        self.dropped = 0
        self._token: anyio.lowlevel.EventLoopToken | None = None
        self._loop_thread: int | None = None
        #: extra sinks (e.g. journald) called with (entry, record) on the loop thread
        self.sinks: list[Callable[[dict[str, Any], logging.LogRecord], None]] = []

    # -- lifecycle
    def attach(self) -> None:
        """Start publishing; call from the event loop the subscribers run on."""
        global _attached
        self._token = anyio.lowlevel.current_token()
        self._loop_thread = threading.get_ident()
        for name in SOURCES:
            logging.getLogger(name).addHandler(self)
        _attached = self

    def detach(self) -> None:
        global _attached
        for name in SOURCES:
            logging.getLogger(name).removeHandler(self)
        self._token = None
        self._loop_thread = None
        if _attached is self:
            _attached = None

    # -- logging.Handler
    def handle(self, record: logging.LogRecord) -> bool:
        # Skip logging.Handler's per-record lock: entries are published on the loop thread.
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        ctx = current_call.get()
        if threading.get_ident() == self._loop_thread:
            seq = self._publish(record, ctx)
        elif self._token is not None:
            try:
                seq = anyio.from_thread.run_sync(self._publish, record, ctx, token=self._token)
            except RuntimeError:  # the loop is gone (shutting down)
                return
        else:
            return
        if ctx is not None:
            ctx.last_seq = seq

    def _publish(self, record: logging.LogRecord, ctx: CallContext | None) -> int:
        # what the record quotes from clients is escaped; escaping again changes nothing
        entry = self._entry(
            record.created, record.levelno, escape(record.getMessage(), MESSAGE_LIMIT), ctx
        )
        extra = record.__dict__
        for key in _RECORD_FIELDS:
            if key in extra and extra[key] is not None:
                entry[key] = extra[key]
        self._fan_out(entry, record.levelno)
        for sink in self.sinks:
            sink(entry, record)
        return entry["seq"]  # type: ignore[no-any-return]  # set by _entry

    def _entry(
        self, created: float, levelno: int, message: str, ctx: CallContext | None
    ) -> dict[str, Any]:
        """A new entry with the next seq, and the fields of the call being served."""
        self.seq = seq = self.seq + 1
        entry: dict[str, Any] = {
            "time": rfc3339(created),
            "level": _level_name(levelno),
            "message": message,
            "seq": seq,
        }
        if ctx is not None:
            if ctx.target is not None:
                entry["target"] = ctx.target
            if ctx.device is not None:
                entry["device"] = ctx.device
            if ctx.channel is not None:
                entry["channel"] = ctx.channel
            if ctx.op is not None:
                entry["op"] = ctx.op
            if ctx.uid is not None and ctx.uid >= 0:
                entry["client_uid"], entry["client_pid"] = ctx.uid, ctx.pid
        return entry

    def _fan_out(self, entry: dict[str, Any], levelno: int) -> None:
        """Into the history, and to every subscriber that wants it."""
        if self._keep_history:
            self.history.append((entry, levelno))
        data = b""
        for sub in self.subscribers:
            if sub.wants(entry, levelno):
                # encoded once, shared by every subscriber that wants it
                data = data or encode_reply({"entry": entry}, continues=True)
                if not sub.push(data, entry["seq"]):
                    self.dropped += 1

    def writers_for(self, logger: logging.Logger, levelno: int) -> list[EntryWriter] | None:
        """The daemon's writers that a record of ``logger`` at ``levelno`` would reach, when
        they and this bus are all it would reach (on the loop's thread); None when the
        record must be made: another handler, a filter, or a thread of its own."""
        if (
            self._loop_thread != threading.get_ident()
            or not logger.isEnabledFor(levelno)
            or logger.filters
        ):
            return None
        writers: list[EntryWriter] = []
        seen_bus = False
        node: logging.Logger | None = logger
        while node is not None:
            for handler in node.handlers:
                if handler.level > levelno or handler.filters:
                    return None
                if handler is self:
                    seen_bus = True
                elif isinstance(handler, EntryWriter):
                    writers.append(handler)
                else:
                    return None
            if not node.propagate:
                break
            node = node.parent
        return writers if seen_bus else None

    def publish(
        self,
        writers: list[EntryWriter],
        logger: str,
        levelno: int,
        message: str,
        fields: dict[str, Any],
    ) -> None:
        """An entry without a record (see :func:`log_entry`); ``message`` is escaped here."""
        ctx = current_call.get()
        entry = self._entry(time.time(), levelno, escape(message, MESSAGE_LIMIT), ctx)
        for key in _RECORD_FIELDS:
            value = fields.get(key)
            if value is not None:
                entry[key] = value
        self._fan_out(entry, levelno)
        for writer in writers:
            writer.write_entry(entry, levelno, logger)
        if ctx is not None:
            ctx.last_seq = entry["seq"]

    # -- readers
    def past(
        self, targets: Iterable[str] | None, level: str | None, limit: int | None
    ) -> list[dict[str, Any]]:
        """History entries matching the filter, oldest first, the newest ``limit`` of them."""
        probe = Subscriber(targets, level)
        found = [e for e, levelno in self.history if probe.wants(e, levelno)]
        return found[-limit:] if limit else found


#: the bus attached last (the daemon's), for :func:`log_entry`
_attached: LogBus | None = None


def log_entry(logger: logging.Logger, levelno: int, message: str, **fields: Any) -> None:
    """Log ``message`` (not a format string: written as it is, escaped) with ``fields`` as
    the entry's fields (``extra=`` of a record). The daemon's per-switch lines come here: on
    the daemon's loop, where only the bus and the daemon's writers would see the record, the
    entry is published without one (see the module docstring)."""
    bus = _attached
    writers = None if bus is None else bus.writers_for(logger, levelno)
    if writers is None or bus is None:
        logger.log(levelno, "%s", message, extra=fields, stacklevel=2)
    else:
        bus.publish(writers, logger.name, levelno, message, fields)
