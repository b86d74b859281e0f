"""labpower client: switch lab power through labpowerd.

from labpower.client import Client
with Client() as lab:
    lab.target("dut1").cycle()
"""

from __future__ import annotations

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
    "Target",
    "TargetHandle",
    "TargetNotFound",
    "Timeout",
    "VarlinkError",
]
