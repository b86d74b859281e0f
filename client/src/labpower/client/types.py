"""The values the daemon returns: targets, readings and log entries."""

from __future__ import annotations

from labpower.client.errors import RemoteProtocolError
from labpower.client.frozen import Frozen

# typing is not imported at run time (see frozen.py); the checker reads this block as true
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, Literal, TypeAlias

    State: TypeAlias = Literal["on", "off", "unknown"]

_STATES = ("on", "off", "unknown")

#: varlink level names <-> Python logging levels (their numbers: importing logging would
#: slow the ``labpower`` command's start)
LEVELS: dict[str, int] = {
    "debug": 10,
    "info": 20,
    "warning": 30,
    "error": 40,
    "critical": 50,
}


def level_name(levelno: int) -> str:
    """The varlink level name for a Python logging level (rounded down)."""
    for name, number in reversed(LEVELS.items()):
        if levelno >= number:
            return name
    return "debug"


def _field(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise RemoteProtocolError(f"{what}: field {key!r} is {value!r}")
    return value


class Lease(Frozen):
    """Who holds a target exclusively."""

    __match_args__ = ("uid", "pid", "name", "since", "expires")
    __slots__ = __match_args__
    uid: int
    pid: int
    name: str | None
    since: str
    expires: str | None

    def __init__(
        self, uid: int, pid: int, name: str | None, since: str, expires: str | None = None
    ) -> None:
        self._fill(uid, pid, name, since, expires)

    @classmethod
    def from_wire(cls, obj: Any) -> Lease | None:
        if obj is None:
            return None
        if not isinstance(obj, dict):
            raise RemoteProtocolError(f"Lease must be an object, not {obj!r}")
        name, expires = obj.get("name"), obj.get("expires")
        return cls(
            uid=_field(obj, "uid", int, "Lease"),
            pid=_field(obj, "pid", int, "Lease"),
            name=name if isinstance(name, str) else None,
            since=_field(obj, "since", str, "Lease"),
            expires=expires if isinstance(expires, str) else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "pid": self.pid,
            "name": self.name,
            "since": self.since,
            "expires": self.expires,
        }

    def __str__(self) -> str:
        who = f"uid {self.uid} pid {self.pid}"
        return f"{self.name} ({who})" if self.name else who


class Target(Frozen):
    """One switchable output: a channel of a device."""

    __match_args__ = (
        "name",
        "device",
        "channel",
        "state",
        "verified",
        "available",
        "since",
        "lease",
        "problem",
        "pdudaemon",
        "aliases",
    )
    __slots__ = __match_args__
    name: str
    device: str
    channel: int
    state: State
    verified: bool
    available: bool
    since: str | None
    #: who holds the target exclusively, if anybody
    lease: Lease | None
    #: why its device is unavailable (refused, timeout, auth...), when it is
    problem: str | None
    #: the ``"pdu:port"`` pdudaemon clients use for it (labpower-pdudaemon), if any
    pdudaemon: str | None
    #: its pdudaemon aliases
    aliases: tuple[str, ...]

    def __init__(
        self,
        name: str,
        device: str,
        channel: int,
        state: State,
        verified: bool,
        available: bool,
        since: str | None = None,
        lease: Lease | None = None,
        problem: str | None = None,
        pdudaemon: str | None = None,
        aliases: tuple[str, ...] = (),
    ) -> None:
        self._fill(
            name,
            device,
            channel,
            state,
            verified,
            available,
            since,
            lease,
            problem,
            pdudaemon,
            aliases,
        )

    @classmethod
    def from_wire(cls, obj: Any) -> Target:
        if not isinstance(obj, dict):
            raise RemoteProtocolError(f"Target must be an object, not {obj!r}")
        state = _field(obj, "state", str, "Target")
        if state not in _STATES:
            raise RemoteProtocolError(f"Target: unknown state {state!r}")
        since = obj.get("since")
        problem = obj.get("problem")
        pdudaemon, aliases = obj.get("pdudaemon"), obj.get("aliases")
        if aliases is not None and (
            not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases)
        ):
            raise RemoteProtocolError(f"Target: aliases must be a list of strings: {aliases!r}")
        return cls(
            name=_field(obj, "name", str, "Target"),
            device=_field(obj, "device", str, "Target"),
            channel=_field(obj, "channel", int, "Target"),
            state=state,
            verified=_field(obj, "verified", bool, "Target"),
            available=_field(obj, "available", bool, "Target"),
            since=since if isinstance(since, str) else None,
            lease=Lease.from_wire(obj.get("lease")),
            problem=problem if isinstance(problem, str) else None,
            pdudaemon=pdudaemon if isinstance(pdudaemon, str) else None,
            aliases=tuple(aliases or ()),
        )

    @property
    def is_on(self) -> bool:
        return self.state == "on"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "device": self.device,
            "channel": self.channel,
            "state": self.state,
            "verified": self.verified,
            "available": self.available,
            "since": self.since,
            "lease": None if self.lease is None else self.lease.to_dict(),
            "problem": self.problem,
            "pdudaemon": self.pdudaemon,
            "aliases": list(self.aliases),
        }


class Reading(Frozen):
    """One measurement of a target's supply."""

    __match_args__ = ("voltage", "current", "apparent_power")
    __slots__ = __match_args__
    voltage: float
    current: float
    apparent_power: float

    def __init__(self, voltage: float, current: float, apparent_power: float) -> None:
        self._fill(voltage, current, apparent_power)

    @classmethod
    def from_wire(cls, obj: Any) -> Reading:
        if not isinstance(obj, dict):
            raise RemoteProtocolError(f"Reading must be an object, not {obj!r}")
        num = (int, float)
        return cls(
            voltage=float(_field(obj, "voltage", num, "Reading")),
            current=float(_field(obj, "current", num, "Reading")),
            apparent_power=float(_field(obj, "apparent_power", num, "Reading")),
        )

    def to_dict(self) -> dict[str, float]:
        return {
            "voltage": self.voltage,
            "current": self.current,
            "apparent_power": self.apparent_power,
        }


class LogEntry(Frozen):
    """One entry of the daemon's log, numbered daemon-wide by ``seq``."""

    __match_args__ = ("time", "level", "message", "seq", "target", "device", "extra")
    __slots__ = __match_args__
    time: str
    level: str
    message: str
    seq: int
    target: str | None
    device: str | None
    extra: Mapping[str, Any] | None

    def __init__(
        self,
        time: str,
        level: str,
        message: str,
        seq: int,
        target: str | None = None,
        device: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self._fill(time, level, message, seq, target, device, extra)

    @classmethod
    def from_wire(cls, obj: Any) -> LogEntry:
        if not isinstance(obj, dict):
            raise RemoteProtocolError(f"LogEntry must be an object, not {obj!r}")
        known = {"time", "level", "message", "seq", "target", "device"}
        target, device = obj.get("target"), obj.get("device")
        extra = {k: v for k, v in obj.items() if k not in known}
        return cls(
            time=_field(obj, "time", str, "LogEntry"),
            level=_field(obj, "level", str, "LogEntry"),
            message=_field(obj, "message", str, "LogEntry"),
            seq=_field(obj, "seq", int, "LogEntry"),
            target=target if isinstance(target, str) else None,
            device=device if isinstance(device, str) else None,
            extra=extra or None,
        )

    @property
    def levelno(self) -> int:
        return LEVELS.get(self.level, 20)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = dict(self.extra or {})
        d.update(
            time=self.time,
            level=self.level,
            message=self.message,
            seq=self.seq,
            target=self.target,
            device=self.device,
        )
        return d
