"""One client connection on a raw non-blocking Unix socket.

The server talks to sockets directly (``anyio.wait_readable`` / ``wait_writable``) instead of
through anyio's stream objects: a call then costs one trip through the event loop (waiting for
the request) instead of three, which is most of a round trip's time on the daemon's side.
Works on asyncio and trio alike.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable

import anyio

_PEERCRED = struct.Struct("3i")
_SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)  # Linux >= 4.13; not in Python 3.11
RECEIVE_SIZE = 262144
# One receive buffer for every connection (they are all served on the event loop thread, and
# nothing awaits between filling it and copying out what arrived). sock.recv(RECEIVE_SIZE)
# would allocate 256 KiB per call and shrink it in place: with many connections that
# fragments the heap, and the daemon's RSS crept up by ~10 MB per 100,000 calls.
_RECEIVE_BUFFER = bytearray(RECEIVE_SIZE)
_RECEIVE_VIEW = memoryview(_RECEIVE_BUFFER)


class Connection:
    __slots__ = ("_closed", "_groups", "_on_close", "gid", "pid", "pipelined", "sock", "uid")

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self._closed = False
        #: the peer sent more input after the call being served (pipelined calls)
        self.pipelined = False
        self._groups: frozenset[int] | None = None
        self._on_close: list[Callable[[Connection], None]] = []
        #: The peer process (SO_PEERCRED); -1 where the kernel does not say.
        self.pid = self.uid = self.gid = -1
        try:
            self.pid, self.uid, self.gid = _PEERCRED.unpack(
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
            )
        except OSError:
            pass

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
        sock = self.sock
        while True:
            try:
                n = sock.recv_into(_RECEIVE_BUFFER)
            except BlockingIOError:
                await anyio.wait_readable(sock)
                continue
            return _RECEIVE_VIEW[:n].tobytes()

    async def send(self, data: bytes) -> None:
        """Send all of ``data``, waiting while the peer's buffer is full.

        :raises OSError: the peer went away (BrokenPipeError, ConnectionResetError).
        """
        sock = self.sock
        view = memoryview(data)
        while view:
            try:
                sent = sock.send(view)
            except BlockingIOError:
                await anyio.wait_writable(sock)
                continue
            view = view[sent:]

    def on_close(self, callback: Callable[[Connection], None]) -> None:
        """Call ``callback(self)`` when the connection closes (once per callback)."""
        if callback not in self._on_close:
            self._on_close.append(callback)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            for callback in self._on_close:
                callback(self)
            anyio.notify_closing(self.sock)
            self.sock.close()
