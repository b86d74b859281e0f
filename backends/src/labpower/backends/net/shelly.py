"""Shelly smart plugs and relays, Gen1 (REST) and Gen2+ (JSON-RPC), told apart by ``/shelly``.

Channel N is the device's relay / switch ``id`` N-1.

Gen1 (Shelly 1, 1PM, 2.5, Plug S...), HTTP basic auth when enabled:

- ``GET /shelly`` (never needs auth): ``{"type":"SHPLG-S","mac":"...","auth":false,
  "fw":"...","num_outputs":1,...}``
- ``GET /relay/0?turn=on`` / ``off``: the relay's status afterwards, ``{"ison":true,...}``;
  ``GET /relay/0``: the same without switching
- ``GET /status``: ``{"relays":[{"ison":false,...}],...}`` and what the model meters: the 1PM,
  2.5 and Plug S ``"meters":[{"power":24.2,"is_valid":true,...}]`` (active power only, one
  per relay), the 3EM ``"emeters":[{"power":24.19,"pf":1.0,"current":0.105,
  "voltage":230.4,"is_valid":true,"total":...},...]`` (one per phase), the EM
  ``"emeters":[{"power":..,"reactive":..,"voltage":..,...}]`` (no current). ``read`` gives
  channel N the voltage and current of ``emeters[N-1]`` where both are there; a reading
  is voltage and current (its power is their product), so active power alone cannot be one,
  and ``read`` is not supported on the power-only and unmetered models.

Gen2+ (Plus, Pro, Gen3, Gen4), HTTP digest auth (SHA-256, user ``admin``) when enabled:

- ``GET /shelly``: ``{"id":"shellyplusplugs-...","model":"SNPL-00112EU","gen":2,
  "auth_en":false,...}``
- ``POST /rpc`` ``{"id":1,"method":"Switch.Set","params":{"id":0,"on":true}}`` ->
  ``{"id":1,"src":"...","result":{"was_on":false}}``
- ``Switch.GetStatus`` ``{"id":0}`` -> ``{"result":{"id":0,"output":true,"apower":8.9,
  "voltage":237.5,"current":0.068,...}}``; ``voltage`` and ``current`` only where the switch
  meters (``read`` is not supported otherwise)
- ``Shelly.GetStatus``: every component, ``{"switch:0":{...},"switch:1":{...},...}``
- errors: ``{"id":1,"src":"...","error":{"code":-105,"message":"..."}}``
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labpower.backends.base import Measurement
from labpower.backends.errors import NotSupportedError, OperationError
from labpower.backends.net.http import Auth, HttpBackend, HttpOptions, field

#: the JSON-RPC id of every request
RPC_ID = 1


@dataclass(frozen=True, slots=True)
class ShellyOptions(HttpOptions):
    pass


class ShellyBackend(HttpBackend):
    readback = True
    measures = True
    Options = ShellyOptions
    max_channels = 16

    def __init__(self, name: str, channels: int, options: Any, timeout: float = 5.0) -> None:
        super().__init__(name, channels, options, timeout)
        #: 1 for Gen1, 2 and up for the JSON-RPC generations; known after open
        self.generation = 0
        self.model = ""

    def auth_scheme(self) -> Auth:
        return "basic" if self.generation == 1 else "digest"

    async def hello(self) -> None:
        info = await self.call("/shelly")
        where = f"{self.address}/shelly"
        if isinstance(info, dict) and "gen" in info:
            self.generation = field(info, "gen", int, where)
            self.model = str(field(info, "model", str, where))
        else:
            self.generation = 1
            self.model = str(field(info, "type", str, where))
        self._auth = self.auth()  # the scheme follows the generation
        await self.ping()  # also checks the credentials: /shelly needs none

    async def rpc(self, method: str, **params: Any) -> Any:
        """One Gen2+ JSON-RPC call; its ``result``. :raises OperationError: an RPC error."""
        # HTTP pairs each reply with its request (the id matters on the device's websocket):
        # one id for all lets a request be built once and sent again (HttpBackend.request)
        request_id = RPC_ID
        reply = await self.call("/rpc", body={"id": request_id, "method": method, "params": params})
        where = f"{self.address} {method}"
        if isinstance(reply, dict) and "error" in reply:
            error = reply["error"]
            message = error.get("message") if isinstance(error, dict) else error
            raise OperationError(f"{where}: the device refused: {message!r:.120}")
        if field(reply, "id", int, where) != request_id:
            raise OperationError(f"{where}: reply to another request ({reply.get('id')!r})")
        return field(reply, "result", dict, where)

    def _relay(self, channel: int) -> str:
        return f"/relay/{channel - 1}"

    async def set(self, channel: int, on: bool) -> None:
        await self.switch(channel, on)

    async def switch(self, channel: int, on: bool) -> bool | None:
        if self.generation == 1:
            # the reply is the relay's state after the command: switch and read-back at once
            status = await self.call(self._relay(channel), {"turn": "on" if on else "off"})
            return bool(field(status, "ison", bool, f"{self.address}{self._relay(channel)}"))
        await self.rpc("Switch.Set", id=channel - 1, on=on)
        return await self.get(channel)

    async def get(self, channel: int) -> bool | None:
        if self.generation == 1:
            status = await self.call(self._relay(channel))
            return bool(field(status, "ison", bool, f"{self.address}{self._relay(channel)}"))
        status = await self.rpc("Switch.GetStatus", id=channel - 1)
        return bool(field(status, "output", bool, f"{self.address} Switch.GetStatus"))

    async def get_all(self) -> dict[int, bool | None]:
        states: dict[int, bool | None] = {}
        if self.generation == 1:
            where = f"{self.address}/status"
            relays = field(await self.call("/status"), "relays", list, where)
            for channel in range(1, self.channels + 1):
                relay = relays[channel - 1] if channel <= len(relays) else None
                states[channel] = bool(field(relay, "ison", bool, where))
            return states
        status = await self.rpc("Shelly.GetStatus")
        for channel in range(1, self.channels + 1):
            where = f"{self.address} Shelly.GetStatus switch:{channel - 1}"
            states[channel] = bool(
                field(status.get(f"switch:{channel - 1}"), "output", bool, where)
            )
        return states

    async def read(self, channel: int) -> Measurement:
        if self.generation == 1:
            return await self._read_emeter(channel)
        status = await self.rpc("Switch.GetStatus", id=channel - 1)
        if "voltage" not in status or "current" not in status:
            raise NotSupportedError("read")  # a switch without a meter
        where = f"{self.address} Switch.GetStatus"
        return Measurement(
            float(field(status, "voltage", (int, float), where)),
            float(field(status, "current", (int, float), where)),
        )

    async def _read_emeter(self, channel: int) -> Measurement:
        """A Gen1 reading, from ``/status``'s ``emeters`` (see the module's docstring)."""
        status = await self.call("/status")
        emeters = status.get("emeters") if isinstance(status, dict) else None
        if not isinstance(emeters, list) or len(emeters) < channel:
            raise NotSupportedError("read")  # meters of power only, or none
        emeter = emeters[channel - 1]
        if not isinstance(emeter, dict) or "voltage" not in emeter or "current" not in emeter:
            raise NotSupportedError("read")  # an EM: voltage without current
        where = f"{self.address}/status emeters[{channel - 1}]"
        if emeter.get("is_valid") is False:
            raise OperationError(f"{where}: the meter says its values are not valid")
        return Measurement(
            float(field(emeter, "voltage", (int, float), where)),
            float(field(emeter, "current", (int, float), where)),
        )
