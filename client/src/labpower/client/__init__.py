"""labpower client: switch lab power through labpowerd.

from labpower.client import Client
with Client() as lab:
    lab.target("dut1").cycle()
"""

from __future__ import annotations

# Every name is imported from its module on first use (see __getattr__): a script starts
# with what it uses, and the ``labpower`` command (labpower.client.cli, which imports this
# package first) with what its command needs (issue #18). The type checker reads this block.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from labpower.client.aio import AsyncClient, AsyncTargetHandle
    from labpower.client.errors import (
        DaemonUnreachable,
        DeviceError,
        DeviceUnavailable,
        ExpectedMore,
        InterfaceNotFound,
        InvalidParameter,
        LabpowerError,
        Locked,
        MethodNotFound,
        NotSupported,
        PermissionDenied,
        StateMismatch,
        StateNotSaved,
        TargetNotFound,
        Timeout,
        VarlinkError,
    )
    from labpower.client.sync import Client, LogStream, TargetHandle
    from labpower.client.types import Lease, LogEntry, Reading, Target

__all__ = [
    "AsyncClient",
    "AsyncTargetHandle",
    "Client",
    "DaemonUnreachable",
    "DeviceError",
    "DeviceUnavailable",
    "ExpectedMore",
    "InterfaceNotFound",
    "InvalidParameter",
    "LabpowerError",
    "Lease",
    "Locked",
    "LogEntry",
    "LogStream",
    "MethodNotFound",
    "NotSupported",
    "PermissionDenied",
    "Reading",
    "StateMismatch",
    "StateNotSaved",
    "Target",
    "TargetHandle",
    "TargetNotFound",
    "Timeout",
    "VarlinkError",
]

#: the module of each name above
_MODULES = {
    **dict.fromkeys(("AsyncClient", "AsyncTargetHandle"), "aio"),
    **dict.fromkeys(("Client", "LogStream", "TargetHandle"), "sync"),
    **dict.fromkeys(("Lease", "LogEntry", "Reading", "Target"), "types"),
}


def __getattr__(name: str) -> object:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = __import__(f"{__name__}.{_MODULES.get(name, 'errors')}", fromlist=[name])
    value = getattr(module, name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
