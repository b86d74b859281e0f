"""Errors raised by backends. One root; hardware errors split unavailable / timeout / operation."""

from __future__ import annotations


class BackendError(Exception):
    """Root of every error a backend raises."""


class DeviceUnavailableError(BackendError):
    """The board is absent or cannot be opened (unplugged, no permission, wrong path)."""


class HardwareTimeout(BackendError, TimeoutError):
    """The board did not answer within its deadline."""

    def __init__(self, seconds: float, what: str = "hardware call") -> None:
        super().__init__(f"{what} took longer than {seconds:g} s")
        self.seconds = seconds


class OperationError(BackendError):
    """The board answered, but not as the protocol says it should."""


class NotSupportedError(BackendError):
    """The board cannot do this at all (e.g. measure current)."""

    def __init__(self, operation: str) -> None:
        super().__init__(f"operation not supported: {operation}")
        self.operation = operation


class OptionError(BackendError, ValueError):
    """A device option in the config is wrong. ``key`` is the option's name."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason
