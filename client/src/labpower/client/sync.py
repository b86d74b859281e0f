"""The blocking client: plain sockets, no event loop, no thread per call."""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType
from typing import Any

from labpower.client import _protocol as p
from labpower.client.errors import DaemonUnreachable, LabpowerError
from labpower.client.transport import Channel, connect
from labpower.client.types import LogEntry, Reading, Target
from labpower.client.wire import Call, Decoder, Reply, encode

#: Default of ``Client(busy_wait=...)``, seconds: the longest a call polls for its reply.
BUSY_WAIT = 400e-6
#: How long before a reply is due (by what the same call took lately) polling starts: a
#: process sleeping in select() wakes up to about a quarter of a millisecond late on a VM.
POLL_EARLY = 250e-6
#: How long a call inside ``log_stream()`` waits for its own log entries at most.
LOG_WAIT_SECONDS = 10.0
#: select() takes descriptors below this only.
_FD_SETSIZE = 1024
#: The most kinds of call (method and target) whose durations a connection remembers.
_MAX_KINDS = 4096


class _Timing:
    """What one kind of call (method and target) took lately, for :class:`_Connection`."""

    __slots__ = ("backoff", "skip", "took")

    def __init__(self) -> None:
        self.took = 0.0  # 0: not known yet
        self.skip = 0  # calls left before the next poll
        self.backoff = 1


