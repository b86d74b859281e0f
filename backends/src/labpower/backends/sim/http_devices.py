"""Tasmota, Gude and NETIO devices, answering as their documented HTTP APIs do (the requests
and replies are in :mod:`labpower.backends.net.tasmota`, ``.gude`` and ``.netio``)."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from labpower.backends.sim.http import HttpSimulator, Reply, compact, mac

#: mains voltage and the current of a small load, for the metering models
VOLTAGE = 230.4
CURRENT_ON = 0.105


class TasmotaSimulator(HttpSimulator):
    kind: ClassVar[str] = "tasmota"
    max_channels: ClassVar[int] = 8

    def __init__(self, *args: Any, metering: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.metering = metering

    def authorized(self, method: str, header: str | None) -> bool:
        return True  # Tasmota checks user= and password= in the query instead (route())

    def _key(self, channel: int) -> str:
        return "POWER" if self.channels == 1 else f"POWER{channel}"

    def _onoff(self, channel: int) -> str:
        return "ON" if self.relays[channel] else "OFF"

    def route(self, method: str, path: str, query: dict[str, str], body: bytes) -> Reply:
        if path != "/cm":
            return self.not_found()
        if self.password is not None and (
            query.get("user") != self.user or query.get("password") != self.password
        ):
            return Reply(compact({"WARNING": "Need user=<username>&password=<password>"}), 401)
        words = query.get("cmnd", "").split()
        if not words:
            return Reply(compact({"Command": "Unknown"}))
        name, args = words[0].lower(), [w.lower() for w in words[1:]]
        if name.startswith("power") and (name[5:].isdigit() or name == "power"):
            channel = int(name[5:] or 1)
            if channel not in self.relays:
                return Reply(compact({"Command": "Unknown"}))
            if args:
                wanted = {"on": True, "1": True, "off": False, "0": False}.get(args[0])
                if wanted is None and args[0] in ("toggle", "2"):
                    wanted = not self.relays[channel]
                if wanted is None:
                    return Reply(compact({"Command": "Error"}))
                self.apply(channel, wanted)
            return Reply(compact({self._key(channel): self._onoff(channel)}))
        if name == "state":
            state: dict[str, Any] = {
                "Time": "2024-05-01T12:00:00",
                "Uptime": "0T01:00:00",
                "UptimeSec": 3600,
                "Heap": 25,
                "SleepMode": "Dynamic",
                "Sleep": 50,
                "LoadAvg": 19,
                "MqttCount": 0,
            }
            state.update({self._key(ch): self._onoff(ch) for ch in self.relays})
            state["Wifi"] = {"AP": 1, "SSId": "lab", "RSSI": 100, "Signal": -45}
            return Reply(compact(state))
        if name == "status" and args == ["8"]:
            sns: dict[str, Any] = {"Time": "2024-05-01T12:00:00"}
            if self.metering:
                currents = [CURRENT_ON if on else 0.0 for on in self.relays.values()]
                powers = [round(VOLTAGE * c) for c in currents]
                single = self.channels == 1
                sns["ENERGY"] = {
                    "TotalStartTime": "2024-01-01T00:00:00",
                    "Total": 1.234,
                    "Yesterday": 0.1,
                    "Today": 0.05,
                    "Power": powers[0] if single else powers,
                    "ApparentPower": powers[0] if single else powers,
                    "ReactivePower": 0 if single else [0] * self.channels,
                    "Factor": 1.0 if single else [1.0] * self.channels,
                    "Voltage": VOLTAGE,
                    "Current": currents[0] if single else currents,
                }
            return Reply(compact({"StatusSNS": sns}))
        if name == "status" and not args:
            names = [f"Tasmota{'' if ch == 1 else ch}" for ch in self.relays]
            return Reply(
                compact(
                    {
                        "Status": {
                            "Module": 0,
                            "DeviceName": "Tasmota",
                            "FriendlyName": names,
                            "Topic": f"tasmota_{mac(self)[6:]}",
                            "Power": sum(1 << (ch - 1) for ch, on in self.relays.items() if on),
                        }
                    }
                )
            )
        return Reply(compact({"Command": "Unknown"}))


class GudeSimulator(HttpSimulator):
    """A Gude Expert Power Control PDU; with ``metering``, one energy meter per port (the
    sensor tables of ``status.json``, see :mod:`labpower.backends.net.gude`)."""

    kind: ClassVar[str] = "gude"
    max_channels: ClassVar[int] = 12

    def __init__(self, *args: Any, metering: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.metering = metering

    def _meter(self, on: bool) -> list[dict[str, float]]:
        current = CURRENT_ON if on else 0.0
        power = round(VOLTAGE * current)
        values = [0.125, power, current, VOLTAGE, 50.0, 1.0 if on else 0.0, power]
        return [{"v": v} for v in values]

    def route(self, method: str, path: str, query: dict[str, str], body: bytes) -> Reply:
        if path != "/status.json":
            return self.not_found()
        if query.get("cmd") == "1":
            port, state = int(query["p"]), query["s"]
            if port in self.relays and state in ("0", "1"):
                self.apply(port, state == "1")
        reply: dict[str, Any] = {}
        components = int(query.get("components", "0"))
        if components & 1:
            reply["outputs"] = [
                {
                    "name": f"Power Port {ch}",
                    "state": int(on),
                    "type": 1,
                    "batch": [0, 0, 0, 0, 0],
                    "wdog": [0, 2, "192.168.0.1"],
                }
                for ch, on in self.relays.items()
            ]
        if components & GUDE_SENSOR_DESCR:
            reply["sensor_descr"] = (
                [
                    {
                        "type": GUDE_PORT_METER,
                        "num": self.channels,
                        "properties": [
                            {"id": f"Power Port {ch}", "name": ""} for ch in self.relays
                        ],
                        "fields": GUDE_METER_FIELDS,
                    }
                ]
                if self.metering
                else []
            )
        if components & GUDE_SENSOR_VALUES:
            reply["sensor_values"] = (
                [
                    {
                        "type": GUDE_PORT_METER,
                        "num": self.channels,
                        "values": [self._meter(on) for on in self.relays.values()],
                    }
                ]
                if self.metering
                else []
            )
        return Reply(compact(reply))


#: ``components`` bits of Gude's ``status.json``: sensor values, sensor descriptions
GUDE_SENSOR_VALUES, GUDE_SENSOR_DESCR = 0x4000, 0x10000
#: the sensor type of the port energy meters in the simulator's table (the backend finds the
#: meters by their fields, not by this number)
GUDE_PORT_METER = 9
#: an energy meter's fields, in the order of its values
GUDE_METER_FIELDS = [
    {"name": "Absolute Energy Active", "unit": "kWh", "decPrecision": 3},
    {"name": "Power Active", "unit": "W", "decPrecision": 0},
    {"name": "Current", "unit": "A", "decPrecision": 3},
    {"name": "Voltage", "unit": "V", "decPrecision": 0},
    {"name": "Frequency", "unit": "Hz", "decPrecision": 2},
    {"name": "Power Factor", "unit": "", "decPrecision": 2},
    {"name": "Power Apparent", "unit": "VA", "decPrecision": 0},
]


class NetioSimulator(HttpSimulator):
    kind: ClassVar[str] = "netio"
    max_channels: ClassVar[int] = 8

    def __init__(
        self, *args: Any, metering: bool = True, user: str = "netio", **kwargs: Any
    ) -> None:
        super().__init__(*args, user=user, **kwargs)
        self.metering = metering

    def status(self) -> dict[str, Any]:
        agent = {
            "Model": "NETIO 4All" if self.metering else "NETIO 4",
            "Version": "3.4.0",
            "JSONVer": "2.1",
            "DeviceName": "netio-lab",
            "VendorID": 0,
            "OemID": 0,
            "SerialNumber": mac(self),
            "Uptime": 3600,
            "Time": "2024-05-01T12:00:00+00:00",
            "NumOutputs": self.channels,
        }
        outputs = []
        for ch, on in self.relays.items():
            output: dict[str, Any] = {
                "ID": ch,
                "Name": f"output_{ch}",
                "State": int(on),
                "Action": 6,
                "Delay": 5000,
            }
            if self.metering:
                output.update(
                    Current=round(CURRENT_ON * 1000) if on else 0,
                    PowerFactor=1.0 if on else 0.0,
                    Load=round(VOLTAGE * CURRENT_ON) if on else 0,
                    Energy=1234,
                )
            outputs.append(output)
        doc: dict[str, Any] = {"Agent": agent}
        if self.metering:
            doc["GlobalMeasure"] = {
                "Voltage": VOLTAGE,
                "Frequency": 50.0,
                "TotalCurrent": sum(o.get("Current", 0) for o in outputs),
                "OverallPowerFactor": 1.0,
                "TotalLoad": sum(o.get("Load", 0) for o in outputs),
                "TotalEnergy": 1234 * self.channels,
                "EnergyStart": "2024-01-01T00:00:00+00:00",
            }
        doc["Outputs"] = outputs
        return doc

    def route(self, method: str, path: str, query: dict[str, str], body: bytes) -> Reply:
        if path != "/netio.json":
            return self.not_found()
        if method == "POST":
            try:
                command = json.loads(body)
                changes = command["Outputs"]
                for change in changes:
                    channel, action = change["ID"], change["Action"]
                    if channel not in self.relays or action not in range(7):
                        return Reply(b"", 400)
                    if action in (0, 1):
                        self.apply(channel, action == 1)
                    elif action == 4:
                        self.apply(channel, not self.relays[channel])
            except (ValueError, KeyError, TypeError):
                return Reply(b"", 400)
        return Reply(json.dumps(self.status(), indent=1).encode())
