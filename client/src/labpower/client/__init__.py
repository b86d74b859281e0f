"""labpower client: switch lab power through labpowerd.

from labpower.client import Client
with Client() as lab:
    lab.target("dut1").cycle()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from labpower.client.aio import AsyncClient, AsyncTargetHandle

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


def __getattr__(name: str) -> Any:
    # The async client (and anyio with it) is imported on first use only: a blocking script
    # and the ``labpower`` command start without it.
    if name in ("AsyncClient", "AsyncTargetHandle"):
        from labpower.client import aio

        return getattr(aio, name)
    raise AttributeError(f"module 'labpower.client' has no attribute {name!r}")
