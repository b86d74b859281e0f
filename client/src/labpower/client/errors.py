"""Exceptions of the labpower client: one class per varlink error, all under LabpowerError."""

from __future__ import annotations

# typing is not imported at run time (see frozen.py); the checker reads this block as true
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, ClassVar

INTERFACE = "io.labpower.Power"

__all__ = [
    "DaemonUnreachable",
    "DeviceError",
    "DeviceUnavailable",
    "ExpectedMore",
    "InterfaceNotFound",
    "InvalidParameter",
    "LabpowerError",
    "LocalProtocolError",
    "Locked",
    "MethodNotFound",
    "MethodNotImplemented",
    "NotSupported",
    "PermissionDenied",
    "ProtocolError",
    "RemoteProtocolError",
    "StateMismatch",
    "StateNotSaved",
    "TargetNotFound",
    "Timeout",
    "TooManyStreams",
    "VarlinkError",
    "error_from_reply",
]


class LabpowerError(Exception):
    """Root of every error the labpower client raises."""


class ProtocolError(LabpowerError):
    """A varlink message, or the order of messages, broke the protocol."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something that is not valid varlink: the connection is closed (a client
    reconnects on its next call). ``data`` holds the start of what came in, when known."""

    def __init__(self, reason: str, data: bytes = b"") -> None:
        super().__init__(reason)
        self.reason = reason
        self.data = data


class LocalProtocolError(ProtocolError):
    """This side tried to send something that is not valid varlink, or a call that the
    connection's state does not allow (nothing was sent)."""


class DaemonUnreachable(LabpowerError, ConnectionError):
    """No daemon answers on the socket, or it went away mid-call."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"labpowerd not reachable at {path}: {reason}")
        self.path = path
        self.reason = reason


class VarlinkError(LabpowerError):
    """An error reply from the daemon. Subclasses exist for every error labpower defines;
    an unknown error name arrives as this class, with ``name`` and ``parameters``."""

    name: ClassVar[str] = ""

    def __init__(self, parameters: Mapping[str, Any] | None = None, name: str | None = None):
        self.parameters: dict[str, Any] = dict(parameters or {})
        if name is not None:
            self.name = name  # type: ignore[misc]  # instance override for unknown names
        super().__init__(self._describe())

    def _describe(self) -> str:
        details = ", ".join(f"{k}={v!r}" for k, v in self.parameters.items())
        return f"{self.name}({details})" if details else self.name


class TargetNotFound(VarlinkError):
    name = f"{INTERFACE}.TargetNotFound"

    def _describe(self) -> str:
        return f"no target named {self.parameters.get('target')!r}"


class DeviceUnavailable(VarlinkError):
    name = f"{INTERFACE}.DeviceUnavailable"

    def _describe(self) -> str:
        p = self.parameters
        return f"device {p.get('device')!r} unavailable: {p.get('reason')}"


class Timeout(VarlinkError, TimeoutError):
    name = f"{INTERFACE}.Timeout"

    def _describe(self) -> str:
        p = self.parameters
        return f"target {p.get('target')!r}: no answer from the board within {p.get('seconds')} s"


class NotSupported(VarlinkError):
    name = f"{INTERFACE}.NotSupported"

    def _describe(self) -> str:
        p = self.parameters
        return f"target {p.get('target')!r} does not support {p.get('operation')}"


class StateMismatch(VarlinkError):
    name = f"{INTERFACE}.StateMismatch"

    def _describe(self) -> str:
        p = self.parameters
        return (
            f"target {p.get('target')!r}: board reports {p.get('actual')!r}"
            f" after switching to {p.get('expected')!r}"
        )


class DeviceError(VarlinkError):
    """The board answered, but not as its protocol says it should."""

    name = f"{INTERFACE}.DeviceError"

    def _describe(self) -> str:
        p = self.parameters
        return f"device {p.get('device')!r} failed: {p.get('reason')}"


class Locked(VarlinkError):
    """Somebody else holds the target's lease; ``holder`` says who."""

    name = f"{INTERFACE}.Locked"

    def _describe(self) -> str:
        h = self.parameters.get("holder") or {}
        who = f"uid {h.get('uid')} pid {h.get('pid')}"
        if h.get("name"):
            who = f"{h['name']} ({who})"
        return f"target {self.parameters.get('target')!r} is leased by {who}"


class TooManyStreams(VarlinkError):
    """The caller's user has the most streams (Read with "more", Logs) open it may."""

    name = f"{INTERFACE}.TooManyStreams"

    def _describe(self) -> str:
        return f"too many streams open by this user (limit {self.parameters.get('limit')})"


class StateNotSaved(VarlinkError):
    """The target restores its state at daemon start, and the daemon could not save the new
    state before switching (read-only or full state directory): nothing was switched."""

    name = f"{INTERFACE}.StateNotSaved"

    def _describe(self) -> str:
        p = self.parameters
        return (
            f"target {p.get('target')!r} not switched: its state cannot be saved: {p.get('reason')}"
        )


class InterfaceNotFound(VarlinkError):
    name = "org.varlink.service.InterfaceNotFound"


class MethodNotFound(VarlinkError):
    name = "org.varlink.service.MethodNotFound"


class MethodNotImplemented(VarlinkError):
    name = "org.varlink.service.MethodNotImplemented"


class InvalidParameter(VarlinkError):
    name = "org.varlink.service.InvalidParameter"


class PermissionDenied(VarlinkError):
    name = "org.varlink.service.PermissionDenied"


class ExpectedMore(VarlinkError):
    name = "org.varlink.service.ExpectedMore"


_BY_NAME: dict[str, type[VarlinkError]] = {
    cls.name: cls
    for cls in (
        TargetNotFound,
        DeviceUnavailable,
        Timeout,
        NotSupported,
        StateMismatch,
        DeviceError,
        Locked,
        TooManyStreams,
        StateNotSaved,
        InterfaceNotFound,
        MethodNotFound,
        MethodNotImplemented,
        InvalidParameter,
        PermissionDenied,
        ExpectedMore,
    )
}


def error_from_reply(name: str, parameters: Mapping[str, Any]) -> VarlinkError:
    """The exception for a varlink error reply."""
    cls = _BY_NAME.get(name)
    if cls is None:
        return VarlinkError(parameters, name=name)
    return cls(parameters)
