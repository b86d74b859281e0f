"""Gude Expert Power Control PDUs (8221, 8226, 1104, 1105, 1202...), HTTP interface with
basic auth when enabled.

- ``GET /status.json?components=1``: the outputs,
  ``{"outputs":[{"name":"Power Port","state":1,"type":1,"batch":[0,0,0,0,0],
  "wdog":[0,2,"192.168.0.1"]},...]}``, ``state`` 1 = on, 0 = off, port N first at index N-1;
- ``GET /status.json?components=1&cmd=1&p=N&s=1`` (``s=0``: off): switch port N and answer
  the outputs as they are afterwards: the switch and its read-back in one exchange.

Readings: the PDUs' energy sensors are described by a separate sensor table
(``components=65536``) whose layout varies by model; labpower does not read them yet, so
``read`` is not supported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labpower.backends.errors import OperationError
from labpower.backends.net.http import HttpBackend, HttpOptions, field

OUTPUTS = "1"  # the components bit of the outputs


@dataclass(frozen=True, slots=True)
class GudeOptions(HttpOptions):
    pass


class GudeBackend(HttpBackend):
    readback = True
    Options = GudeOptions
    max_channels = 48

    async def outputs(self, **command: str) -> list[Any]:
        """The ``outputs`` list, after ``command`` (``cmd``, ``p``, ``s``) if given."""
        reply = await self.call("/status.json", {"components": OUTPUTS, **command})
        outputs: list[Any] = field(reply, "outputs", list, f"{self.address}/status.json")
        if len(outputs) < self.channels:
            raise OperationError(
                f"{self.address} has {len(outputs)} outputs, "
                f"the config says channels = {self.channels}"
            )
        return outputs

    def _state(self, outputs: list[Any], channel: int) -> bool:
        where = f"{self.address}/status.json outputs[{channel - 1}]"
        state = field(outputs[channel - 1], "state", int, where)
        if state not in (0, 1):
            raise OperationError(f"{where}: state {state}, not 0 or 1")
        return bool(state == 1)

    async def hello(self) -> None:
        await self.outputs()

    async def switch(self, channel: int, on: bool) -> bool | None:
        outputs = await self.outputs(cmd="1", p=str(channel), s="1" if on else "0")
        return self._state(outputs, channel)

    async def set(self, channel: int, on: bool) -> None:
        await self.switch(channel, on)

    async def get(self, channel: int) -> bool | None:
        return self._state(await self.outputs(), channel)

    async def get_all(self) -> dict[int, bool | None]:
        outputs = await self.outputs()
        return {ch: self._state(outputs, ch) for ch in range(1, self.channels + 1)}

    def outlet_names(self, outputs: list[Any]) -> list[str]:
        return [str(o.get("name", "")) if isinstance(o, dict) else "" for o in outputs]
