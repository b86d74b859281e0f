"""Tasmota firmware (Sonoff, Athom, Nous and other ESP plugs and relays), HTTP command API.

Every command is ``GET /cm?cmnd=<command>``, with ``user=`` and ``password=`` in the query
when the device has a web password (Tasmota takes no HTTP auth header); replies are JSON:

- ``Power1 On`` / ``Power1 Off`` -> ``{"POWER1":"ON"}`` (a device with one relay answers
  ``{"POWER":"ON"}``); ``Power1`` alone reports the state without switching;
- ``State`` -> ``{"Time":...,"POWER1":"ON","POWER2":"OFF",...}``: every relay at once;
- ``Status 8`` -> ``{"StatusSNS":{"ENERGY":{"Voltage":230,"Current":0.065,"Power":12,...}}}``
  on devices with an energy monitor; with several channels ``Current`` (and maybe
  ``Voltage``) are lists, one per relay;
- a wrong password: HTTP 401 ``{"WARNING":"Need user=<username>&password=<password>"}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from labpower.backends.base import Measurement
from labpower.backends.errors import NotSupportedError, OperationError
from labpower.backends.net.http import HttpBackend, HttpOptions, field


@dataclass(frozen=True, slots=True)
class TasmotaOptions(HttpOptions):
    pass


class TasmotaBackend(HttpBackend):
    readback = True
    measures = True
    Options = TasmotaOptions
    max_channels = 32

    def auth(self) -> httpx.Auth | None:
        return None  # the credentials go in the query (see command())

    async def command(self, cmnd: str) -> Any:
        """Run one Tasmota command; its JSON reply."""
        params = {"cmnd": cmnd}
        opts: TasmotaOptions = self.options
        if opts.password is not None:
            params = {
                "user": opts.user or self.default_user,
                "password": opts.password.reveal(),
                **params,
            }
        return await self.call("/cm", params)

    def _power(self, reply: Any, channel: int, where: str) -> bool:
        keys = (f"POWER{channel}", "POWER") if channel == 1 else (f"POWER{channel}",)
        for key in keys:
            if isinstance(reply, dict) and key in reply:
                value = reply[key]
                if value in ("ON", "OFF"):
                    return bool(value == "ON")
                raise OperationError(f"{where}: {key} is {value!r:.40}, not ON or OFF")
        raise OperationError(f"{where}: no POWER{channel} in the reply: {reply!r:.120}")

    async def hello(self) -> None:
        await self.ping()

    async def switch(self, channel: int, on: bool) -> bool | None:
        # the reply is the relay's state after the command: switch and read-back at once
        cmnd = f"Power{channel} {'On' if on else 'Off'}"
        return self._power(await self.command(cmnd), channel, f"{self.address} {cmnd}")

    async def set(self, channel: int, on: bool) -> None:
        await self.switch(channel, on)

    async def get(self, channel: int) -> bool | None:
        return self._power(
            await self.command(f"Power{channel}"), channel, f"{self.address} Power{channel}"
        )

    async def get_all(self) -> dict[int, bool | None]:
        reply = await self.command("State")
        where = f"{self.address} State"
        return {ch: self._power(reply, ch, where) for ch in range(1, self.channels + 1)}

    async def read(self, channel: int) -> Measurement:
        reply = await self.command("Status 8")
        where = f"{self.address} Status 8"
        sensors = field(reply, "StatusSNS", dict, where)
        energy = sensors.get("ENERGY")
        if energy is None:
            raise NotSupportedError("read")  # no energy monitor
        return Measurement(
            _per_channel(energy, "Voltage", channel, where),
            _per_channel(energy, "Current", channel, where),
        )


def _per_channel(energy: Any, key: str, channel: int, where: str) -> float:
    value = field(energy, key, (int, float, list), where)
    if isinstance(value, list):
        if not channel <= len(value):
            raise NotSupportedError("read")  # the monitor does not cover this relay
        value = value[channel - 1]
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise OperationError(f"{where}: ENERGY {key} is {value!r:.40}, not a number")
    return float(value)
