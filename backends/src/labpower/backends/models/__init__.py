"""One model of each board, written from docs/hardware.md and from nothing in the backends.

A model is the board's firmware without I/O: the bytes it takes in, what it answers, its
relays, and every switching command it received. The test doubles put it behind a transport
(the simulators on ptys and /dev/uhid, :mod:`labpower.backends.sim`; the fakes at the
hidapi boundary, :mod:`labpower.backends.fakes`), so a board's protocol is written once. A
model never imports a backend's encoder or parser, so that a backend that gets the protocol
wrong fails against it.
"""

from __future__ import annotations

from labpower.backends.models.base import BoardModel, Switch
from labpower.backends.models.serial import (
    DIALECTS,
    DevantechModel,
    KmtronicModel,
    LcusModel,
    NumatoModel,
    SimDialect,
)
from labpower.backends.models.usb import (
    Stall,
    UsbHubModel,
    UsbRelayModel,
    YkushModel,
    lcus_frame,
    lcus_state_frame,
)

__all__ = [
    "DIALECTS",
    "BoardModel",
    "DevantechModel",
    "KmtronicModel",
    "LcusModel",
    "NumatoModel",
    "SimDialect",
    "Stall",
    "Switch",
    "UsbHubModel",
    "UsbRelayModel",
    "YkushModel",
    "lcus_frame",
    "lcus_state_frame",
]
