"""The mock backend: relays in memory, for trying labpower and for tests.

It logs ``power on`` / ``power off`` at INFO, answers ``get`` with the state it keeps, and
yields readings (0.0 V, 0.0 A) for the first read of a channel and (5.0 V, 2.0 A) after that.
Options inject trouble: ``delay`` before every call, ``fail`` to make chosen operations raise,
``unavailable`` to act unplugged, ``ignore`` to make channels disregard switching (so the read
back disagrees), ``readback = false`` to act like a board that cannot report its state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import anyio
from labpower.backends.base import Backend, Measurement
from labpower.backends.errors import DeviceUnavailableError, OperationError, OptionError

Operation = Literal["open", "set", "get", "read", "close"]
_IDLE = Measurement(0.0, 0.0)
_POWERED = Measurement(5.0, 2.0)
CALLS_KEPT = 100


@dataclass(frozen=True, slots=True)
class MockOptions:
    delay: float = 0.0
    fail: list[Operation] = field(default_factory=list)
    unavailable: bool = False
    ignore: list[int] = field(default_factory=list)
    readback: bool = True
    measures: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.delay <= 3600:  # also refuses nan (no comparison holds) and inf
            raise OptionError("delay", f"must be 0..3600 seconds, not {self.delay}")


class MockBackend(Backend):
    readback = True
    measures = True
    Options = MockOptions
    max_channels = 4096

    def __init__(
        self, name: str, channels: int, options: MockOptions, timeout: float = 5.0
    ) -> None:
        super().__init__(name, channels, options, timeout)
        self.delay = options.delay
        self.fail: set[str] = set(options.fail)
        self.unavailable = options.unavailable
        self.ignore = set(options.ignore)
        self.relays = dict.fromkeys(range(1, channels + 1), False)
        self.reads = dict.fromkeys(range(1, channels + 1), 0)
        # instance attribute shadows the class capability when the options say so
        self.readback = options.readback  # type: ignore[misc]
        self.measures = options.measures  # type: ignore[misc]
        #: (operation, channel, argument) of the calls, for tests: at least the last
        #: CALLS_KEPT of them (bounded: a mock lab daemon may run for weeks)
        self.calls: list[tuple[str, int, bool | None]] = []

    async def _fake_hardware(self, op: Operation) -> None:
        if self.delay:
            await anyio.sleep(self.delay)
        if self.unavailable:
            raise DeviceUnavailableError(f"mock device {self.name} is unplugged")
        if op in self.fail:
            raise OperationError(f"injected failure of {op}")

    async def open(self) -> None:
        await self._fake_hardware("open")

    async def set(self, channel: int, on: bool) -> None:
        await self._fake_hardware("set")
        self.calls.append(("set", channel, on))
        if len(self.calls) >= 2 * CALLS_KEPT:
            del self.calls[:CALLS_KEPT]
        if channel in self.ignore:
            return
        self.relays[channel] = on
        self.log.info("power on" if on else "power off")

    async def get(self, channel: int) -> bool | None:
        await self._fake_hardware("get")
        return self.relays[channel] if self.readback else None

    async def get_all(self) -> dict[int, bool | None]:
        await self._fake_hardware("get")
        if not self.readback:
            return dict.fromkeys(self.relays)
        return dict(self.relays)

    async def read(self, channel: int) -> Measurement:
        if not self.measures:
            return await super().read(channel)
        await self._fake_hardware("read")
        self.reads[channel] += 1
        return _IDLE if self.reads[channel] == 1 else _POWERED

    async def close(self) -> None:
        await self._fake_hardware("close")
