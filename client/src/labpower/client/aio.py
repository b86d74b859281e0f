"""The async client (anyio: runs on asyncio and trio), with the same surface as Client."""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager
from types import TracebackType
from typing import Any, TypeVar

import anyio
from anyio.abc import ByteStream, TaskGroup
from labpower.client import _protocol as p
from labpower.client.errors import DaemonUnreachable, LabpowerError, RemoteProtocolError
from labpower.client.handles import Handle
from labpower.client.state import RECEIVE_SIZE, ClientConnection, State
from labpower.client.sync import LOG_WAIT_SECONDS
from labpower.client.transport_async import connect_async
from labpower.client.types import LogEntry, Reading, Target
from labpower.client.wire import Call, Reply

T = TypeVar("T")


class _AsyncConnection:
    def __init__(self, path: str, stream: ByteStream) -> None:
        self.path = path
        self.stream = stream
        self.protocol = ClientConnection()
        self._replied = False  # a valid reply came (a broken first one is explained)

    @classmethod
    async def open(cls, path: str) -> _AsyncConnection:
        return cls(path, await connect_async(path))

    @property
    def idle(self) -> bool:
        return self.protocol.state is State.IDLE

    async def send(self, call: Call, encoded: bytes | None = None) -> None:
        """:raises LocalProtocolError: not allowed now (nothing was sent).
        :raises DaemonUnreachable: the daemon went away."""
        data = self.protocol.send(call, encoded)
        try:
            await self.stream.send(data)
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise DaemonUnreachable(self.path, f"send failed: {exc!r}") from exc

    async def receive(self) -> Reply:
        """:raises DaemonUnreachable: the daemon went away.
        :raises RemoteProtocolError: it broke the protocol."""
        protocol = self.protocol
        try:
            while (reply := protocol.next_reply()) is None:
                try:
                    data = await self.stream.receive(RECEIVE_SIZE)
                except anyio.EndOfStream as exc:
                    raise DaemonUnreachable(self.path, "connection closed by the daemon") from exc
                except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                    raise DaemonUnreachable(self.path, f"receive failed: {exc!r}") from exc
                protocol.receive_data(data)
        except RemoteProtocolError as exc:
            raise p.explain(exc, self.path, not self._replied) from None
        self._replied = True
        return reply

    async def aclose(self) -> None:
        self.protocol.close()
        await self.stream.aclose()


