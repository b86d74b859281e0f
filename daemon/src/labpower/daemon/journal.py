"""The daemon's log output: journald (native protocol) under systemd, else stderr.

One handler, :class:`LogOutput`, sits on the ``labpower`` logger and writes every record.
Records the daemon's :class:`~labpower.daemon.logbus.LogBus` publishes were annotated by its
sink :func:`annotate` before they reach the handler (the bus is on a child logger), so the
journal entry carries the same ``seq``, target, device, channel, operation and state that live
subscribers saw, plus the calling client's uid and pid.

Nothing here may block the daemon: datagrams go to journald on a non-blocking socket (libsystemd's
``sd_journal_send`` blocks while journald's queue is full, e.g. when journald hangs or
restarts). While journald's queue is full (EAGAIN: journald is alive but busy, stopped or
restarting behind its socket unit), entries are held in order, up to :data:`BACKLOG`, and sent
as soon as it takes them again, so they reach the journal with all their fields. An entry
journald cannot take at all (no journald, a stale socket), or one more than the backlog
holds, is written to stderr instead. Each outage gets one notice on stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import stat
import struct
import sys
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Literal

import anyio
from labpower.client.escape import escape
from labpower.daemon.logbus import MESSAGE_LIMIT, EntryWriter

JOURNAL_SOCKET = "/run/systemd/journal/socket"
SYSLOG_IDENTIFIER = "labpowerd"
#: Identifies one run of the daemon in the journal, so history can tell this run's entries.
RUN_ID = os.environ.get("INVOCATION_ID") or uuid.uuid4().hex
#: Longest MESSAGE sent; a datagram must fit in the socket's send buffer.
MAX_MESSAGE = MESSAGE_LIMIT
#: Entries held while journald's queue is full, before more go to stderr.
BACKLOG = 4096
#: How often held entries are offered to journald again.
RETRY_SECONDS = 0.02
#: How often the log task looks for entries held by threads other than its own.
HELD_CHECK_SECONDS = 1.0
#: send errors that mean journald is there but cannot take more now
_BUSY = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS})
#: Record attribute carrying the bus entry of a record.
ENTRY_ATTR = "labpower_entry"

LogTarget = Literal["auto", "journal", "stderr"]

# entry key -> journal field
_ENTRY_FIELDS = {
    "target": "LABPOWER_TARGET",
    "device": "LABPOWER_DEVICE",
    "channel": "LABPOWER_CHANNEL",
    "op": "LABPOWER_OP",
    "state": "LABPOWER_STATE",
    "seq": "LABPOWER_SEQ",
    "before": "LABPOWER_BEFORE",
    "client_uid": "LABPOWER_CLIENT_UID",
    "client_pid": "LABPOWER_CLIENT_PID",
}


def priority(levelno: int) -> int:
    """The syslog priority of a Python logging level."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


def annotate(entry: dict[str, Any], record: logging.LogRecord) -> None:
    """LogBus sink: attach the published entry to its record for :class:`LogOutput`."""
    record.__dict__[ENTRY_ATTR] = entry


def entry_of(record: logging.LogRecord) -> Mapping[str, Any]:
    """The bus entry of a record, or what the record itself says of target and device."""
    entry = record.__dict__.get(ENTRY_ATTR)
    if entry is not None:
        return entry  # type: ignore[no-any-return]  # set by annotate()
    return {
        k: record.__dict__[k]
        for k in ("target", "device", "channel", "op", "state")
        if record.__dict__.get(k) is not None
    }


def fields(record: logging.LogRecord, message: str) -> dict[str, str]:
    """The journal fields of one record (upper-case names; journald drops the rest)."""
    code = None
    if record.lineno:  # the daemon turns off collecting callers (logging._srcfile)
        code = (record.pathname, record.lineno, record.funcName)
    return entry_fields(entry_of(record), record.levelno, record.name, message, code)


