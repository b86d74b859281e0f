"""labpower backends: the contract every relay board driver implements, and the drivers."""

from __future__ import annotations

from labpower.backends.base import Backend, Measurement
from labpower.backends.device import Device
from labpower.backends.errors import (
    BackendError,
    DeviceUnavailableError,
    HardwareTimeout,
    NotSupportedError,
    OperationError,
    OptionError,
)
from labpower.backends.options import NoOptions, parse_options

__all__ = [
    "Backend",
    "BackendError",
    "Device",
    "DeviceUnavailableError",
    "HardwareTimeout",
    "Measurement",
    "NoOptions",
    "NotSupportedError",
    "OperationError",
    "OptionError",
    "parse_options",
]
