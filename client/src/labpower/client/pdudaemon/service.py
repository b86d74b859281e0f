"""The listener: pdudaemon's HTTP and TCP protocols on one port, answered through labpowerd.

Every request is resolved against the daemon's own targets (``List``: each target carries
its ``pdudaemon`` address and ``aliases``), then switched with the ordinary client, so the
daemon's access control, leases and audit log apply: the daemon sees this service's user.
A target without a pdudaemon address or alias is not reachable here at all.

A request is answered once the daemon has switched (and read back) the relay. Requests for
one PDU port (or alias) run in the order they arrived; different ones switch in parallel
(the daemon itself serialises calls to one board).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import anyio
from anyio.abc import ByteStream, SocketListener
from labpower.client.aio import AsyncClient
from labpower.client.errors import LabpowerError, TargetNotFound
from labpower.client.listen import peer_name, serve_connections
from labpower.client.pdudaemon import protocol as p
from labpower.client.pdudaemon.address import find_alias, find_target, port_number
from labpower.client.types import Target

log = logging.getLogger("labpower.pdudaemon")

#: how long a client may take to send its request
READ_TIMEOUT = 30.0
#: a daemon call's deadline on top of the off-time of a reboot
CALL_TIMEOUT = 60.0


class Outcome(Exception):
    """A request that could not be carried out; the message says why (for the log)."""


class PduService:
    """Serves pdudaemon clients from ``listener``, switching through the daemon at ``socket``."""

    def __init__(self, socket: str, max_connections: int = 256) -> None:
        self.socket = socket
        self.max_connections = max_connections
        self._lines = Lines()
        #: the daemon's targets as last listed (for their pdudaemon names)
        self._known: list[Target] = []

    async def serve(self, listener: SocketListener) -> None:
        """Accept connections until cancelled; at most ``max_connections`` at once."""
        await serve_connections(listener, self._connection, self.max_connections)

    async def _connection(self, stream: ByteStream) -> None:
        try:
            async with stream:
                peer = peer_name(stream)
                # the deadline is for the client's request only: carrying it out is bounded
                # by the daemon calls' own deadlines (a reboot may wait up to an hour)
                with anyio.fail_after(READ_TIMEOUT):
                    first = await stream.receive(p.MAX_REQUEST)
                    head = None if not p.looks_like_http(first) else await _read_http(stream, first)
                if head is None:
                    await self._tcp(stream, first, peer)
                else:
                    await self._http(stream, head, peer)
        except TimeoutError:
            log.debug("a client sent no whole request in %s s", READ_TIMEOUT)
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError) as exc:
            log.debug("connection ended early: %r", exc)

    # -- TCP
    async def _tcp(self, stream: ByteStream, data: bytes, peer: str) -> None:
        request = p.parse_tcp(data)
        if isinstance(request, p.Refused):
            log.info("TCP from %s: %r refused: %s", peer, data[:200], request.reason)
            await stream.send(request.reply)
            return
        ok = await self._carry_out(request, peer) is not None
        await stream.send(p.ACK if ok else p.NACK)

    # -- HTTP
    async def _http(self, stream: ByteStream, read: HttpRead, peer: str) -> None:
        reply = read.reply
        if isinstance(reply, p.Request):
            reply = await self._answer_http(reply, peer)
        else:
            log.info("HTTP from %s: %r refused: %s", peer, read.what, reply.reason)
        await stream.send(reply.encode(head_only=read.head_only))

    async def _answer_http(self, request: p.Request, peer: str) -> p.HttpReply:
        target = await self._carry_out(request, peer)
        if target is None:
            return p.HttpReply(500, p.INVALID)
        if request.command == "status":
            return p.HttpReply(200, f"{target.state}\n".encode())
        if request.command in ("get", "put"):
            if target.state == "unknown":
                return p.HttpReply(500, b"unknown\n")
            return p.HttpReply(200, b"1" if target.is_on else b"0")
        return p.HttpReply(200, p.OK)

    # -- carrying a request out
    async def _carry_out(self, request: p.Request, peer: str) -> Target | None:
        """Switch (or read) the request's target; None when that failed (logged)."""
        what = _describe(request)
        # A switching request takes its place in its line before its first await, so the
        # line's order is the order requests arrived; lines are per name (a PDU port, an
        # alias), so different targets' requests do not wait for each other.
        place = None if request.command in ("status", "get") else self._lines.join(_line(request))
        try:
            if request.delay > p.MAX_DELAY:
                raise Outcome(f"delay {request.delay} s is longer than {p.MAX_DELAY} s")
            timeout = CALL_TIMEOUT + request.delay
            async with AsyncClient(self.socket, timeout=timeout) as lab:
                target = await self._resolve(lab, request)
                log.debug("%s from %s: queued for %s", what, peer, target.name)
                if place is None:
                    result = target
                else:
                    await place.turn()
                    result = await _switch(lab, target.name, request)
        except (Outcome, LabpowerError) as exc:
            log.warning("%s from %s: failed: %s", what, peer, exc)
            return None
        finally:
            if place is not None:
                place.leave()
        log.info("%s from %s: %s is %s", what, peer, result.name, result.state)
        return result

    async def _resolve(self, lab: AsyncClient, request: p.Request) -> Target:
        """The target the request names, as the daemon's config says now.

        The names are remembered from the last ``List``; the target found there is fetched
        with ``Get`` (which reads only its own board) and must still carry the name, else
        (a reload changed it) ``List`` is asked again, with ``known_only``: it reads no
        board, so a board whose state is unknown holds up no other target's request, not
        even the first one for a name or the first after a reload.

        :raises Outcome: no target has the name.
        :raises LabpowerError: the daemon failed.
        """
        known = _match(self._known, request)
        if known is not None:
            try:
                fresh = await lab.get(known.name)
            except TargetNotFound:
                fresh = None
            if fresh is not None and _match((fresh,), request) is fresh:
                return fresh
        self._known = await lab.targets(known_only=True)
        found = _match(self._known, request)
        if found is None:
            raise Outcome(f"no target answers to {_name(request)}")
        # the same read of the state as the fast path above: an answer from Get
        return found if request.command not in ("status", "get") else await lab.get(found.name)