def entry_fields(
    entry: Mapping[str, Any],
    levelno: int,
    logger: str,
    message: str,
    code: tuple[str, int, str] | None = None,
) -> dict[str, str]:
    """The journal fields of one entry of ``logger`` (``code``: the file, line and function
    that logged it, where known)."""
    out = {
        "MESSAGE": message,
        "PRIORITY": str(priority(levelno)),
        "SYSLOG_IDENTIFIER": SYSLOG_IDENTIFIER,
        "LOGGER": logger,
        "LABPOWER_RUN": RUN_ID,
    }
    if code is not None:
        out.update(CODE_FILE=code[0], CODE_LINE=str(code[1]), CODE_FUNC=code[2])
    # the caller comes with the bus entry: the record may be written after the call ended
    for key, value in entry.items():
        name = _ENTRY_FIELDS.get(key)
        if name is not None and value is not None:
            out[name] = str(value)
    return out


def encode(journal_fields: Mapping[str, str]) -> bytes:
    """One native-protocol datagram: ``KEY=value`` lines, or for a value with a newline the
    name, a newline, the value's length as 64-bit little endian, the value and a newline."""
    parts: list[bytes] = []
    for key, value in journal_fields.items():
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            parts.append(key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n")
        else:
            parts.append(key.encode() + b"=" + data + b"\n")
    return b"".join(parts)


def _describe(exc: OSError) -> str:
    """``EAGAIN: Resource temporarily unavailable``"""
    code = errno.errorcode.get(exc.errno or 0)
    return f"{code}: {exc.strerror}" if code else str(exc)


class JournalWriter:
    """Sends datagrams to journald without ever waiting."""

    def __init__(self, path: str = JOURNAL_SOCKET) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._sock.setblocking(False)

    def send(self, datagram: bytes) -> None:
        """:raises OSError: journald cannot take it now (ENOENT, ECONNREFUSED, EAGAIN...)."""
        self._sock.sendto(datagram, socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL, self.path)

    def close(self) -> None:
        self._sock.close()


def service_unit(cgroup_file: str = "/proc/self/cgroup") -> str | None:
    """The systemd service the daemon runs in (``labpowerd.service``), or None when it runs
    in no service of its own (a shell, a session scope, a container without systemd)."""
    try:
        with open(cgroup_file, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3 and parts[1] in ("", "name=systemd"):  # cgroup v2, v1's systemd
            leaf = parts[2].rstrip("/").rpartition("/")[2]
            return leaf if leaf.endswith(".service") else None
    return None


def own_matches() -> list[str]:
    """Journal matches that let through only what this daemon (this and earlier runs, this
    and earlier boots) wrote, on fields journald records itself and no sender can write:
    the daemon's ``_UID`` and its service (``_SYSTEMD_UNIT``) under systemd, else its
    ``_UID`` and command name (``_COMM``; a process can rename itself, but only the same
    user's processes can then pass, and they could do anything the daemon does)."""
    matches = [f"_UID={os.getuid()}"]
    unit = service_unit()
    if unit is not None:
        return [*matches, f"_SYSTEMD_UNIT={unit}"]
    try:
        with open("/proc/self/comm", encoding="utf-8", errors="replace") as f:
            comm = f.read().rstrip("\n")
    except OSError:
        return matches
    return [*matches, f"_COMM={comm}"]


def journal_available(path: str = JOURNAL_SOCKET) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def choose_target(wanted: LogTarget) -> Literal["journal", "stderr"]:
    """Where logs go: ``auto`` means the journal when systemd connected stderr to it
    ($JOURNAL_STREAM) and journald's socket is there, else stderr (foreground)."""
    if wanted != "auto":
        return wanted
    if os.environ.get("JOURNAL_STREAM") and journal_available():
        return "journal"
    return "stderr"


def stderr_line(record: logging.LogRecord, message: str) -> str:
    """``level: target: message`` (the device where there is no target)."""
    return entry_line(entry_of(record), record.levelno, message)


def entry_line(entry: Mapping[str, Any], levelno: int, message: str) -> str:
    """:func:`stderr_line` of an entry."""
    where = entry.get("target") or entry.get("device")
    level = logging.getLevelName(levelno).lower()
    return f"{level}: {where}: {message}" if where else f"{level}: {message}"


class _Stderr:
    """Writes lines to stderr; when stderr is a socket (systemd's journal stream) it never
    waits for it, since that socket stalls together with journald."""

    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        try:
            fd = sys.stderr.fileno()
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                self._sock = socket.socket(fileno=os.dup(fd))
        except (OSError, ValueError, AttributeError):
            self._sock = None

    def write(self, line: str) -> None:
        data = (line + "\n").encode("utf-8", "replace")
        try:
            if self._sock is not None:
                self._sock.send(data, socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
            else:
                sys.stderr.write(line + "\n")
                sys.stderr.flush()
        except (OSError, ValueError):  # stderr closed or full: nowhere left to log
            pass

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()


def _no_loop(fn: Callable[[], None]) -> None:
    raise RuntimeError("LogOutput.run() is not running")


def _call_soon_function() -> Callable[[Callable[[], None]], object]:
    """How the running event loop is asked to call a function soon, from its own thread:
    asyncio's ``call_soon``, trio's ``run_sync_soon``."""
    try:
        return asyncio.get_running_loop().call_soon
    except RuntimeError:  # not asyncio: anyio runs on trio then
        import trio.lowlevel

        return trio.lowlevel.current_trio_token().run_sync_soon


#: An entry the bus published without a record: (entry, level number, logger name).
_Direct = tuple[dict[str, Any], int, str]


class LogOutput(EntryWriter):
    """Writes every record, and every entry the bus publishes without one
    (:meth:`write_entry`), to journald or stderr (see the module docstring)."""

    def __init__(
        self, target: Literal["journal", "stderr"], journal_socket: str = JOURNAL_SOCKET
    ) -> None:
        super().__init__(logging.NOTSET)
        self.target = target
        self.journal = JournalWriter(journal_socket) if target == "journal" else None
        self.stderr = _Stderr()
        #: entries journald could not take, written to stderr instead
        self.fallbacks = 0
        self._outage: str | None = None
        # Entries journald's full queue could not take yet: (datagram, the line stderr gets
        # if they never reach journald), in order. Guarded by _lock, like _outage: records
        # logged off the loop's thread are written at once, from their own thread.
        self._held: deque[tuple[bytes, str]] = deque()
        self._lock = threading.Lock()
        # While run() runs, records logged on the event loop's thread are written after the
        # call being served has sent its reply (see run()); elsewhere, at once.
        self._loop_thread: int | None = None
        self._pending: list[logging.LogRecord | _Direct] = []
        self._flush_scheduled = False
        self._call_soon: Callable[[Callable[[], None]], object] = _no_loop
        self._wakeup: anyio.Event | None = None

    def handle(self, record: logging.LogRecord) -> bool:
        # Skip logging.Handler's lock: sends are single datagrams, outage state has its own.
        if self.filter(record):
            if self._loop_thread == threading.get_ident():
                self._defer(record)
            else:
                self.emit(record)
        return True

    def write_entry(self, entry: dict[str, Any], levelno: int, logger: str) -> None:
        """Write an entry the bus published without a record (on the loop's thread: the
        bus publishes there only); its message is escaped already."""
        if self._loop_thread == threading.get_ident():
            self._defer((entry, levelno, logger))
        else:
            self._write(entry, levelno, logger, entry["message"], None)

    def _defer(self, item: logging.LogRecord | _Direct) -> None:
        self._pending.append(item)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._call_soon(self._scheduled_flush)

    async def run(self) -> None:
        """While this runs, records logged on its event loop are written by a callback the
        loop runs once the task that logged them yields: a switching call sends its reply
        before its log lines are written (a reply waits for no disk, pipe or journald), at
        the cost of one callback per batch of records (no task wakes up for them). This
        task offers held entries to journald again every :data:`RETRY_SECONDS`. The records
        keep their order; nothing is lost at stop."""
        self._call_soon = _call_soon_function()
        self._loop_thread = threading.get_ident()
        try:
            while True:
                self._wakeup = anyio.Event()
                # held entries are retried soon; a record held by another thread
                # (which cannot wake this task) waits at most HELD_CHECK_SECONDS
                if self.journal is None:  # stderr: nothing is held, no deadline to keep
                    await self._wakeup.wait()
                else:
                    wait = RETRY_SECONDS if self._held else HELD_CHECK_SECONDS
                    with anyio.move_on_after(wait):
                        await self._wakeup.wait()
                if self._held:
                    with self._lock, contextlib.suppress(OSError):
                        self._send_held()
        finally:
            self._loop_thread = None
            self._wakeup = None
            self._flush()

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self._flush()
        if self._held and self._wakeup is not None:
            self._wakeup.set()  # retry them at RETRY_SECONDS, not HELD_CHECK_SECONDS

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if self.journal is None and len(pending) > 1:
            # on stderr, a switch's lines go out in one write
            lines = []
            for item in pending:
                if isinstance(item, tuple):
                    entry, levelno, _ = item
                    lines.append(entry_line(entry, levelno, entry["message"]))
                elif (message := self._message(item)) is not None:
                    lines.append(stderr_line(item, message))
            if lines:
                self.stderr.write("\n".join(lines))
            return
        for item in pending:
            if isinstance(item, tuple):
                entry, levelno, logger = item
                self._write(entry, levelno, logger, entry["message"], None)
            else:
                self.emit(item)

    def _message(self, record: logging.LogRecord) -> str | None:
        """The record's message as written: one line, escaped; None if it cannot be
        formatted (reported through :meth:`handleError`)."""
        entry = record.__dict__.get(ENTRY_ATTR)
        if entry is not None and not record.exc_info:
            # the bus escaped this very message with the same limit (MESSAGE_LIMIT)
            return entry["message"]  # type: ignore[no-any-return]  # set by the bus
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
        except Exception:
            self.handleError(record)
            return None
        # one line, whatever a client or a file put in it: no forged lines on stderr, no
        # NUL turning the journal's MESSAGE into a blob, no terminal escapes
        return escape(message, MAX_MESSAGE)

    def emit(self, record: logging.LogRecord) -> None:
        message = self._message(record)
        if message is None:
            return
        code = (record.pathname, record.lineno, record.funcName) if record.lineno else None
        self._write(entry_of(record), record.levelno, record.name, message, code)

    def _write(
        self,
        entry: Mapping[str, Any],
        levelno: int,
        logger: str,
        message: str,
        code: tuple[str, int, str] | None,
    ) -> None:
        """One entry to journald, held while its queue is full, or to stderr."""
        if self.journal is not None:
            datagram = encode(entry_fields(entry, levelno, logger, message, code))
            with self._lock:
                try:
                    self._send_held()  # what came first goes first
                    self.journal.send(datagram)
                except OSError as exc:
                    busy = exc.errno in _BUSY
                    if busy and len(self._held) < BACKLOG:
                        self._held.append((datagram, entry_line(entry, levelno, message)))
                        self._notice(_describe(exc), f"holding up to {BACKLOG} until it can")
                        return
                    full = f"; {BACKLOG} entries held" if busy else ""
                    self._notice(_describe(exc) + full, "logging to stderr until it can")
                    self.fallbacks += 1
                else:
                    self._recovered()
                    return
        self.stderr.write(entry_line(entry, levelno, message))

    def _send_held(self) -> None:
        """Offer held entries to journald, oldest first. Called with _lock held.

        :raises OSError: journald is still busy (EAGAIN); what it did not take stays held.
        """
        held = self._held
        if not held or self.journal is None:
            return
        try:
            while held:
                self.journal.send(held[0][0])
                held.popleft()
        except OSError as exc:
            if exc.errno in _BUSY:
                raise
            # journald is gone (a stale or missing socket): what it held goes to stderr
            self._notice(_describe(exc), "logging to stderr until it can")
            self._held_to_stderr()
        else:
            self._recovered()

    def _held_to_stderr(self) -> None:
        while self._held:
            _, line = self._held.popleft()
            self.fallbacks += 1
            self.stderr.write(line)

    def _notice(self, reason: str, action: str) -> None:
        """One notice on stderr per outage (and per change of its reason)."""
        if self._outage != reason:
            self._outage = reason
            self.stderr.write(f"warning: journald cannot take entries ({reason}); {action}")

    def _recovered(self) -> None:
        if self._outage is not None:
            self._outage = None
            self.stderr.write("info: journald takes entries again")

    def close(self) -> None:
        if self.journal is not None:
            with self._lock:
                try:
                    self._send_held()
                except OSError as exc:  # journald still busy: nothing is lost at stop
                    self._notice(_describe(exc) + "; stopping", "writing held entries to stderr")
                    self._held_to_stderr()
            self.journal.close()
        self.stderr.close()
        super().close()
