"""A Jumpstarter power driver that switches a labpower target.

Installed with the extra: ``pip install labpower-client[jumpstarter]``.

In an exporter config::

    export:
      power:
        type: labpower.client.jumpstarter.LabpowerPower
        config:
          target: dut1
          socket: ssh://lab@bench2     # optional: default $LABPOWER_SOCKET, else the system one

Jumpstarter's ``PowerClient`` then works as for any power driver (``j power on``). The
daemon's log entries about the target are re-emitted on the driver's own logger, so they reach
Jumpstarter's ``log_stream``; each call returns after its own entries were passed on.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import anyio
from jumpstarter.driver import Driver, export
from jumpstarter_driver_power.common import PowerReading
from jumpstarter_driver_power.driver import PowerInterface
from labpower.client import _protocol as p
from labpower.client.aio import AsyncClient
from labpower.client.sync import LOG_WAIT_SECONDS

F = TypeVar("F", bound=Callable[..., Any])


def _export(method: F) -> F:
    """Jumpstarter's ``export`` (marks a method as callable by clients), typed."""
    mark: Callable[[F], Any] = export  # unannotated upstream
    return cast(F, mark(method))


@dataclass(kw_only=True)
class LabpowerPower(PowerInterface, Driver):
    """Jumpstarter's PowerInterface (on, off, read) on one labpower target.

    Every call opens its own connection to the daemon, so the exporter holds none while idle
    and a restarted daemon is simply found again. Errors are labpower's (``TargetNotFound``,
    ``Locked``, ``DaemonUnreachable``, ...), which Jumpstarter passes to its client.
    """

    target: str
    #: a socket path or ssh://[user@]host[:port][/path]; None: $LABPOWER_SOCKET, else default
    socket: str | None = None
    #: seconds to wait for the daemon's answer
    timeout: float = 60.0

    @classmethod
    def client(cls) -> str:
        return "jumpstarter_driver_power.client.PowerClient"

    async def _switch(self, member: str) -> None:
        """Switch through the daemon, passing its log entries about the target to our logger.

        The subscription is live (its first, empty reply arrived) before the call, and it is
        read up to the call's ``log_seq``: no entry of the call is lost or left behind.
        """
        async with AsyncClient(self.socket, timeout=self.timeout) as lab:
            logs = p.logs_op(None, None)
            async with aclosing(lab._stream(logs.call, logs.parse)) as entries:
                with anyio.fail_after(self.timeout):
                    await anext(entries)
                _, seq = await lab._op(p.switch_op(lab.lease_tokens, member, self.target))
                with anyio.move_on_after(LOG_WAIT_SECONDS):
                    async for entry in entries:
                        if entry is None:
                            continue
                        if entry.target == self.target:
                            self.logger.log(entry.levelno, "%s", entry.message)
                        if entry.seq >= seq:
                            break

    @_export
    async def on(self) -> None:
        await self._switch("On")

    @_export
    async def off(self) -> None:
        await self._switch("Off")

    @_export
    # PowerInterface annotates read as a coroutine returning a generator; Jumpstarter (and
    # its own drivers) use an async generator
    async def read(self) -> AsyncGenerator[PowerReading, None]:  # type: ignore[override]
        """One reading of the target's supply."""
        async with (
            AsyncClient(self.socket, timeout=self.timeout) as lab,
            aclosing(lab.read(self.target)) as readings,
        ):
            reading = await anext(readings)
        yield PowerReading(voltage=reading.voltage, current=reading.current)