def _name(request: p.Request) -> str:
    if request.target is not None:
        return f"{request.target!r} (with a pdudaemon address or alias)"
    if request.alias is not None:
        return f"the alias {request.alias!r}"
    return f"pdudaemon = {request.hostname!r}:{request.port!r}"


def _line(request: p.Request) -> str:
    """The name a request's line is kept under: its PDU port (the port as a number), alias
    or target."""
    if request.target is not None:
        return f"target {request.target}"
    if request.alias is not None:
        return f"alias {request.alias}"
    port = port_number(request.port or "")
    return f"port {request.hostname}:{request.port if port is None else port}"


@dataclass(frozen=True, slots=True)
class HttpRead:
    """An HTTP request as read: what it asks for (or the reply refusing it)."""

    reply: p.Request | p.HttpReply
    #: for the log: the request target, or the start of what could not be parsed
    what: str | bytes
    head_only: bool = False


async def _read_http(stream: ByteStream, data: bytes) -> HttpRead:
    """Read the rest of an HTTP request that began with ``data`` (bounded in size)."""
    end = _head_end(data)
    while end < 0:
        if len(data) >= p.MAX_REQUEST:
            return HttpRead(
                p.HttpReply(413, b"413: Request Entity Too Large", "head too long"), data[:200]
            )
        data += await stream.receive(p.MAX_REQUEST - len(data))
        end = _head_end(data)
    head = p.parse_head(data[:end])
    if head is None:
        return HttpRead(p.BAD_REQUEST, data[:200])
    try:
        length = head.content_length
    except ValueError:
        length = -1
    if "Transfer-Encoding" in head.headers or not 0 <= length <= p.MAX_BODY:
        bad = p.HttpReply(400, b"400: Bad Request", "body too long or unreadable")
        return HttpRead(bad, head.target)
    body = data[end:]
    while len(body) < length:
        body += await stream.receive(length - len(body))
    return HttpRead(p.parse_http(head, body[:length]), head.target, head.method == "HEAD")


class Place:
    """A request's place in its target's line."""

    def __init__(self, lines: Lines, name: str, line: deque[anyio.Event]) -> None:
        self._lines, self._name, self._line = lines, name, line
        self._event = anyio.Event()
        line.append(self._event)

    async def turn(self) -> None:
        """Wait until every request ahead in the line has left."""
        if self._line[0] is not self._event:
            await self._event.wait()

    def leave(self) -> None:
        """Leave the line (done, failed or cancelled): the next one's turn, if it was ours."""
        first = self._line[0] is self._event
        self._line.remove(self._event)
        if not self._line:
            self._lines.drop(self._name)
        elif first:
            self._line[0].set()


class Lines:
    """One first-come-first-served line per name (anyio.Lock is fair too, but a request
    must take its place without awaiting, while its arrival order is still known)."""

    def __init__(self) -> None:
        self._lines: dict[str, deque[anyio.Event]] = {}

    def join(self, name: str) -> Place:
        return Place(self, name, self._lines.setdefault(name, deque()))

    def drop(self, name: str) -> None:
        self._lines.pop(name, None)


async def _switch(lab: AsyncClient, name: str, request: p.Request) -> Target:
    if request.command == "reboot":
        return await lab.cycle(name, float(request.delay))
    if request.command == "put":
        return await (lab.on(name) if request.value else lab.off(name))
    # on/off: pdudaemon waits the delay first (deprecated there, still honoured)
    await anyio.sleep(request.delay)
    return await (lab.on(name) if request.command == "on" else lab.off(name))


def _match(targets: Iterable[Target], request: p.Request) -> Target | None:
    """The target a request names, if any."""
    if request.target is not None:
        for t in targets:
            reachable = t.pdudaemon is not None or t.aliases
            if reachable and (t.name == request.target or request.target in t.aliases):
                return t
        return None
    if request.alias is not None:
        return find_alias(targets, request.alias)
    port = port_number(request.port or "")
    return None if port is None else find_target(targets, request.hostname or "", port)


def _describe(request: p.Request) -> str:
    if request.target is not None:
        return f"{request.command} {request.target!r}"
    name = repr(request.alias) if request.alias else f"{request.hostname!r} {request.port!r}"
    return f"{request.command} {name} (delay {request.delay} s)"


def _head_end(data: bytes) -> int:
    """Where an HTTP head ends (after its blank line), or -1."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        at = data.find(sep)
        if at >= 0:
            return at + len(sep)
    return -1
