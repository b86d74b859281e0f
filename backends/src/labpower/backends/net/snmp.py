"""SNMP PDUs (APC, Raritan, Eaton, ServerTech, CyberPower, or any other through ``custom``
OIDs), SNMP v1, v2c and v3.

Switching is a SET of the profile's control OID; the read-back a GET of its state OID (see
:mod:`labpower.backends.net.snmp_profiles` for the OIDs and values). Every channel's state
comes in one GET. Outlet names are read from the PDU when it is opened.

All of it is pysnmp 7's. v1 and v2c run on the caller's loop over a UDP socket of the
device's own, with the messages of pysnmp's message API
(:mod:`labpower.backends.net.snmp_community`), which costs about 9 MB and a tenth of a second
at import. SNMPv3 needs USM's authentication and privacy, which pysnmp 7's asyncio API does:
it is imported only when a v3 device is configured (it costs about 40 MB more and a second at
import) and runs on its own asyncio loop thread (:mod:`labpower.backends.net.aioloop`), so
this works under trio too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from labpower.backends.base import Measurement
from labpower.backends.errors import (
    DeviceUnavailableError,
    HardwareTimeout,
    NotSupportedError,
    OperationError,
)
from labpower.backends.net.aioloop import SNMP_LOOP
from labpower.backends.net.base import NetOptions, NetworkBackend
from labpower.backends.net.snmp_community import CommunitySession
from labpower.backends.net.snmp_profiles import FAMILIES, PROFILE_NAMES, PROFILES, Meter, Profile
from labpower.backends.secret import Secret

AuthProtocol = Literal["MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"]
PrivProtocol = Literal["DES", "3DES", "AES", "AES192", "AES256"]
#: variable bindings per request (agents cap them; 32 outlets fit in one GET)
MAX_VARBINDS = 32
#: the longest outlet name kept (a PDU's name field; hostile input is bounded)
MAX_NAME = 64


@dataclass(frozen=True, slots=True)
class SnmpOptions(NetOptions):
    profile: str = ""
    version: Literal["1", "2c", "3"] = "2c"
    community: Secret | None = None
    #: SNMPv3: user, authentication and privacy (each key also as *_file, *_credential)
    user: str | None = None
    auth_protocol: AuthProtocol | None = None
    auth_key: Secret | None = None
    priv_protocol: PrivProtocol | None = None
    priv_key: Secret | None = None
    context: str = ""
    #: retries of a request within the device's deadline
    retries: int = 1
    #: profile = "custom": OIDs (``{n}`` the outlet number, else ``.N`` appended) and values
    state_oid: str | None = None
    on_oid: str | None = None
    off_oid: str | None = None
    on_value: int = 1
    off_value: int = 2
    state_on: int | None = None
    state_off: int | None = None
    name_oid: str | None = None
    current_oid: str | None = None
    current_scale: float = 1.0
    voltage_oid: str | None = None
    voltage_scale: float = 1.0

    def __post_init__(self) -> None:
        NetOptions.__post_init__(self)
        if self.profile not in PROFILE_NAMES:
            raise ValueError(f"profile: must be one of {', '.join(PROFILE_NAMES)}")
        if self.version in ("1", "2c") and self.community is None:
            raise ValueError(
                f"community: SNMP v{self.version} needs a community (or community_file, "
                "community_credential)"
            )
        if self.version == "3":
            if not self.user:
                raise ValueError("user: SNMP v3 needs a user")
            if (self.auth_protocol is None) != (self.auth_key is None):
                raise ValueError("auth_key: give auth_protocol and auth_key together")
            if (self.priv_protocol is None) != (self.priv_key is None):
                raise ValueError("priv_key: give priv_protocol and priv_key together")
            if self.priv_protocol is not None and self.auth_protocol is None:
                raise ValueError("priv_protocol: SNMP v3 privacy needs authentication too")
        if not 0 <= self.retries <= 5:
            raise ValueError(f"retries: must be 0..5, not {self.retries}")
        if self.profile == "custom":
            if not self.state_oid:
                raise ValueError("state_oid: profile custom needs state_oid")
            if self.current_oid and not self.voltage_oid:
                raise ValueError("voltage_oid: a reading needs voltage_oid with current_oid")
        elif any(getattr(self, k) is not None for k in _CUSTOM_KEYS):
            used = next(k for k in _CUSTOM_KEYS if getattr(self, k) is not None)
            raise ValueError(f'{used}: only for profile = "custom"')

    def custom_profile(self) -> Profile:
        state = self.state_oid or ""
        return Profile(
            "custom",
            (self.on_oid or state, self.on_value),
            (self.off_oid or self.on_oid or state, self.off_value),
            state,
            self.on_value if self.state_on is None else self.state_on,
            self.off_value if self.state_off is None else self.state_off,
            self.name_oid,
            Meter(self.current_oid, self.current_scale) if self.current_oid else None,
            Meter(self.voltage_oid, self.voltage_scale) if self.voltage_oid else None,
        )


_CUSTOM_KEYS = (
    "state_oid",
    "on_oid",
    "off_oid",
    "state_on",
    "state_off",
    "name_oid",
    "current_oid",
    "voltage_oid",
)


class SnmpBackend(NetworkBackend):
    readback = True
    measures = True
    Options = SnmpOptions
    default_port = 161
    max_channels = 128

    def __init__(self, name: str, channels: int, options: Any, timeout: float = 5.0) -> None:
        super().__init__(name, channels, options, timeout)
        opts: SnmpOptions = options
        #: the profile in use; a family (apc, sentry) is resolved at open
        self.profile: Profile | None = (
            opts.custom_profile() if opts.profile == "custom" else PROFILES.get(opts.profile)
        )
        #: outlet names read from the PDU at open (channel -> name)
        self.outlet_names: dict[int, str] = {}
        self._session: CommunitySession | None = None
        #: SNMPv3: pysnmp's session (labpower.backends.net.snmp_session.Session)
        self._v3: Any = None
        if opts.version == "3":
            # pysnmp takes seconds to import: at config load, not within a first deadline
            from labpower.backends.net import snmp_session

            self._v3_module: Any = snmp_session

    async def _call(self, op: str, pairs: list[tuple[str, int | None]]) -> list[Any]:
        """GET (values None) or SET the OIDs; the values in order (None where the agent has
        no such object)."""
        try:
            if self._session is not None:
                return await self._session.request(op, pairs)
            if self._v3 is None:
                raise DeviceUnavailableError(f"{self.address} is not open")
            result: list[Any] = await SNMP_LOOP.run(self._v3.request(op, pairs))
        except (TimeoutError, HardwareTimeout) as exc:
            raise HardwareTimeout(self.timeout, f"SNMP {op} to {self.address}") from exc
        except OSError as exc:
            raise self.unreachable(exc) from exc
        return result

    async def get(self, channel: int) -> bool | None:
        profile = self._profile()
        (value,) = await self._call("get", [(profile.oid(profile.state, channel), None)])
        return self._state(profile, channel, value)

    async def get_all(self) -> dict[int, bool | None]:
        profile = self._profile()
        states: dict[int, bool | None] = {}
        channels = list(range(1, self.channels + 1))
        for start in range(0, len(channels), MAX_VARBINDS):
            chunk = channels[start : start + MAX_VARBINDS]
            values = await self._call(
                "get", [(profile.oid(profile.state, ch), None) for ch in chunk]
            )
            for ch, value in zip(chunk, values, strict=True):
                states[ch] = self._state(profile, ch, value)
        return states

    def _state(self, profile: Profile, channel: int, value: Any) -> bool | None:
        if value is None:
            raise OperationError(
                f"{self.address} has no {profile.oid(profile.state, channel)}: outlet "
                f"{channel} does not exist, or the PDU is not {profile.name}"
            )
        if value == profile.state_on:
            return True
        if value == profile.state_off:
            return False
        return None  # rebooting, pending, error: the PDU cannot say on or off now

    async def set(self, channel: int, on: bool) -> None:
        profile = self._profile()
        template, value = profile.on if on else profile.off
        await self._call("set", [(profile.oid(template, channel), value)])

    async def switch(self, channel: int, on: bool) -> bool | None:
        await self.set(channel, on)
        return await self.get(channel)

    async def read(self, channel: int) -> Measurement:
        profile = self._profile()
        if profile.current is None or profile.voltage is None:
            raise NotSupportedError("read")
        meters = (profile.current, profile.voltage)
        oids = [m.at(profile, channel) for m in meters]
        oids += [profile.oid(m.digits, channel) for m in meters if m.digits]
        values = await self._call("get", [(oid, None) for oid in oids])
        if any(v is None for v in values):
            raise NotSupportedError("read")  # a model without per-outlet metering
        if isinstance(values[0], int) and values[0] < 0:
            raise NotSupportedError("read")  # Sentry's "not available" (-1)
        digits = iter(values[2:])
        current, voltage = (
            _scaled(v, m, next(digits) if m.digits else None)
            for v, m in zip(values[:2], meters, strict=True)
        )
        return Measurement(voltage, current)

    # -- lifecycle
    async def open(self) -> None:
        if self.options.version == "3":
            self._v3 = await SNMP_LOOP.run(
                self._v3_module.Session.create(self.options, self.address, self.timeout)
            )
        else:
            session = CommunitySession(self.options, self.address, self.timeout)
            try:
                await session.open()
            except OSError as exc:
                raise self.unreachable(exc) from exc
            self._session = session
        try:
            if self.profile is None:
                self.profile = await self._detect()
            await self._read_names()
            await self.get_all()
        except BaseException:
            await self.close()
            raise

    async def _detect(self) -> Profile:
        family = FAMILIES[self.options.profile]
        for name in family:
            candidate = PROFILES[name]
            (value,) = await self._call("get", [(candidate.oid(candidate.state, 1), None)])
            if value is not None:
                self.log.info("%s speaks %s", self.address, name)
                return candidate
        raise OperationError(
            f"{self.address} answers none of the {self.options.profile} MIBs "
            f"({', '.join(family)}): set profile to the PDU's vendor"
        )

    async def _read_names(self) -> None:
        profile = self._profile()
        if profile.name_oid is None:
            return
        channels = list(range(1, self.channels + 1))
        names: dict[int, str] = {}
        for start in range(0, len(channels), MAX_VARBINDS):
            chunk = channels[start : start + MAX_VARBINDS]
            values = await self._call(
                "get", [(profile.oid(profile.name_oid, ch), None) for ch in chunk]
            )
            for ch, value in zip(chunk, values, strict=True):
                if isinstance(value, str):
                    names[ch] = value[:MAX_NAME]
        self.outlet_names = names
        if names:
            self.log.info("outlets: %s", ", ".join(f"{ch} {name!r}" for ch, name in names.items()))

    def _profile(self) -> Profile:
        if self.profile is None:
            raise DeviceUnavailableError(f"{self.address} is not open")
        return self.profile

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        v3, self._v3 = self._v3, None
        if v3 is not None:
            await SNMP_LOOP.run(v3.close())


def _scaled(value: Any, meter: Meter, digits: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise OperationError(f"reading at {meter.oid} is {value!r:.40}, not a number")
    if meter.digits is not None:
        if not isinstance(digits, int) or not 0 <= digits <= 9:
            raise OperationError(f"decimal digits at {meter.digits} is {digits!r:.40}")
        return float(value) / float(10**digits)
    result = float(value) * meter.scale
    if not math.isfinite(result):
        raise OperationError(f"reading at {meter.oid} is not finite")
    return result
