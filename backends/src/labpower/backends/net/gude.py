"""Gude Expert Power Control PDUs (8221, 8226, 1104, 1105, 1202...), HTTP interface with
basic auth when enabled.

- ``GET /status.json?components=1``: the outputs,
  ``{"outputs":[{"name":"Power Port","state":1,"type":1,"batch":[0,0,0,0,0],
  "wdog":[0,2,"192.168.0.1"]},...]}``, ``state`` 1 = on, 0 = off, port N first at index N-1;
- ``GET /status.json?components=1&cmd=1&p=N&s=1`` (``s=0``: off): switch port N and answer
  the outputs as they are afterwards: the switch and its read-back in one exchange.

Readings: ``GET /status.json?components=81920`` (sensor descriptions 0x10000 and sensor
values 0x4000) answers the device's sensor tables, which describe themselves:

- ``"sensor_descr":[{"type":T,"num":N,"properties":[{"id":"Power Port 1","name":""},...],
  "fields":[{"name":"Current","unit":"A","decPrecision":3},{"name":"Voltage","unit":"V",
  ...},...]},...]``: one group per kind of sensor, one property per sensor of that kind;
- ``"sensor_values":[{"type":T,"num":N,"values":[[{"v":0.105},{"v":230},...],...]},...]``:
  per group (the same ``type``), per sensor, the values in the order of the fields.

The type numbers differ between models, so the port meters are found by what they say: a
group with a ``Voltage`` (V) and a ``Current`` (A) field and one sensor per output (channel N
reads sensor N-1). A PDU with line meters only (its inlets), or none, has no such group:
``read`` is not supported there, rather than answer an inlet's current for an outlet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labpower.backends.base import Measurement
from labpower.backends.errors import NotSupportedError, OperationError
from labpower.backends.net.http import HttpBackend, HttpOptions, field

OUTPUTS = "1"  # the components bit of the outputs
#: the components bits of the sensor descriptions (0x10000) and values (0x4000)
SENSORS = str(0x10000 | 0x4000)


@dataclass(frozen=True, slots=True)
class GudeOptions(HttpOptions):
    pass


class GudeBackend(HttpBackend):
    readback = True
    measures = True
    Options = GudeOptions
    max_channels = 48

    def __init__(self, name: str, channels: int, options: Any, timeout: float = 5.0) -> None:
        super().__init__(name, channels, options, timeout)
        #: how many outputs the PDU has (known after open)
        self.outputs_count = 0

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
        self.outputs_count = len(await self.outputs())

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

    async def read(self, channel: int) -> Measurement:
        where = f"{self.address}/status.json sensors"
        reply = await self.call("/status.json", {"components": SENSORS})
        descr = reply.get("sensor_descr", []) if isinstance(reply, dict) else None
        values = reply.get("sensor_values", []) if isinstance(reply, dict) else None
        if not isinstance(descr, list) or not isinstance(values, list):
            raise OperationError(f"{where}: sensor_descr / sensor_values are not lists")
        for group in descr:
            columns = _meter_columns(group, self.outputs_count)
            if columns is None:
                continue
            kind = group.get("type")
            table = next((v for v in values if isinstance(v, dict) and v.get("type") == kind), None)
            rows = field(table, "values", list, f"{where} type {kind!r:.20}")
            if len(rows) < channel:
                raise OperationError(f"{where}: no values for port {channel}")
            row = rows[channel - 1]
            voltage, current = (_value(row, column, where) for column in columns)
            return Measurement(voltage, current)
        raise NotSupportedError("read")  # no meter per port: line meters only, or none


def _meter_columns(group: Any, sensors: int) -> tuple[int, int] | None:
    """Where a port meter group keeps (voltage, current); None if ``group`` is not one: it
    needs both fields and one sensor per output."""
    if not isinstance(group, dict):
        return None
    fields, properties = group.get("fields"), group.get("properties")
    if not isinstance(fields, list) or not isinstance(properties, list):
        return None
    if len(properties) != sensors:
        return None
    names = [(f.get("name"), f.get("unit")) if isinstance(f, dict) else None for f in fields]
    try:
        return names.index(("Voltage", "V")), names.index(("Current", "A"))
    except ValueError:
        return None


def _value(row: Any, column: int, where: str) -> float:
    if not isinstance(row, list) or len(row) <= column:
        raise OperationError(f"{where}: a row of values is too short: {row!r:.80}")
    value = field(row[column], "v", (int, float), where)
    return float(value)
