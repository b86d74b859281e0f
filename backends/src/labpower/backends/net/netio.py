"""NETIO PDUs and smart sockets (4All, 4, PowerPDU, PowerCable, PowerBOX), JSON M2M API
(enable "JSON API" in the device's web; HTTP basic auth, default user ``netio``).

- ``GET /netio.json``: ``{"Agent":{"Model":"NETIO 4All","DeviceName":"...","NumOutputs":4,
  ...},"GlobalMeasure":{"Voltage":230.4,...},"Outputs":[{"ID":1,"Name":"output_1",
  "State":1,"Action":6,"Delay":5000,"Current":120,"PowerFactor":0.91,"Load":25,
  "Energy":1234},...]}``. ``State`` 1 = on; ``Current`` is in mA; models without metering
  have no ``GlobalMeasure`` and no ``Current``;
- ``POST /netio.json`` ``{"Outputs":[{"ID":N,"Action":1}]}`` (``Action`` 0 off, 1 on, 2 short
  off, 3 short on, 4 toggle, 5 no change): switch, and the device answers the whole status
  as it is afterwards: the switch and its read-back in one exchange.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from labpower.backends.base import Measurement
from labpower.backends.errors import NotSupportedError, OperationError
from labpower.backends.net.http import HttpBackend, HttpOptions, field

ACTION_OFF, ACTION_ON = 0, 1


@dataclass(frozen=True, slots=True)
class NetioOptions(HttpOptions):
    pass


class NetioBackend(HttpBackend):
    readback = True
    measures = True
    Options = NetioOptions
    max_channels = 16
    default_user: ClassVar[str] = "netio"

    async def status(self, body: Any = None) -> dict[str, Any]:
        reply = await self.call("/netio.json", body=body)
        field(reply, "Outputs", list, f"{self.address}/netio.json")
        return dict(reply)

    def _output(self, status: dict[str, Any], channel: int) -> dict[str, Any]:
        for output in status["Outputs"]:
            if isinstance(output, dict) and output.get("ID") == channel:
                return output
        raise OperationError(f"{self.address}/netio.json has no output with ID {channel}")

    def _state(self, status: dict[str, Any], channel: int) -> bool:
        where = f"{self.address}/netio.json output {channel}"
        state = field(self._output(status, channel), "State", int, where)
        if state not in (0, 1):
            raise OperationError(f"{where}: State {state}, not 0 or 1")
        return bool(state == 1)

    async def hello(self) -> None:
        status = await self.status()
        for channel in range(1, self.channels + 1):
            self._output(status, channel)

    async def switch(self, channel: int, on: bool) -> bool | None:
        action = ACTION_ON if on else ACTION_OFF
        status = await self.status({"Outputs": [{"ID": channel, "Action": action}]})
        return self._state(status, channel)

    async def set(self, channel: int, on: bool) -> None:
        await self.switch(channel, on)

    async def get(self, channel: int) -> bool | None:
        return self._state(await self.status(), channel)

    async def get_all(self) -> dict[int, bool | None]:
        status = await self.status()
        return {ch: self._state(status, ch) for ch in range(1, self.channels + 1)}

    async def read(self, channel: int) -> Measurement:
        status = await self.status()
        output = self._output(status, channel)
        measure = status.get("GlobalMeasure")
        if not isinstance(measure, dict) or "Current" not in output:
            raise NotSupportedError("read")  # a model without metering
        where = f"{self.address}/netio.json"
        voltage = field(measure, "Voltage", (int, float), where)
        milliamps = field(output, "Current", (int, float), f"{where} output {channel}")
        return Measurement(float(voltage), float(milliamps) / 1000.0)