class _Connection:
    """One varlink connection over a blocking Unix socket, or an ssh bridge (transport.py)."""

    def __init__(self, path: str, timeout: float | None, busy_wait: float = 0.0) -> None:
        self.path = path
        self._decoder = Decoder()
        self._replies: deque[dict[str, Any]] = deque()
        self.sock: Channel = connect(path, timeout)
        # Polling needs a socket whose fd is non-blocking: a socket with a timeout is
        # (Python polls it), a blocking one (timeout None) would block in os.read.
        self._fd = -1
        if busy_wait > 0 and isinstance(self.sock, socket.socket) and timeout is not None:
            self._fd = self.sock.fileno()
        self._spin = busy_wait if self._fd >= 0 else 0.0
        self._timings: dict[tuple[str, Any], _Timing] = {}
        self._timing: _Timing | None = None  # of the call waiting for its reply
        self._sent = 0.0

    def send(self, call: Call) -> None:
        if self._spin:
            key = (call.method, call.parameters.get("target"))
            timing = self._timings.get(key)
            if timing is None:
                if len(self._timings) >= _MAX_KINDS:
                    self._timings.clear()
                timing = self._timings[key] = _Timing()
            self._timing = None if call.oneway or call.more else timing
        try:
            self.sock.sendall(encode(call))
        except OSError as exc:
            raise DaemonUnreachable(self.path, f"send failed: {exc}") from exc
        self._sent = time.perf_counter()

    def receive(self) -> Reply:
        """The next reply. :raises DaemonUnreachable: the daemon closed or timed out."""
        replies = self._replies
        timing, self._timing = self._timing, None
        if not replies and timing is not None:
            data = self._poll(timing)
            if data:
                replies.extend(self._decoder.feed(data))
        while not replies:
            try:
                data = self.sock.recv(262144)
            except TimeoutError as exc:
                raise DaemonUnreachable(self.path, "no reply in time") from exc
            except OSError as exc:
                raise DaemonUnreachable(self.path, f"receive failed: {exc}") from exc
            if not data:
                raise DaemonUnreachable(self.path, "connection closed by the daemon")
            replies.extend(self._decoder.feed(data))
        if timing is not None:
            took = time.perf_counter() - self._sent
            # down at once, up by an eighth: the window follows the fast replies
            known = timing.took
            timing.took = took if took < known or not known else known + (took - known) / 8
        return Reply.from_wire(replies.popleft())

    def _poll(self, timing: _Timing) -> bytes | None:
        """Poll for the reply around the moment it is due, for up to ``busy_wait`` seconds,
        before sleeping in recv() until it comes.

        A process that sleeps until the kernel wakes it for the reply pays for the wake-up
        (on a virtual machine, tens of microseconds up to a quarter of a millisecond, and
        the daemon's send() pays as much again). So a call learns what calls of its kind
        (method and target) took lately: a fast one (the daemon idle, the board fast) polls
        from the start; a slow one (a serial board's wire time) sleeps until
        :data:`POLL_EARLY` before its reply is due, then polls. A reply that comes earlier
        ends the sleep at once. Polling gives the CPU away between two looks. After a
        miss, polling is skipped for the next 1, 2, 4 ... up to 1024 calls of the kind, so
        that calls whose time varies burn no CPU that the daemon may need.
        """
        if timing.skip:
            timing.skip -= 1
            return None
        fd = self._fd
        start = self._sent + timing.took - POLL_EARLY
        sleep = start - time.perf_counter()
        if sleep > 0:
            if fd < _FD_SETSIZE:
                select.select((fd,), (), (), sleep)
            elif sleep >= 1e-3:
                poller = select.poll()
                poller.register(fd, select.POLLIN)
                poller.poll(int(sleep * 1e3))  # whole milliseconds, rounded down
        deadline = time.perf_counter() + self._spin
        while True:
            try:
                data = os.read(fd, 262144)
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

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class Client:
    """A connection to labpowerd.

    ``socket`` defaults to $LABPOWER_SOCKET, else /run/labpower/labpower.sock; it may be
    ``ssh://[user@]host[:port][/path]`` for a daemon on another host (see transport.py). The
    connection opens on first use and reopens on the next call after the daemon went away (the
    failed call raises :class:`DaemonUnreachable`). Safe to share between threads: calls are
    serialised.

    ``timeout``: how long to wait for a reply. ``busy_wait``: how long to poll for a reply
    before sleeping until it comes (seconds; 0 never polls): a fast reply is then read
    without the process sleeping and being woken, at the price of up to that much CPU per
    call. Polling backs off by itself while replies take longer than that.
    """

    def __init__(
        self,
        socket: str | os.PathLike[str] | None = None,
        *,
        timeout: float | None = 60.0,
        busy_wait: float = BUSY_WAIT,
    ) -> None:
        self.path = p.socket_path(socket)
        self.timeout = timeout
        self.busy_wait = busy_wait
        self._conn: _Connection | None = None
        self._lock = threading.Lock()
        self._streams: list[LogStream] = []
        #: lease tokens sent with switching calls: inherited from $LABPOWER_LEASES, and
        #: those of leases this client acquired
        self.lease_tokens: dict[str, str] = p.lease_tokens()

    # -- lifecycle
    def __enter__(self) -> Client:
        self.connect()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def connect(self) -> None:
        """Open the connection now. :raises DaemonUnreachable: no daemon listens."""
        with self._lock:
            if self._conn is None:
                self._conn = _Connection(self.path, self.timeout, self.busy_wait)

    def close(self) -> None:
        for stream in list(self._streams):
            stream.close()
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _open(self, timeout: float | None = None) -> _Connection:
        return _Connection(self.path, self.timeout if timeout is None else timeout)

    # -- generic calls
    def call(self, call: Call) -> dict[str, Any]:
        """Send one call and return its reply's parameters.

        :raises VarlinkError: (a subclass of) the daemon's error reply.
        :raises DaemonUnreachable: no daemon, or it went away.
        """
        with self._lock:
            conn = self._conn
            if conn is None:
                conn = self._conn = _Connection(self.path, self.timeout, self.busy_wait)
            try:
                conn.send(call)
                if call.oneway:
                    return {}
                reply = conn.receive()
            except LabpowerError:
                conn.close()
                self._conn = None
                raise
        return dict(p.check(reply))

    def stream(self, call: Call) -> Iterator[dict[str, Any]]:
        """Send a call with ``more`` on a connection of its own; yield each reply's parameters.
        Closing the iterator closes that connection."""
        conn = self._open()
        try:
            conn.send(Call(call.method, call.parameters, more=True))
            while True:
                reply = conn.receive()
                yield dict(p.check(reply))
                if not reply.continues:
                    return
        finally:
            conn.close()

    def _power(self, member: str, params: dict[str, Any]) -> Target:
        token = self.lease_tokens.get(params["target"])
        if token is not None:
            params["lease"] = token
        target, seq = p.op_result(self.call(p.power_call(member, params)))
        for stream in self._streams:
            stream.wait_for(seq)
        return target

    # -- the power interface
    def targets(self) -> list[Target]:
        return p.targets_result(self.call(p.power_call("List")))

    def target(self, name: str) -> TargetHandle:
        return TargetHandle(self, name)

    def get(self, target: str) -> Target:
        return Target.from_wire(self.call(p.power_call("Get", {"target": target}))["target"])

    def on(self, target: str) -> Target:
        return self._power("On", {"target": target})

    def off(self, target: str) -> Target:
        return self._power("Off", {"target": target})

    def cycle(self, target: str, delay: float | None = None) -> Target:
        params: dict[str, Any] = {"target": target}
        if delay is not None:
            params["delay"] = delay
        return self._power("Cycle", params)

    def read(
        self, target: str, count: int | None = 1, interval: float | None = None
    ) -> Iterator[Reading]:
        """Yield ``count`` readings (forever if None), ``interval`` seconds apart."""
        params = p.read_parameters(target, count, interval)
        if count == 1:
            yield p.reading_result(self.call(p.power_call("Read", params)))
            return
        for reply in self.stream(p.power_call("Read", params)):
            yield p.reading_result(reply)

    def acquire(
        self, target: str, name: str | None = None, timeout: float | None = None
    ) -> tuple[Target, str]:
        """Take the target's lease for this connection; returns it and the lease token.

        :raises Locked: somebody else holds it.
        """
        params = self.call(p.power_call("Acquire", p.acquire_parameters(target, name, timeout)))
        token = params["token"]
        self.lease_tokens[target] = token
        return Target.from_wire(params["target"]), token

    def release(self, target: str) -> Target:
        """Give the target's lease back."""
        params: dict[str, Any] = {"target": target}
        token = self.lease_tokens.pop(target, None)
        if token is not None:
            params["token"] = token
        return Target.from_wire(self.call(p.power_call("Release", params))["target"])

    @contextmanager
    def lease(
        self, target: str, name: str | None = None, timeout: float | None = None
    ) -> Iterator[Target]:
        """Hold the target exclusively for the block (see :meth:`acquire`)."""
        held, _ = self.acquire(target, name, timeout)
        try:
            yield held
        finally:
            try:
                self.release(target)
            except DaemonUnreachable:
                pass  # the lease ended with the connection anyway

    def history(
        self,
        targets: Iterable[str] | None = None,
        level: str | None = None,
        limit: int | None = None,
        since: str | None = None,
    ) -> list[LogEntry]:
        """Past log entries, oldest first (from the journal where the daemon logs there, so
        across daemon restarts); ``since``: an RFC 3339 time or a span back like "1h"."""
        params = p.filter_parameters(targets, level)
        if limit is not None:
            params["limit"] = limit
        if since is not None:
            params["since"] = since
        return p.entries_result(self.call(p.power_call("History", params)))

    def logs(
        self, targets: Iterable[str] | None = None, level: str | None = None
    ) -> Iterator[LogEntry]:
        """Follow the daemon's log live (filtered by the daemon) until the iterator closes."""
        for params in self.stream(p.power_call("Logs", p.filter_parameters(targets, level))):
            entry = params.get("entry")
            if entry is not None:
                yield LogEntry.from_wire(entry)

    def log_stream(
        self, targets: Iterable[str] | None = None, level: str | None = None
    ) -> LogStream:
        """Forward daemon log entries to Python logging while the context is open.

        Entries go to ``labpower.remote.<target>`` at their level. Inside the context a
        switching call returns only after its own entries were emitted.
        """
        return LogStream(self, targets, level)