class AsyncClient:
    """``async with AsyncClient() as lab:`` - see :class:`labpower.client.Client`.

    Calls on one client are serialised; open several clients for parallel calls.
    """

    def __init__(
        self, socket: str | os.PathLike[str] | None = None, *, timeout: float | None = 60.0
    ) -> None:
        self.path = p.socket_path(socket)
        self.timeout = timeout
        self._conn: _AsyncConnection | None = None
        self._lock = anyio.Lock()
        self._streams: list[AsyncLogStream] = []
        self.lease_tokens: dict[str, str] = p.lease_tokens()
        self._tg: TaskGroup | None = None

    async def __aenter__(self) -> AsyncClient:
        self._tg = await anyio.create_task_group().__aenter__()
        try:
            await self.connect()
        except BaseException:
            self._tg.cancel_scope.cancel()
            await self._tg.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
        if self._tg is not None:
            self._tg.cancel_scope.cancel()
            # The block's own exception is not handed to the task group (it only runs log
            # readers): anyio 4 would wrap it in an ExceptionGroup, so that an error leaving
            # `async with AsyncClient()` could no longer be caught as itself.
            await self._tg.__aexit__(None, None, None)
            self._tg = None

    async def connect(self) -> None:
        async with self._lock:
            if self._conn is None:
                self._conn = await _AsyncConnection.open(self.path)

    async def aclose(self) -> None:
        async with self._lock:
            if self._conn is not None:
                await self._conn.aclose()
                self._conn = None

    async def call(self, call: Call) -> dict[str, Any]:
        """Send one call and return its reply's parameters (see :meth:`Client.call`)."""
        return dict(await self._run(call, p.check))

    async def _run(
        self, call: Call, parse: Callable[[Reply], T], encoded: bytes | None = None
    ) -> T:
        """One call, one reply, parsed (``encoded``: the call's bytes, where the caller has
        them); a connection that failed is dropped (the next call opens a new one)."""
        p.refuse_more(call)
        async with self._lock:
            conn = self._conn
            if conn is not None and not conn.idle:
                # a call cancelled while it waited left its reply on the way: that reply
                # must not answer this call
                self._conn = None
                await conn.aclose()
                conn = None
            if conn is None:
                conn = self._conn = await _AsyncConnection.open(self.path)
            try:
                with anyio.fail_after(self.timeout):
                    await conn.send(call, encoded)
                    if call.oneway:
                        return parse(Reply())
                    return parse(await conn.receive())
            except (DaemonUnreachable, RemoteProtocolError, TimeoutError) as exc:
                self._conn = None
                await conn.aclose()
                if isinstance(exc, TimeoutError):
                    raise DaemonUnreachable(self.path, "no reply in time") from exc
                raise

    async def stream(self, call: Call) -> AsyncGenerator[dict[str, Any], None]:
        """Send a call with ``more`` on a connection of its own; yield each reply's parameters."""
        more = Call(call.method, call.parameters, more=True)
        async with aclosing(self._stream(more, dict)) as replies:
            async for params in replies:
                yield params

    async def _stream(
        self, call: Call, parse: Callable[[Mapping[str, Any]], T]
    ) -> AsyncGenerator[T, None]:
        conn = await _AsyncConnection.open(self.path)
        try:
            await conn.send(call)
            while True:
                reply = await conn.receive()
                yield parse(p.check(reply))
                if not reply.continues:
                    return
        finally:
            await conn.aclose()

    async def _op(self, op: p.Op[T]) -> T:
        def parse(reply: Reply) -> T:
            return op.parse(p.check(reply))

        return await self._run(op.call, parse, op.wire)

    async def _switch(self, op: p.Op[tuple[Target, int]]) -> Target:
        target, seq = await self._op(op)
        for stream in self._streams:
            await stream.wait_for(seq)
        return target

    async def targets(self, *, refresh: bool = False, known_only: bool = False) -> list[Target]:
        return await self._op(p.list_op(refresh, known_only))

    def target(self, name: str) -> AsyncTargetHandle:
        return AsyncTargetHandle(self, name)

    async def get(self, target: str, *, refresh: bool = False) -> Target:
        return await self._op(p.get_op(target, refresh))

    async def on(self, target: str) -> Target:
        return await self._switch(p.switch_op(self.lease_tokens, "On", target))

    async def off(self, target: str) -> Target:
        return await self._switch(p.switch_op(self.lease_tokens, "Off", target))

    async def cycle(self, target: str, delay: float | None = None) -> Target:
        return await self._switch(p.switch_op(self.lease_tokens, "Cycle", target, delay))

    async def read(
        self, target: str, count: int | None = 1, interval: float | None = None
    ) -> AsyncGenerator[Reading, None]:
        op = p.read_op(target, count, interval)
        if not op.call.more:
            yield await self._op(op)
            return
        # aclosing: an early break must close the stream's connection now, not at GC time
        async with aclosing(self._stream(op.call, op.parse)) as readings:
            async for reading in readings:
                yield reading

    async def acquire(
        self,
        target: str,
        name: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the lease's lifetime
    ) -> tuple[Target, str]:
        """See :meth:`Client.acquire`."""
        return await self._op(p.acquire_op(self.lease_tokens, target, name, timeout))

    async def release(self, target: str, *, force: bool = False) -> Target:
        return await self._op(p.release_op(self.lease_tokens, target, force))

    @asynccontextmanager
    async def lease(
        self,
        target: str,
        name: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the lease's lifetime
    ) -> AsyncIterator[Target]:
        held, _ = await self.acquire(target, name, timeout)
        try:
            yield held
        finally:
            try:
                await self.release(target)
            except DaemonUnreachable:
                pass

    async def history(
        self,
        targets: Iterable[str] | None = None,
        level: str | None = None,
        limit: int | None = None,
        since: str | None = None,
    ) -> list[LogEntry]:
        """Past log entries, oldest first; ``since``: RFC 3339 time or a span like "1h"."""
        return await self._op(p.history_op(targets, level, limit, since))

    async def logs(
        self, targets: Iterable[str] | None = None, level: str | None = None
    ) -> AsyncGenerator[LogEntry, None]:
        op = p.logs_op(targets, level)
        async with aclosing(self._stream(op.call, op.parse)) as entries:
            async for entry in entries:
                if entry is not None:
                    yield entry

    @asynccontextmanager
    async def log_stream(
        self, targets: Iterable[str] | None = None, level: str | None = None
    ) -> AsyncIterator[AsyncLogStream]:
        """Forward daemon log entries to Python logging (see :meth:`Client.log_stream`)."""
        if self._tg is None:
            raise RuntimeError("log_stream() needs 'async with AsyncClient(...)'")
        stream = AsyncLogStream(p.EntryFilter(targets, level))
        conn = await _AsyncConnection.open(self.path)
        try:
            await conn.send(p.logs_op(None, None).call)
            with anyio.fail_after(self.timeout):
                p.check_subscribed(await conn.receive())
            scope = anyio.CancelScope()
            self._tg.start_soon(stream.run, conn, scope)
            self._streams.append(stream)
            try:
                yield stream
            finally:
                self._streams.remove(stream)
                scope.cancel()
        finally:
            await conn.aclose()


class AsyncTargetHandle(
    Handle[Coroutine[Any, Any, Target], AsyncIterator[Reading], AbstractAsyncContextManager[Target]]
):
    """One target of an :class:`AsyncClient`; every method is awaited."""

    __slots__ = ()


class AsyncLogStream:
    """The reading side of :meth:`AsyncClient.log_stream`."""

    def __init__(self, accept: p.EntryFilter) -> None:
        self._accept = accept
        self._seen = -1
        self._dead = False
        self._waiters: list[tuple[int, anyio.Event]] = []

    async def run(self, conn: _AsyncConnection, scope: anyio.CancelScope) -> None:
        with scope:
            try:
                while True:
                    entry = p.log_entry_of(await conn.receive())
                    if entry is None:
                        continue
                    if self._accept(entry):
                        p.emit(entry)
                    self._seen = entry.seq
                    self._wake()
            except (LabpowerError, anyio.ClosedResourceError):
                pass
            finally:
                self._dead = True
                self._wake()

    def _wake(self) -> None:
        if not self._waiters:
            return
        keep = []
        for seq, event in self._waiters:
            if self._dead or self._seen >= seq:
                event.set()
            else:
                keep.append((seq, event))
        self._waiters = keep

    async def wait_for(
        self,
        seq: int,
        timeout: float = LOG_WAIT_SECONDS,  # noqa: ASYNC109 - a bound, not a call deadline
    ) -> bool:
        """Wait until every entry up to ``seq`` was emitted; False if the stream ended."""
        if self._seen < seq and not self._dead:
            event = anyio.Event()
            self._waiters.append((seq, event))
            with anyio.move_on_after(timeout):
                await event.wait()
        return self._seen >= seq
