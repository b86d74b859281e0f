"""A Shelly device, Gen1 or Gen2+, answering as the firmware's documented HTTP API does
(see :mod:`labpower.backends.net.shelly` for the requests and replies)."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from labpower.backends.sim.http import HttpSimulator, Reply, compact, mac

#: what a Gen2+ switch with a meter reports while on: a small load at mains voltage
VOLTAGE = 230.4
CURRENT_ON = 0.105
#: a Shelly 3EM's phases
PHASES = range(3)


class ShellySimulator(HttpSimulator):
    kind: ClassVar[str] = "shelly"
    max_channels: ClassVar[int] = 4
    public_paths: ClassVar[frozenset[str]] = frozenset({"/shelly"})

    def __init__(
        self,
        *args: Any,
        generation: int = 2,
        metering: bool = True,
        emeter: bool = False,
        **kwargs: Any,
    ) -> None:
        if generation not in (1, 2, 3, 4):
            raise ValueError(f"Shelly generations are 1..4, not {generation}")
        if emeter and (generation != 1 or kwargs.get("channels", 1) != 1):
            raise ValueError("emeter: a Gen1 Shelly 3EM, which has one relay (channels = 1)")
        super().__init__(*args, **kwargs)
        self.generation = generation
        #: Gen1: a 1PM / 2.5 (meters: power only), else a Shelly 1 (no meter);
        #: Gen2+: switches that report voltage and current
        self.metering = metering
        #: Gen1: a 3EM instead (emeters: power, voltage, current per phase)
        self.emeter = emeter
        self.device_id = f"shellypro{self.channels}pm-{mac(self)[6:].lower()}"
        if generation > 1:
            self.realm = self.device_id  # Gen2+ digest realm is the device id

    @property
    def auth_scheme(self) -> str:  # type: ignore[override]  # depends on the generation
        return "basic" if self.generation == 1 else "digest"

    def route(self, method: str, path: str, query: dict[str, str], body: bytes) -> Reply:
        if path == "/shelly":
            return Reply(compact(self.info()))
        if self.generation == 1:
            return self._gen1(path, query)
        if path == "/rpc" and method == "POST":
            request = json.loads(body)
            return self._rpc(request.get("id"), request["method"], request.get("params") or {})
        if path.startswith("/rpc/"):
            params: dict[str, Any] = {k: json.loads(v) for k, v in query.items()}
            return self._rpc(None, path[5:], params)
        return self.not_found()

    def info(self) -> dict[str, Any]:
        if self.generation == 1:
            return {
                "type": self._gen1_type(),
                "mac": mac(self),
                "auth": self.password is not None,
                "fw": "20230913-114008/v1.14.0-gcb84623",
                "longid": 1,
                "num_outputs": self.channels,
                "num_meters": 0 if self.emeter or not self.metering else self.channels,
                **({"num_emeters": len(PHASES)} if self.emeter else {}),
            }
        return {
            "name": None,
            "id": self.device_id,
            "mac": mac(self),
            "slot": 0,
            "model": "SPSW-104PE16EU" if self.channels == 4 else "SNSW-001P16EU",
            "gen": self.generation,
            "fw_id": "20240625-122917/1.3.3-gbdfd9b3",
            "ver": "1.3.3",
            "app": "Pro4PM" if self.channels == 4 else "Plus1PM",
            "auth_en": self.password is not None,
            "auth_domain": self.device_id if self.password is not None else None,
        }

    # -- Gen1 REST
    def _gen1_type(self) -> str:
        if self.emeter:
            return "SHEM-3"
        if not self.metering:
            return "SHSW-1"
        return "SHSW-PM" if self.channels == 1 else "SHSW-25"

    def _gen1_meters(self) -> dict[str, Any]:
        """The meter part of a Gen1 ``/status``, as the model reports it."""
        on = self.relays[1]
        if self.emeter:  # 3EM: one meter per phase; the contactor feeds a load on phase A
            emeters = []
            for phase in PHASES:
                current = CURRENT_ON if on and phase == 0 else 0.0
                emeters.append(
                    {
                        "power": round(VOLTAGE * current, 2),
                        "pf": 1.0 if current else 0.0,
                        "current": current,
                        "voltage": VOLTAGE,
                        "is_valid": True,
                        "total": 1234.5,
                        "total_returned": 0.0,
                    }
                )
            return {"emeters": emeters, "total_power": emeters[0]["power"]}
        if not self.metering:
            return {}
        meters: dict[str, Any] = {
            "meters": [
                {
                    "power": 24.2 if on else 0.0,
                    "overpower": 0.0,
                    "is_valid": True,
                    "timestamp": 0,
                    "counters": [0.0, 0.0, 0.0],
                    "total": 0,
                }
                for on in self.relays.values()
            ]
        }
        if self.channels > 1:  # the 2.5 also reports its supply voltage
            meters["voltage"] = VOLTAGE
        return meters

    def _relay1(self, channel: int) -> dict[str, Any]:
        return {
            "ison": self.relays[channel],
            "has_timer": False,
            "timer_started": 0,
            "timer_duration": 0,
            "timer_remaining": 0,
            "overpower": False,
            "source": "http",
        }

    def _gen1(self, path: str, query: dict[str, str]) -> Reply:
        if path.startswith("/relay/"):
            channel = int(path[7:]) + 1
            if channel not in self.relays:
                return self.not_found()
            turn = query.get("turn")
            if turn is not None:
                if turn not in ("on", "off", "toggle"):
                    return Reply(b"Bad turn!", 400, "text/plain")
                self.apply(channel, not self.relays[channel] if turn == "toggle" else turn == "on")
            return Reply(compact(self._relay1(channel)))
        if path == "/status":
            status = {"mac": mac(self), "relays": [self._relay1(ch) for ch in self.relays]}
            return Reply(compact({**status, **self._gen1_meters()}))
        return self.not_found()

    # -- Gen2+ JSON-RPC
    def _switch_status(self, channel: int) -> dict[str, Any]:
        status: dict[str, Any] = {
            "id": channel - 1,
            "source": "HTTP_in",
            "output": self.relays[channel],
        }
        if self.metering:
            on = self.relays[channel]
            status.update(
                apower=round(VOLTAGE * CURRENT_ON, 1) if on else 0.0,
                voltage=VOLTAGE,
                freq=50.0,
                current=CURRENT_ON if on else 0.0,
                pf=1.0 if on else 0.0,
                aenergy={"total": 0.0, "by_minute": [0.0, 0.0, 0.0], "minute_ts": 0},
            )
        status["temperature"] = {"tC": 41.2, "tF": 106.2}
        return status

    def _rpc(self, request_id: Any, method: str, params: dict[str, Any]) -> Reply:
        def answer(result: dict[str, Any] | None, error: tuple[int, str] | None = None) -> Reply:
            frame: dict[str, Any] = {"id": request_id, "src": self.device_id}
            if error is not None:
                frame["error"] = {"code": error[0], "message": error[1]}
            else:
                frame["result"] = result
            if request_id is None:  # GET /rpc/Method: the bare result, or the error
                return Reply(
                    compact(frame.get("result", frame.get("error"))), 200 if error is None else 500
                )
            return Reply(compact(frame))

        if method == "Shelly.GetStatus":
            return answer({f"switch:{ch - 1}": self._switch_status(ch) for ch in self.relays})
        if method in ("Switch.Set", "Switch.GetStatus"):
            sid = params.get("id")
            if not isinstance(sid, int) or isinstance(sid, bool) or sid + 1 not in self.relays:
                return answer(None, (-105, f"Argument 'id', value {sid} not found!"))
            channel = sid + 1
            if method == "Switch.GetStatus":
                return answer(self._switch_status(channel))
            on = params.get("on")
            if not isinstance(on, bool):
                return answer(None, (-103, "Missing required argument 'on'!"))
            was_on = self.relays[channel]
            self.apply(channel, on)
            return answer({"was_on": was_on})
        return answer(None, (404, f"No handler for {method}"))
