"""One client connection: bytes in and out, and who is at the other end.

Two implementations behind one interface, chosen by the event loop the daemon runs on:

- on asyncio, :class:`AsyncioConnection` uses asyncio's own transport and protocol: the
  socket stays registered with the loop, data arrives by callback, and a call costs no more
  than one wake-up of the waiting task. Waiting for readability afresh for every call (what
  generic code has to do) costs two epoll_ctl system calls and about 15 us of Python per call
  on asyncio, which is a sixth of the daemon's whole budget per call under load.
- elsewhere (trio), :class:`SocketConnection` works on the raw non-blocking socket with
  ``anyio.wait_readable`` / ``wait_writable``.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Callable

import anyio

_PEERCRED = struct.Struct("3i")
_SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)  # Linux >= 4.13; not in Python 3.11
RECEIVE_SIZE = 262144
#: Input buffered for a connection before the daemon stops reading from it (back-pressure);
#: also the most read from one connection at a time, so that a thousand connections that
#: all send at once cost a bounded amount of memory.
READ_AHEAD = 32 * 1024


class _Buffers(threading.local):
    """One receive buffer for all connections of an event loop (thread): connections are
    served on their loop's thread, and nothing awaits between filling the buffer and copying
    out what arrived. sock.recv(RECEIVE_SIZE) would allocate 256 KiB per call and shrink it in
    place: with many connections that fragments the heap, and the daemon's RSS crept up by
    ~10 MB per 100,000 calls."""

    def __init__(self) -> None:
        self.buffer = bytearray(RECEIVE_SIZE)
        self.view = memoryview(self.buffer)


_buffers = _Buffers()


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """pid, uid and gid of the peer process as the kernel recorded them when it connected
    (SO_PEERCRED); -1 each where the kernel does not say."""
    try:
        pid, uid, gid = _PEERCRED.unpack(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
        )
    except OSError:
        return -1, -1, -1
    return pid, uid, gid


class Connection:
    """What the server needs of a connection; see the two implementations below."""

    __slots__ = ("_closed", "_groups", "_on_close", "gid", "pid", "pipelined", "sock", "uid")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._closed = False
        #: the peer sent more input after the call being served (pipelined calls)
        self.pipelined = False
        self._groups: frozenset[int] | None = None
        self._on_close: list[Callable[[Connection], None]] = []
        #: The peer process (SO_PEERCRED); -1 where the kernel does not say.
        self.pid, self.uid, self.gid = peer_credentials(sock)

    def groups(self) -> frozenset[int]:
        """The peer's primary and supplementary groups, as the kernel recorded them when it
        connected (SO_PEERGROUPS)."""
        if self._groups is None:
            gids = {self.gid}
            size = 4 * 256
            try:
                raw = self.sock.getsockopt(socket.SOL_SOCKET, _SO_PEERGROUPS, size)
                gids.update(struct.unpack(f"{len(raw) // 4}I", raw))
            except OSError:
                pass
            self._groups = frozenset(gids)
        return self._groups

    async def receive(self) -> bytes:
        """The next bytes from the peer; b"" once it closed its side.

        :raises OSError: the connection broke.
        """
        raise NotImplementedError

    async def send(self, data: bytes) -> None:
        """Send all of ``data``, waiting while the peer's buffer is full.

        :raises OSError: the peer went away (BrokenPipeError, ConnectionResetError).
        """
        raise NotImplementedError

    async def wait_input(self) -> None:
        """Return once the peer sent something more or hung up (nothing is consumed), or
        :meth:`wake` was called, or for no reason: callers look again at what they wait for.
        """
        raise NotImplementedError

    def wake(self) -> None:
        """Make a :meth:`wait_input` in progress return (call on the event loop's thread)."""
        raise NotImplementedError

    def input_pending(self) -> bool:
        """The peer sent something that :meth:`receive` has not returned yet, or hung up."""
        raise NotImplementedError

    def writable(self) -> bool:
        """:meth:`send` would not wait (as far as the connection knows)."""
        return True

    def on_close(self, callback: Callable[[Connection], None]) -> None:
        """Call ``callback(self)`` when the connection closes (once per callback)."""
        if callback not in self._on_close:
            self._on_close.append(callback)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            for callback in self._on_close:
                callback(self)
            self._release()

    def _release(self) -> None:
        raise NotImplementedError


async def accept(sock: socket.socket) -> Connection:
    """The connection object for an accepted socket, suited to the running event loop.

    :raises OSError: the socket is already unusable.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not asyncio
        return SocketConnection(sock)
    conn = AsyncioConnection(sock)
    await loop.connect_accepted_socket(lambda: conn.protocol, sock)
    return conn


class SocketConnection(Connection):
    """A raw non-blocking socket; works on any event loop anyio supports."""

    __slots__ = ("_waiting",)

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        super().__init__(sock)
        self._waiting: anyio.CancelScope | None = None

    async def receive(self) -> bytes:
        sock = self.sock
        while True:
            buffers = _buffers
            try:
                n = sock.recv_into(buffers.buffer, READ_AHEAD)
            except BlockingIOError:
                await anyio.wait_readable(sock)
                continue
            return buffers.view[:n].tobytes()

    async def send(self, data: bytes) -> None:
        sock = self.sock
        view = memoryview(data)
        while view:
            try:
                sent = sock.send(view)
            except BlockingIOError:
                await anyio.wait_writable(sock)
                continue
            view = view[sent:]

    async def wait_input(self) -> None:
        self._waiting = anyio.CancelScope()
        try:
            with self._waiting:
                await anyio.wait_readable(self.sock)
        finally:
            self._waiting = None

    def wake(self) -> None:
        if self._waiting is not None:
            self._waiting.cancel()

    def input_pending(self) -> bool:
        try:
            self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:  # broken: receive() says how
            return True
        return True  # a byte, or b"" at the end

    def _release(self) -> None:
        anyio.notify_closing(self.sock)
        self.sock.close()


class _Protocol(asyncio.BufferedProtocol):
    """Feeds an :class:`AsyncioConnection` from asyncio's transport callbacks."""

    __slots__ = ("conn",)

    def __init__(self, conn: AsyncioConnection) -> None:
        self.conn = conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.conn.transport = transport  # type: ignore[assignment]  # a socket transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return _buffers.view[: max(READ_AHEAD - self.conn.buffered, 1024)]

    def buffer_updated(self, nbytes: int) -> None:
        conn = self.conn
        conn.received.append(_buffers.view[:nbytes].tobytes())
        conn.buffered += nbytes
        if conn.buffered >= READ_AHEAD and not conn.reading_paused:
            conn.reading_paused = True
            conn.transport.pause_reading()
        conn.wake()

    def eof_received(self) -> bool:
        self.conn.eof = True
        self.conn.wake()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        conn = self.conn
        conn.eof = True
        conn.lost = exc if exc is not None else BrokenPipeError("connection closed")
        conn.wake()
        conn.drained()

    def pause_writing(self) -> None:
        self.conn.writing_paused = True

    def resume_writing(self) -> None:
        self.conn.writing_paused = False
        self.conn.drained()
        self.conn.wake()


class AsyncioConnection(Connection):
    """A connection served through asyncio's transport (see the module docstring)."""

    __slots__ = (
        "_drain",
        "_loop",
        "_waiter",
        "buffered",
        "eof",
        "lost",
        "protocol",
        "reading_paused",
        "received",
        "transport",
        "writing_paused",
    )

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock)
        # asking for the running loop is a getpid() system call each time (CPython 3.11)
        self._loop = asyncio.get_running_loop()
        self.protocol = _Protocol(self)
        self.transport: asyncio.Transport
        self.received: list[bytes] = []
        self.buffered = 0
        self.eof = False
        self.lost: BaseException | None = None
        self.reading_paused = False
        self.writing_paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def drained(self) -> None:
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    async def wait_input(self) -> None:
        if self.received or self.eof:
            return
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def input_pending(self) -> bool:
        return bool(self.received) or self.eof

    def writable(self) -> bool:
        return not self.writing_paused

    async def receive(self) -> bytes:
        while not self.received and not self.eof:
            await self.wait_input()
        if self.received:
            data = self.received[0] if len(self.received) == 1 else b"".join(self.received)
            self.received.clear()
            self.buffered = 0
            if self.reading_paused:
                self.reading_paused = False
                self.transport.resume_reading()
            return data
        if self.lost is not None and not isinstance(self.lost, BrokenPipeError):
            raise self.lost
        return b""

    async def send(self, data: bytes) -> None:
        if self.lost is not None or self.transport.is_closing():
            raise BrokenPipeError("connection closed")
        self.transport.write(data)
        while self.writing_paused and self.lost is None:
            self._drain = self._loop.create_future()
            try:
                await self._drain
            finally:
                self._drain = None
        if self.lost is not None:
            raise BrokenPipeError("connection closed")

    def _release(self) -> None:
        self.transport.close()
