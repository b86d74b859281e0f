"""One kept-alive HTTP/1.1 connection to a device: h11 (the sans-I/O HTTP/1.1 state machine
httpx's own transport uses) over an anyio TCP stream, on the caller's loop.

A device's API is a handful of fixed URLs asked one at a time (the device's lock), so a
client needs no pool, no URL model and no TLS: this is all of it, and it costs about a
third of a millisecond per request less than httpx's layers (measured:
``benchmarks/net_bench.py``). A connection the device closed while idle is opened again
once, before anything of the request could have reached it.
"""

from __future__ import annotations

import socket

import anyio
import h11
from anyio.abc import SocketStream

#: the largest reply body read from a device (a status of many outlets is a few KiB)
MAX_REPLY = 256 * 1024
#: the largest head (status line and headers) taken from a device
MAX_HEAD = 16 * 1024


class ReplyTooLong(Exception):
    """The device sent more than :data:`MAX_REPLY` bytes of body."""


class Closed(Exception):
    """The device closed the connection before any byte of a reply (an idle keep-alive
    connection it dropped, or a device that hangs up on every request)."""


class HttpConnection:
    """Requests to ``host:port``, one at a time, over one connection kept open."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._stream: SocketStream | None = None
        self._h11: h11.Connection | None = None

    async def request(
        self, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes | None
    ) -> tuple[int, dict[str, str], bytes]:
        """Status, headers (lower-case names) and body of one exchange.

        :raises OSError: cannot connect, or the connection broke.
        :raises h11.RemoteProtocolError: the device's reply is not valid HTTP/1.1.
        :raises Closed: the device hung up without a reply.
        :raises ReplyTooLong: the body is longer than :data:`MAX_REPLY`.
        """
        reused = self._stream is not None
        try:
            return await self._exchange(method, target, headers, body)
        except Closed:
            await self.close()
            if not reused:
                raise
        except BaseException:
            await self.close()
            raise
        try:  # the device had dropped the idle connection: once more on a new one
            return await self._exchange(method, target, headers, body)
        except BaseException:
            await self.close()
            raise

    async def _exchange(
        self, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes | None
    ) -> tuple[int, dict[str, str], bytes]:
        if self._stream is None or self._h11 is None:
            self._stream = await anyio.connect_tcp(self.host, self.port)
            # headers and body leave in separate writes: without this, Nagle's algorithm
            # holds the body until the device acknowledges the headers (up to 40 ms)
            self._stream.extra(anyio.abc.SocketAttribute.raw_socket).setsockopt(
                socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
            )
            self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        stream, conn = self._stream, self._h11
        data = conn.send(h11.Request(method=method, target=target, headers=headers))
        if body is not None:
            data += conn.send(h11.Data(data=body))
        data += conn.send(h11.EndOfMessage())
        await stream.send(data)
        status, fields, reply = 0, {}, bytearray()
        received = False
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    chunk = await stream.receive()
                except anyio.EndOfStream:
                    chunk = b""
                if not chunk and not received:
                    raise Closed(f"{self.host}:{self.port} closed the connection")
                received = True
                conn.receive_data(chunk)
            elif isinstance(event, h11.Response):
                status = event.status_code
                fields = {
                    name.decode("latin-1"): value.decode("latin-1") for name, value in event.headers
                }
            elif isinstance(event, h11.Data):
                reply += event.data
                if len(reply) > MAX_REPLY:
                    raise ReplyTooLong(f"reply longer than {MAX_REPLY} bytes")
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise h11.RemoteProtocolError("the connection closed mid-reply")
            # h11.InformationalResponse (100 Continue): wait for the real one
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        else:  # the device closes after this reply (Connection: close): so do we
            await self.close()
        return status, fields, bytes(reply)

    async def close(self) -> None:
        stream, self._stream, self._h11 = self._stream, None, None
        if stream is not None:
            with anyio.CancelScope(shield=True):
                await stream.aclose()
