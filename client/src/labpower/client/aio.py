"""The async client (anyio: runs on asyncio and trio), with the same surface as Client."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager
from types import TracebackType
from typing import Any

import anyio
from anyio.abc import ByteStream, TaskGroup
from labpower.client import _protocol as p
from labpower.client.errors import DaemonUnreachable, LabpowerError
from labpower.client.sync import LOG_WAIT_SECONDS
from labpower.client.transport import connect_async
from labpower.client.types import LogEntry, Reading, Target
from labpower.client.wire import Call, Decoder, Reply, encode


class _AsyncConnection:
    def __init__(self, path: str, stream: ByteStream) -> None:
        self.path = path
        self.stream = stream
        self._decoder = Decoder()
        self._replies: deque[dict[str, Any]] = deque()

    @classmethod
    async def open(cls, path: str) -> _AsyncConnection:
        return cls(path, await connect_async(path))

    async def send(self, call: Call) -> None:
        try:
            await self.stream.send(encode(call))
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise DaemonUnreachable(self.path, f"send failed: {exc!r}") from exc

    async def receive(self) -> Reply:
        replies = self._replies
        while not replies:
            try:
                data = await self.stream.receive(262144)
            except anyio.EndOfStream as exc:
                raise DaemonUnreachable(self.path, "connection closed by the daemon") from exc
            except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                raise DaemonUnreachable(self.path, f"receive failed: {exc!r}") from exc
            replies.extend(self._decoder.feed(data))
        return Reply.from_wire(replies.popleft())

    async def aclose(self) -> None:
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
        async with self._lock:
            conn = self._conn
            if conn is None:
                conn = self._conn = await _AsyncConnection.open(self.path)
            try:
                with anyio.fail_after(self.timeout):
                    await conn.send(call)
                    if call.oneway:
                        return {}
                    reply = await conn.receive()
            except (LabpowerError, TimeoutError) as exc:
                self._conn = None
                await conn.aclose()
                if isinstance(exc, TimeoutError):
                    raise DaemonUnreachable(self.path, "no reply in time") from exc
                raise
        return dict(p.check(reply))

    async def stream(self, call: Call) -> AsyncGenerator[dict[str, Any], None]:
        """Send a call with ``more`` on a connection of its own; yield each reply's parameters."""
        conn = await _AsyncConnection.open(self.path)
        try:
            await conn.send(Call(call.method, call.parameters, more=True))
            while True:
                reply = await conn.receive()
                yield dict(p.check(reply))
                if not reply.continues:
                    return
        finally:
            await conn.aclose()

    async def _power(self, member: str, params: dict[str, Any]) -> Target:
        token = self.lease_tokens.get(params["target"])
        if token is not None:
            params["lease"] = token
        target, seq = p.op_result(await self.call(p.power_call(member, params)))
        for stream in self._streams:
            await stream.wait_for(seq)
        return target

    async def targets(self) -> list[Target]:
        return p.targets_result(await self.call(p.power_call("List")))

    def target(self, name: str) -> AsyncTargetHandle:
        return AsyncTargetHandle(self, name)

    async def get(self, target: str) -> Target:
        params = await self.call(p.power_call("Get", {"target": target}))
        return Target.from_wire(params["target"])

    async def on(self, target: str) -> Target:
        return await self._power("On", {"target": target})

    async def off(self, target: str) -> Target:
        return await self._power("Off", {"target": target})

    async def cycle(self, target: str, delay: float | None = None) -> Target:
        params: dict[str, Any] = {"target": target}
        if delay is not None:
            params["delay"] = delay
        return await self._power("Cycle", params)

    async def read(
        self, target: str, count: int | None = 1, interval: float | None = None
    ) -> AsyncGenerator[Reading, None]:
        params = p.read_parameters(target, count, interval)
        if count == 1:
            yield p.reading_result(await self.call(p.power_call("Read", params)))
            return
        # aclosing: an early break must close the stream's connection now, not at GC time
        async with aclosing(self.stream(p.power_call("Read", params))) as replies:
            async for reply in replies:
                yield p.reading_result(reply)

    async def acquire(
        self,
        target: str,
        name: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the lease's lifetime
    ) -> tuple[Target, str]:
        """See :meth:`Client.acquire`."""
        params = await self.call(
            p.power_call("Acquire", p.acquire_parameters(target, name, timeout))
        )
        token = params["token"]
        self.lease_tokens[target] = token
        return Target.from_wire(params["target"]), token

    async def release(self, target: str) -> Target:
        params: dict[str, Any] = {"target": target}
        token = self.lease_tokens.pop(target, None)
        if token is not None:
            params["token"] = token
        return Target.from_wire((await self.call(p.power_call("Release", params)))["target"])

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
        params = p.filter_parameters(targets, level)
        if limit is not None:
            params["limit"] = limit
        if since is not None:
            params["since"] = since
        return p.entries_result(await self.call(p.power_call("History", params)))

    async def logs(
        self, targets: Iterable[str] | None = None, level: str | None = None
    ) -> AsyncGenerator[LogEntry, None]:
        call = p.power_call("Logs", p.filter_parameters(targets, level))
        async with aclosing(self.stream(call)) as replies:
            async for params in replies:
                entry = params.get("entry")
                if entry is not None:
                    yield LogEntry.from_wire(entry)

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
            await conn.send(p.power_call("Logs", more=True))
            with anyio.fail_after(self.timeout):
                first = await conn.receive()
            if p.log_entry_of(first) is not None or not first.continues:
                raise LabpowerError("Logs subscription did not start with an empty reply")
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


class AsyncTargetHandle:
    def __init__(self, client: AsyncClient, name: str) -> None:
        self.client = client
        self.name = name

    def __repr__(self) -> str:
        return f"<AsyncTargetHandle {self.name!r} at {self.client.path}>"

    async def on(self) -> Target:
        return await self.client.on(self.name)

    async def off(self) -> Target:
        return await self.client.off(self.name)

    async def cycle(self, delay: float | None = None) -> Target:
        return await self.client.cycle(self.name, delay)

    async def state(self) -> Target:
        return await self.client.get(self.name)

    def lease(
        self, name: str | None = None, timeout: float | None = None
    ) -> AbstractAsyncContextManager[Target]:
        return self.client.lease(self.name, name, timeout)

    def read(self, count: int | None = 1, interval: float | None = None) -> AsyncIterator[Reading]:
        return self.client.read(self.name, count, interval)


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
