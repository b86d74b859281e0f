"""What labpower-web knows of the lab: every host's targets, its last switches, its log,
and its targets' readings over the last minutes, kept up to date from the daemons.

Per host, three tasks: one follows the daemon's ``Logs`` (the live log; every entry also
asks for a fresh ``List``, so a switch or an unplugged board shows at once), one asks
``List`` (on such a poke, else every ``poll`` seconds), one samples each target's reading
every ``read_interval`` seconds (reading never switches a relay; a target whose board is
unavailable is not read). A host that cannot be reached is shown as such and asked again;
the others go on.

Browsers follow the page through :meth:`LabWatch.subscribe`: a bounded queue of
Server-Sent Events each; one that falls behind is dropped (its browser reconnects and gets
a fresh snapshot), so a slow browser never holds up the others or grows our memory.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from labpower.client._protocol import power_call
from labpower.client.aio import AsyncClient
from labpower.client.errors import (
    DaemonUnreachable,
    LabpowerError,
    NotSupported,
    PermissionDenied,
    TargetNotFound,
)
from labpower.client.types import LogEntry, Target
from labpower.client.web.http import sse_event

log = logging.getLogger("labpower.web")

#: log entries kept per host for a page that opens
LOG_KEEP = 200
#: switches kept per host
SWITCH_KEEP = 50
#: events a browser may fall behind by before it is dropped
SUBSCRIBER_QUEUE = 512
#: how long to wait before asking an unreachable daemon again
RETRY = 2.0
#: a target whose board cannot measure is asked again after this long
NO_METER_RETRY = 300.0
#: the ops whose entries are switches (their audit lines carry ``state`` and ``before``)
SWITCH_OPS = frozenset({"on", "off", "cycle", "start"})


@dataclass(frozen=True, slots=True)
class Settings:
    #: seconds between ``List`` calls when nothing happened
    poll: float = 5.0
    #: seconds between readings of each target
    read_interval: float = 5.0
    #: seconds of readings kept (the plot's span)
    window: float = 900.0
    #: deadline of one call to a daemon
    call_timeout: float = 10.0


@dataclass(slots=True)
class HostWatch:
    """One daemon, as last seen."""

    name: str
    address: str
    targets: list[Target] = field(default_factory=list)
    #: why the daemon could not be asked, while it cannot
    error: str | None = "not asked yet"
    entries: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=LOG_KEEP))
    switches: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=SWITCH_KEEP))
    #: per target: (unix time, voltage, current, apparent power)
    readings: dict[str, deque[tuple[float, float, float, float]]] = field(default_factory=dict)
    #: per target that cannot measure: when to try again
    no_meter: dict[str, float] = field(default_factory=dict)
    poke: anyio.Event = field(default_factory=anyio.Event)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "error": self.error,
            "targets": [t.to_dict() for t in self.targets],
        }

    def last_reading(self, target: str) -> tuple[float, float, float, float] | None:
        series = self.readings.get(target)
        return series[-1] if series else None


def entry_json(host: str, entry: LogEntry) -> dict[str, Any]:
    return {**entry.to_dict(), "host": host}


def is_switch(entry: LogEntry) -> bool:
    extra = entry.extra or {}
    return extra.get("op") in SWITCH_OPS and "state" in extra and entry.target is not None


class LabWatch:
    """Every host of the lab, watched (see the module's docstring)."""

    def __init__(self, hosts: Iterable[tuple[str, str]], settings: Settings) -> None:
        """``hosts``: (name, daemon address) pairs, in the order the page shows them."""
        self.settings = settings
        self.hosts = {name: HostWatch(name, address) for name, address in hosts}
        self._subscribers: set[MemoryObjectSendStream[bytes]] = set()
        #: one client per host for List and Stats (reads have their own: a slow board must
        #: not hold up the page's state)
        self.clients = {
            h.name: AsyncClient(h.address, timeout=settings.call_timeout)
            for h in self.hosts.values()
        }

    async def run(self) -> None:
        """Watch until cancelled."""
        try:
            async with anyio.create_task_group() as tg:
                for host in self.hosts.values():
                    tg.start_soon(self._follow_logs, host)
                    tg.start_soon(self._poll, host)
                    tg.start_soon(self._sample, host)
        finally:
            with anyio.CancelScope(shield=True):
                for client in self.clients.values():
                    await client.aclose()

    # -- browsers
    def snapshot(self) -> dict[str, Any]:
        """Everything a page shows when it opens (readings come from :meth:`readings`)."""
        entries = sorted(
            (e for h in self.hosts.values() for e in h.entries), key=lambda e: e["time"]
        )
        switches = sorted(
            (e for h in self.hosts.values() for e in h.switches), key=lambda e: e["time"]
        )
        return {
            "hosts": [h.to_json() for h in self.hosts.values()],
            "log": entries[-LOG_KEEP:],
            "switches": switches[-SWITCH_KEEP:],
            "read_interval": self.settings.read_interval,
            "window": self.settings.window,
        }

    def state(self) -> dict[str, Any]:
        return {"hosts": [h.to_json() for h in self.hosts.values()]}

    def readings(self) -> dict[str, Any]:
        """Each target's readings over the window: times (unix seconds) and values."""
        return {
            "now": time.time(),
            "window": self.settings.window,
            "hosts": {
                h.name: {
                    target: [list(sample) for sample in series]
                    for target, series in h.readings.items()
                }
                for h in self.hosts.values()
            },
        }

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[MemoryObjectReceiveStream[bytes]]:
        """A browser's events: a snapshot first, then state changes and log entries."""
        send, receive = anyio.create_memory_object_stream[bytes](SUBSCRIBER_QUEUE)
        send.send_nowait(sse_event("snapshot", json.dumps(self.snapshot())))
        self._subscribers.add(send)
        try:
            yield receive
        finally:
            self._subscribers.discard(send)
            send.close()
            receive.close()

    def _broadcast(self, event: str, payload: dict[str, Any]) -> None:
        if not self._subscribers:
            return
        data = sse_event(event, json.dumps(payload))
        for send in list(self._subscribers):
            try:
                send.send_nowait(data)
            except anyio.WouldBlock:
                # too far behind: its stream ends, the browser reconnects to a snapshot
                self._subscribers.discard(send)
                send.close()
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._subscribers.discard(send)

    # -- the daemons
    async def _follow_logs(self, host: HostWatch) -> None:
        while True:
            client = AsyncClient(host.address, timeout=self.settings.call_timeout)
            try:
                async with aclosing(client.stream(power_call("Logs"))) as replies:
                    await anext(replies)  # the empty first reply: the subscription is live
                    # what came before it, from the daemon's history; then the live entries
                    seen = self._restart_log(host, await client.history(limit=LOG_KEEP))
                    async for params in replies:
                        entry = LogEntry.from_wire(params.get("entry"))
                        if (entry.seq, entry.message) not in seen:
                            self._add_entry(host, entry)
            except (LabpowerError, StopAsyncIteration) as exc:
                log.debug("%s: log stream ended: %s", host.name, exc)
            finally:
                with anyio.CancelScope(shield=True):
                    await client.aclose()
            await anyio.sleep(RETRY)

    def _restart_log(self, host: HostWatch, past: list[LogEntry]) -> set[tuple[int, str]]:
        """Start the host's log again from ``past``; what the live stream may repeat."""
        host.entries.clear()
        host.switches.clear()
        for entry in past:
            host.entries.append(entry_json(host.name, entry))
            if is_switch(entry):
                host.switches.append(entry_json(host.name, entry))
        self._broadcast("snapshot", self.snapshot())
        return {(e.seq, e.message) for e in past}

    def _add_entry(self, host: HostWatch, entry: LogEntry) -> None:
        data = entry_json(host.name, entry)
        host.entries.append(data)
        if is_switch(entry):
            host.switches.append(data)
        self._broadcast("entry", data)
        host.poke.set()

    async def _poll(self, host: HostWatch) -> None:
        client = self.clients[host.name]
        while True:
            host.poke = anyio.Event()
            try:
                targets = await client.targets()
                error = None
            except LabpowerError as exc:
                targets, error = host.targets, str(exc)
            if targets != host.targets or error != host.error:
                host.targets, host.error = targets, error
                self._broadcast("state", self.state())
            with anyio.move_on_after(self.settings.poll if error is None else RETRY):
                await host.poke.wait()

    async def _sample(self, host: HostWatch) -> None:
        client = AsyncClient(host.address, timeout=self.settings.call_timeout)
        keep = max(2, math.ceil(self.settings.window / self.settings.read_interval))
        try:
            while True:
                started = anyio.current_time()
                for target in list(host.targets):
                    # an absent board is left alone: asking it would only count failures
                    # (and re-open attempts) against it that nobody asked for
                    if target.available:
                        await self._read(host, client, target.name, keep)
                for gone in set(host.readings) - {t.name for t in host.targets}:
                    del host.readings[gone]
                await anyio.sleep_until(started + self.settings.read_interval)
        finally:
            with anyio.CancelScope(shield=True):
                await client.aclose()

    async def _read(self, host: HostWatch, client: AsyncClient, name: str, keep: int) -> None:
        now = time.time()
        if host.no_meter.get(name, 0.0) > now:
            return
        try:
            readings = [r async for r in client.read(name)]
        except (NotSupported, PermissionDenied, TargetNotFound):
            host.no_meter[name] = now + NO_METER_RETRY
            return
        except DaemonUnreachable:
            return
        except LabpowerError as exc:  # the board failed this time
            log.debug("%s: reading %s failed: %s", host.name, name, exc)
            return
        if not readings:
            return
        reading = readings[-1]
        host.no_meter.pop(name, None)
        series = host.readings.get(name)
        if series is None or series.maxlen != keep:
            series = host.readings[name] = deque(series or (), maxlen=keep)
        series.append((now, reading.voltage, reading.current, reading.apparent_power))
