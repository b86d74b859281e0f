"""The lab: devices and the targets on them, and the power operations on targets.

What the daemon knows of a target (state, verified, since) lives here. Switching reads the
state back wherever the board can tell; where it cannot, the state is what was commanded and
``verified`` is false. Nothing here switches a relay except On, Off and Cycle.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from labpower.backends import (
    BackendError,
    Device,
    DeviceUnavailableError,
    HardwareTimeout,
    NotSupportedError,
)
from labpower.daemon.config import Config, TargetConfig
from labpower.daemon.interface import POWER
from labpower.daemon.logbus import current_call, rfc3339

log = logging.getLogger("labpower.daemon.lab")


class ApiError(Exception):
    """A varlink error reply: qualified ``name`` and its ``parameters``."""

    def __init__(self, name: str, **parameters: Any) -> None:
        super().__init__(f"{name} {parameters}")
        self.name = name if "." in name else f"{POWER}.{name}"
        self.parameters = parameters


@dataclass(slots=True)
class TargetState:
    config: TargetConfig
    device: Device
    state: str = "unknown"
    verified: bool = False
    since: str | None = None
    #: serialises operations on the target (a cycle holds it through its off-time)
    lock: anyio.Lock = field(default_factory=lambda: anyio.Lock(fast_acquire=True))

    @property
    def name(self) -> str:
        return self.config.name

    def to_wire(self) -> dict[str, Any]:
        return {
            "name": self.config.name,
            "device": self.config.device,
            "channel": self.config.channel,
            "state": self.state,
            "verified": self.verified,
            "available": self.device.available,
            "since": self.since,
        }

    def record(self, physical: bool | None, commanded: bool | None) -> None:
        """Note a state read from the board (``physical``) or, failing that, commanded."""
        before = self.state
        if physical is not None:
            self.state = "on" if physical != self.config.invert else "off"
            self.verified = True
        elif commanded is not None:
            self.state = "on" if commanded else "off"
            self.verified = False
        else:
            self.verified = False
        if commanded is not None and self.state != before:
            self.since = rfc3339(time.time())


class Lab:
    """Every device and target of one configuration."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.devices: dict[str, Device] = {
            name: Device(dc.create(), dc.timeout) for name, dc in config.devices.items()
        }
        self.targets: dict[str, TargetState] = {
            name: TargetState(tc, self.devices[tc.device]) for name, tc in config.targets.items()
        }

    async def open(self) -> None:
        """Open every board at once; absent ones are marked unavailable, not fatal."""
        async with anyio.create_task_group() as tg:
            for device in self.devices.values():
                tg.start_soon(self._open, device)

    @staticmethod
    async def _open(device: Device) -> None:
        if not await device.open():
            log.warning(
                "device %s unavailable: %s",
                device.name,
                device.problem,
                extra={"device": device.name},
            )

    async def close(self) -> None:
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                for device in self.devices.values():
                    tg.start_soon(device.close)

    def target(self, name: str) -> TargetState:
        try:
            return self.targets[name]
        except KeyError:
            raise ApiError("TargetNotFound", target=name) from None

    @contextmanager
    def _hardware(self, t: TargetState) -> Iterator[None]:
        try:
            yield
        except HardwareTimeout as exc:
            raise ApiError("Timeout", target=t.name, seconds=exc.seconds) from exc
        except DeviceUnavailableError as exc:
            raise ApiError("DeviceUnavailable", device=t.device.name, reason=str(exc)) from exc
        except NotSupportedError as exc:
            raise ApiError("NotSupported", target=t.name, operation=exc.operation) from exc
        except BackendError as exc:
            raise ApiError("DeviceError", device=t.device.name, reason=str(exc)) from exc

    # -- operations
    async def list(self) -> list[dict[str, Any]]:
        """Every target, with the state freshly read from boards that can report it."""
        async with anyio.create_task_group() as tg:
            for device in self.devices.values():
                if device.readback:
                    tg.start_soon(self._refresh_device, device)
        return [t.to_wire() for t in self.targets.values()]

    async def _refresh_device(self, device: Device) -> None:
        on_device = [t for t in self.targets.values() if t.device is device]
        if not on_device:
            return
        try:
            states = await device.states()
        except BackendError:
            for t in on_device:
                t.verified = False
            return
        for t in on_device:
            t.record(states.get(t.config.channel), None)

    async def get(self, name: str) -> dict[str, Any]:
        t = self.target(name)
        if t.device.readback:
            try:
                t.record(await t.device.state(t.config.channel), None)
            except BackendError:
                t.verified = False
        return t.to_wire()

    async def switch(self, name: str, on: bool, op: str) -> dict[str, Any]:
        t = self.target(name)
        async with t.lock:
            return await self._switch(t, on, op)

    async def cycle(self, name: str, delay: float | None) -> dict[str, Any]:
        t = self.target(name)
        off_time = t.config.cycle_delay if delay is None else delay
        async with t.lock:
            await self._switch(t, False, "cycle")
            await anyio.sleep(off_time)
            return await self._switch(t, True, "cycle")

    async def _switch(self, t: TargetState, on: bool, op: str) -> dict[str, Any]:
        ctx = current_call.get()
        if ctx is not None:
            ctx.target, ctx.device, ctx.channel, ctx.op = (
                t.name,
                t.config.device,
                t.config.channel,
                op,
            )
        before = t.state
        try:
            with self._hardware(t):
                physical = await t.device.switch(t.config.channel, on != t.config.invert)
        except ApiError as exc:
            t.state, t.verified = "unknown", False
            log.error(
                "%s %s failed: %s",
                op,
                "on" if on else "off",
                exc.parameters.get("reason", exc.name.rpartition(".")[2]),
                extra={"state": t.state},
            )
            raise
        t.record(physical, on)
        wanted = "on" if on else "off"
        if t.verified and t.state != wanted:
            log.error(
                "%s: switched %s but the board reports %s",
                op,
                wanted,
                t.state,
                extra={"state": t.state},
            )
            raise ApiError("StateMismatch", target=t.name, expected=wanted, actual=t.state)
        log.info(
            "%s: %s -> %s%s",
            op,
            before,
            t.state,
            "" if t.verified else " (not verified)",
            extra={"state": t.state},
        )
        return t.to_wire()

    async def read(self, name: str) -> dict[str, float]:
        t = self.target(name)
        with self._hardware(t):
            m = await t.device.measure(t.config.channel)
        return {"voltage": m.voltage, "current": m.current, "apparent_power": m.apparent_power}
