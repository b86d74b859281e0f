"""The web service: the lab page, its data, its live events, and ``/metrics``.

Routes (GET and HEAD only; nothing here switches anything):

- ``/``, ``/app.js``, ``/style.css``: the page, shipped in the package (no build step, no
  CDN); the page draws everything with ``textContent`` and SVG elements, never markup
  from data, and the Content-Security-Policy lets only these files run;
- ``/api/state``: a snapshot (hosts, targets, last switches, the log's tail);
- ``/api/readings``: each target's readings over the last minutes, for the plots;
- ``/api/events``: Server-Sent Events: ``snapshot``, ``state`` (targets changed) and
  ``entry`` (a log entry), as they happen;
- ``/metrics``: Prometheus or OpenMetrics text, by the scraper's ``Accept``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from importlib.resources import files
from typing import Any

import anyio
from anyio.abc import ByteStream, SocketListener
from labpower.client.escape import escape
from labpower.client.listen import peer_name, serve_connections
from labpower.client.web import http
from labpower.client.web.metrics import exposition, scrape
from labpower.client.web.watch import LabWatch

log = logging.getLogger("labpower.web")

#: how long a client may take to send its request head
READ_TIMEOUT = 10.0
#: an idle event stream gets a comment this often (proxies close silent connections)
KEEPALIVE = 15.0
#: what is read, at most, of a refused request after the answer (see :func:`_linger`)
LINGER_BYTES = 1 << 20
LINGER_SECONDS = 1.0
#: connections served at once (event streams included)
MAX_CONNECTIONS = 256

_STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}


def _static() -> dict[str, http.Response]:
    folder = files("labpower.client.web") / "static"
    return {
        path: http.Response(200, (folder / name).read_bytes(), kind)
        for path, (name, kind) in _STATIC.items()
    }


def _json(payload: dict[str, Any]) -> http.Response:
    return http.Response(200, json.dumps(payload).encode(), "application/json")


class WebService:
    """Serves the page and the metrics of ``watch``'s lab."""

    def __init__(
        self,
        watch: LabWatch,
        allowed_hosts: Collection[str] = (),
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        """``allowed_hosts``: the names (besides IP addresses and localhost) that a
        request's ``Host`` may give, such as a reverse proxy's public name."""
        self.watch = watch
        self.allowed_hosts = frozenset(h.lower().rstrip(".") for h in allowed_hosts)
        self._static = _static()
        self.max_connections = max_connections

    async def serve(self, listener: SocketListener) -> None:
        """Watch the lab and answer connections until cancelled."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.watch.run)
            await serve_connections(listener, self._connection, self.max_connections)

    async def _connection(self, stream: ByteStream) -> None:
        try:
            async with stream:
                try:
                    with anyio.fail_after(READ_TIMEOUT):
                        request = await http.read_request(stream)
                except http.BadRequest as exc:
                    log.info("refused a request from %s: %s", peer_name(stream), exc)
                    await http.send_all(stream, http.error(exc.status, str(exc)).encode())
                    await _linger(stream)
                    return
                if not http.host_allowed(request.headers.get("host"), self.allowed_hosts):
                    log.warning(
                        "refused a request from %s for host %s (see --allow-host)",
                        peer_name(stream),
                        escape(request.headers.get("host", "")),
                    )
                    refusal = http.error(421, "this service does not answer to that host name")
                    await http.send_all(stream, refusal.encode())
                    return
                if request.path == "/api/events" and not request.head_only:
                    await self._events(stream)
                    return
                response = await self._answer(request)
                await http.send_all(stream, response.encode(request.head_only))
        except TimeoutError:
            log.debug("a client sent no whole request in %s s", READ_TIMEOUT)
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError) as exc:
            log.debug("connection ended early: %r", exc)

    async def _answer(self, request: http.Request) -> http.Response:
        static = self._static.get(request.path)
        if static is not None:
            return static
        if request.path == "/metrics":
            body, content_type = exposition(await scrape(self.watch), request.headers.get("accept"))
            return http.Response(200, body, content_type)
        if request.path == "/api/state":
            return _json(self.watch.snapshot())
        if request.path == "/api/readings":
            return _json(self.watch.readings())
        if request.path == "/api/events":  # HEAD
            return http.Response(200, b"", "text/event-stream; charset=utf-8")
        return http.error(404, "no such page")

    async def _events(self, stream: ByteStream) -> None:
        await http.send_all(stream, http.SSE_HEAD)
        async with self.watch.subscribe() as events:
            while True:
                data = http.SSE_KEEPALIVE
                with anyio.move_on_after(KEEPALIVE):
                    try:
                        data = await events.receive()
                    except anyio.EndOfStream:
                        return  # it fell behind: the browser reconnects to a fresh snapshot
                await http.send_all(stream, data)


async def _linger(stream: ByteStream) -> None:
    """After refusing a request that was not read whole: say we are done, and read (a
    bounded amount, briefly) what the client still sends, so that closing with unread
    bytes does not reset the connection before the client has read our answer."""
    await stream.send_eof()
    left = LINGER_BYTES
    with anyio.move_on_after(LINGER_SECONDS):
        while left > 0:
            left -= len(await stream.receive())