class TargetHandle:
    """One target of a :class:`Client`; every method is one call to the daemon."""

    def __init__(self, client: Client, name: str) -> None:
        self.client = client
        self.name = name

    def __repr__(self) -> str:
        return f"<TargetHandle {self.name!r} at {self.client.path}>"

    def on(self) -> Target:
        return self.client.on(self.name)

    def off(self) -> Target:
        return self.client.off(self.name)

    def cycle(self, delay: float | None = None) -> Target:
        return self.client.cycle(self.name, delay)

    def state(self) -> Target:
        return self.client.get(self.name)

    def lease(
        self, name: str | None = None, timeout: float | None = None
    ) -> AbstractContextManager[Target]:
        """``with dut.lease(): ...`` holds the target exclusively for the block."""
        return self.client.lease(self.name, name, timeout)

    def read(self, count: int | None = 1, interval: float | None = None) -> Iterator[Reading]:
        return self.client.read(self.name, count, interval)


class LogStream:
    """A live ``Logs`` subscription on its own connection, read by one background thread that
    re-emits each entry through Python logging (see :meth:`Client.log_stream`)."""

    def __init__(self, client: Client, targets: Iterable[str] | None, level: str | None) -> None:
        self.client = client
        self._filter = p.EntryFilter(targets, level)
        self._cond = threading.Condition()
        self._seen = -1
        self._dead: BaseException | None = None
        self._conn: _Connection | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LogStream:
        conn = self.client._open(timeout=None)
        conn.sock.settimeout(self.client.timeout)
        conn.send(p.power_call("Logs", more=True))
        first = conn.receive()  # no entry: the subscription is live from here on
        if p.log_entry_of(first) is not None or not first.continues:
            conn.close()
            raise LabpowerError("Logs subscription did not start with an empty reply")
        conn.sock.settimeout(None)
        self._conn = conn
        self._thread = threading.Thread(target=self._run, name="labpower-log-stream", daemon=True)
        self._thread.start()
        self.client._streams.append(self)
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self in self.client._streams:
            self.client._streams.remove(self)
        if self._conn is not None:
            self._conn.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._conn = self._thread = None

    def _run(self) -> None:
        conn = self._conn
        assert conn is not None
        accept = self._filter
        try:
            while True:
                entry = p.log_entry_of(conn.receive())
                if entry is None:
                    continue
                if accept(entry):
                    p.emit(entry)
                with self._cond:
                    self._seen = entry.seq
                    self._cond.notify_all()
        except BaseException as exc:  # ends the stream, woken waiters see it
            with self._cond:
                self._dead = exc
                self._cond.notify_all()

    def wait_for(self, seq: int, timeout: float = LOG_WAIT_SECONDS) -> bool:
        """Block until every entry up to ``seq`` was emitted; False if the stream ended or the
        wait timed out."""
        with self._cond:
            return (
                self._cond.wait_for(lambda: self._seen >= seq or self._dead is not None, timeout)
                and self._seen >= seq
            )
