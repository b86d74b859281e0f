"""The blocking client: plain sockets, no event loop, no thread per call.

Every request and result is built in ``_protocol`` (shared with the async client) and every
transition of the conversation is checked by ``state.ClientConnection``: this module only
moves bytes.
"""

from __future__ import annotations

# _socket: the C socket type that transport.connect returns (see transport.py)
import _socket
import os
from _thread import allocate_lock

from labpower.client import _protocol as p
from labpower.client.errors import DaemonUnreachable, RemoteProtocolError
from labpower.client.handles import Handle
from labpower.client.state import RECEIVE_SIZE, ClientConnection, State
from labpower.client.timing import BUSY_WAIT, ReplyPoller
from labpower.client.transport import connect, kernel_timeout
from labpower.client.wire import Call, Reply

# typing, contextlib and collections are not imported at run time (see frozen.py and
# _standins.py); the checker reads this block as true
TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
    from contextlib import (
        AbstractContextManager,  # noqa: F401 - in a string (TargetHandle)
        contextmanager,
    )
    from types import TracebackType
    from typing import Any, TypeVar

    from labpower.client.transport import Channel
    from labpower.client.types import LogEntry, Reading, Target

    T = TypeVar("T")
else:
    from labpower.client._standins import contextmanager

__all__ = ["BUSY_WAIT", "LOG_WAIT_SECONDS", "Client", "LogStream", "TargetHandle"]

#: How long a call inside ``log_stream()`` waits for its own log entries at most.
LOG_WAIT_SECONDS = 10.0


