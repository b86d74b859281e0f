"""The error type every layer of the daemon raises to answer a call with a varlink error."""

from __future__ import annotations

from typing import Any

from labpower.daemon.interface import POWER


class ApiError(Exception):
    """A varlink error reply: qualified ``name`` (unqualified names are io.labpower.Power's)
    and its ``parameters``."""

    def __init__(self, name: str, **parameters: Any) -> None:
        super().__init__(f"{name} {parameters}")
        self.name = name if "." in name else f"{POWER}.{name}"
        self.parameters = parameters