class _Connection:
    """One varlink connection over a blocking Unix socket, or an ssh bridge (transport.py)."""

    def __init__(self, path: str, timeout: float | None, busy_wait: float = 0.0) -> None:
        self.path = path
        self.protocol = ClientConnection()
        self._replied = False  # a valid reply came (a broken first one is explained)
        self.sock: Channel = connect(path, timeout)
        # Polling needs a socket whose fd is non-blocking: a socket with a timeout is
        # (Python polls it), a blocking one (timeout None) would block in os.read.
        self.poller: ReplyPoller | None = None
        if isinstance(self.sock, _socket.socket):
            if busy_wait > 0 and timeout is not None:
                self.poller = ReplyPoller(self.sock.fileno(), busy_wait)
            else:
                kernel_timeout(self.sock, timeout)

    @property
    def idle(self) -> bool:
        """No call waits for replies: the connection can take the next call."""
        return self.protocol.state is State.IDLE

    def send(self, call: Call, encoded: bytes | None = None) -> None:
        """``encoded``: the call's bytes, where the caller has them (``Op.wire``).

        :raises LocalProtocolError: the call is not allowed now (nothing was sent).
        :raises DaemonUnreachable: the daemon went away."""
        data = self.protocol.send(call, encoded)
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise DaemonUnreachable(self.path, f"send failed: {exc}") from exc
        if self.poller is not None:
            self.poller.sent(
                call.method, call.parameters.get("target"), not (call.oneway or call.more)
            )

    def receive(self) -> Reply:
        """The next reply.

        :raises DaemonUnreachable: the daemon closed the connection, or timed out.
        :raises RemoteProtocolError: it broke the protocol (what came in is in the message).
        """
        protocol = self.protocol
        try:
            reply = protocol.next_reply()
            if reply is None and self.poller is not None:
                data = self.poller.poll()
                if data:
                    protocol.receive_data(data)
                    reply = protocol.next_reply()
            while reply is None:
                try:
                    data = self.sock.recv(RECEIVE_SIZE)
                except (TimeoutError, BlockingIOError) as exc:  # Python's or the kernel's
                    raise DaemonUnreachable(self.path, "no reply in time") from exc
                except OSError as exc:
                    raise DaemonUnreachable(self.path, f"receive failed: {exc}") from exc
                if not data:
                    raise DaemonUnreachable(self.path, "connection closed by the daemon")
                protocol.receive_data(data)
                reply = protocol.next_reply()
        except RemoteProtocolError as exc:
            raise p.explain(exc, self.path, not self._replied) from None
        self._replied = True
        if self.poller is not None:
            self.poller.received()
        return reply

    def close(self) -> None:
        self.protocol.close()
        try:
            self.sock.shutdown(_socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class Client:
    """A connection to labpowerd.

    ``socket`` defaults to $LABPOWER_SOCKET, else /run/labpower/labpower.sock; it may be
    ``ssh://[user@]host[:port][/path]`` for a daemon on another host (see transport.py). The
    connection opens on first use and reopens on the next call after it failed (the daemon
    went away, or broke the protocol: the failed call raises :class:`DaemonUnreachable` or
    :class:`RemoteProtocolError`). Safe to share between threads: calls are serialised.

    ``timeout``: how long to wait for a reply. ``busy_wait``: how long to poll for a reply
    before sleeping until it comes (seconds; 0, the default, never polls): a fast reply is
    then read without the process sleeping and being woken, at the price of up to that much
    CPU per call (see :mod:`labpower.client.timing`).
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
        # threading is imported by a log stream only: a command that switches once starts
        # without it (the lock is the same either way)
        self._lock = allocate_lock()
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
        :raises RemoteProtocolError: the daemon broke the protocol (the next call reconnects).
        :raises LocalProtocolError: the call has "more" (use :meth:`stream`), or cannot be
            encoded; nothing was sent.
        """
        return dict(self._run(call, p.check))

    def _run(self, call: Call, parse: Callable[[Reply], T], encoded: bytes | None = None) -> T:
        """One call, one reply, parsed; a connection that failed is dropped (the next call
        opens a new one). ``encoded``: the call's bytes, where the caller has them."""
        p.refuse_more(call)
        with self._lock:
            conn = self._conn
            if conn is not None and not conn.idle:
                # a call interrupted while it waited (Ctrl-C) left its reply on the way:
                # that reply must not answer this call
                conn.close()
                conn = None
            if conn is None:
                conn = self._conn = _Connection(self.path, self.timeout, self.busy_wait)
            try:
                conn.send(call, encoded)
                if call.oneway:
                    return parse(Reply())
                return parse(conn.receive())
            except (DaemonUnreachable, RemoteProtocolError):
                conn.close()
                self._conn = None
                raise

    def stream(self, call: Call) -> Iterator[dict[str, Any]]:
        """Send a call with ``more`` on a connection of its own; yield each reply's parameters.
        Closing the iterator closes that connection."""
        yield from self._stream(Call(call.method, call.parameters, more=True), dict)

    def _stream(self, call: Call, parse: Callable[[Mapping[str, Any]], T]) -> Iterator[T]:
        conn = self._open()
        try:
            conn.send(call)
            while True:
                reply = conn.receive()
                yield parse(p.check(reply))
                if not reply.continues:
                    return
        finally:
            conn.close()

    def _op(self, op: p.Op[T]) -> T:
        def parse(reply: Reply) -> T:
            return op.parse(p.check(reply))

        return self._run(op.call, parse, op.wire)

    def _switch(self, op: p.Op[tuple[Target, int]]) -> Target:
        target, seq = self._op(op)
        for stream in self._streams:
            stream.wait_for(seq)
        return target

    # -- the power interface
    def targets(self, *, refresh: bool = False, known_only: bool = False) -> list[Target]:
        """Every target; ``refresh``: read the boards again rather than answer from what
        the daemon knows; ``known_only``: read no board at all (a state the daemon does
        not know stays unknown)."""
        return self._op(p.list_op(refresh, known_only))

    def target(self, name: str) -> TargetHandle:
        return TargetHandle(self, name)

    def get(self, target: str, *, refresh: bool = False) -> Target:
        """The target's state; ``refresh``: read its board again."""
        return self._op(p.get_op(target, refresh))

    def on(self, target: str) -> Target:
        return self._switch(p.switch_op(self.lease_tokens, "On", target))

    def off(self, target: str) -> Target:
        return self._switch(p.switch_op(self.lease_tokens, "Off", target))

    def cycle(self, target: str, delay: float | None = None) -> Target:
        return self._switch(p.switch_op(self.lease_tokens, "Cycle", target, delay))

    def read(
        self, target: str, count: int | None = 1, interval: float | None = None
    ) -> Generator[Reading, None, None]:
        """Yield ``count`` readings (forever if None), ``interval`` seconds apart; closing the
        generator early closes the stream's connection."""
        op = p.read_op(target, count, interval)
        if op.call.more:
            yield from self._stream(op.call, op.parse)
        else:
            yield self._op(op)

    def acquire(
        self, target: str, name: str | None = None, timeout: float | None = None
    ) -> tuple[Target, str]:
        """Take the target's lease for this connection; returns it and the lease token.

        :raises Locked: somebody else holds it.
        """
        return self._op(p.acquire_op(self.lease_tokens, target, name, timeout))

    def release(self, target: str, *, force: bool = False) -> Target:
        """Give the target's lease back; ``force``: break it whoever holds it (root and the
        daemon's admin groups). :raises PermissionDenied: not allowed to."""
        return self._op(p.release_op(self.lease_tokens, target, force))

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
        return self._op(p.history_op(targets, level, limit, since))

    def logs(
        self, targets: Iterable[str] | None = None, level: str | None = None
    ) -> Iterator[LogEntry]:
        """Follow the daemon's log live (filtered by the daemon) until the iterator closes."""
        op = p.logs_op(targets, level)
        for entry in self._stream(op.call, op.parse):
            if entry is not None:
                yield entry

    def log_stream(
        self, targets: Iterable[str] | None = None, level: str | None = None
    ) -> LogStream:
        """Forward daemon log entries to Python logging while the context is open.

        Entries go to ``labpower.remote.<target>`` at their level. Inside the context a
        switching call returns only after its own entries were emitted.
        """
        return LogStream(self, targets, level)


class TargetHandle(Handle["Target", "Iterator[Reading]", "AbstractContextManager[Target]"]):
    """One target of a :class:`Client`; every method is one call to the daemon."""

    __slots__ = ()


class LogStream:
    """A live ``Logs`` subscription on its own connection, read by one background thread that
    re-emits each entry through Python logging (see :meth:`Client.log_stream`)."""

    def __init__(self, client: Client, targets: Iterable[str] | None, level: str | None) -> None:
        import threading

        self.client = client
        self._filter = p.EntryFilter(targets, level)
        self._cond = threading.Condition()
        self._seen = -1
        self._dead: BaseException | None = None
        self._conn: _Connection | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LogStream:
        conn = self.client._open(timeout=None)
        try:
            conn.sock.settimeout(self.client.timeout)
            conn.send(p.logs_op(None, None).call)
            p.check_subscribed(conn.receive())  # the subscription is live from here on
            conn.sock.settimeout(None)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        import threading

        self._thread = threading.Thread(target=self._run, name="labpower-log-stream", daemon=True)
        self._thread.start()
        self.client._streams.append(self)
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        import threading

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
