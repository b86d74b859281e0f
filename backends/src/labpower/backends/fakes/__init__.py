"""Test-only fakes of the USB world, at the boundary of the hardware libraries.

Nothing in labpower imports this package unless a test asks for it. The HID, USB and
discovery code reach their libraries through one indirection each
(:func:`labpower.backends.hid._lib.hidapi`, :func:`labpower.backends.hid._lib.pyusb`,
:func:`labpower.backends.hid._lib.comports`, :func:`labpower.backends.hid._lib.sys_root`),
which returns the real library unless a fake bus is active:

- in the test's own process: ``with fakes.install(MemoryBus(tmp_path)) as bus: ...``;
- in a child process (the real daemon, ``labpower-discover``): set the environment variable
  ``LABPOWER_FAKE_USB`` to the path of a :class:`FileBus` state file the test created with
  ``FileBus(path, create=True)``. The test keeps the same ``FileBus`` to plug, unplug, replug,
  hang and read the log of every call each board received.

The fakes model the boards byte for byte (:mod:`.boards`): report numbers and the offset they
add through hidapi, IDs, state masks, ID persistence, YKUSH replies, hub port status bits.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from labpower.backends.fakes import boards
from labpower.backends.fakes.bus import Bus, FileBus, MemoryBus

__all__ = ["ENV", "Bus", "FileBus", "MemoryBus", "boards", "comports", "current", "install"]

#: Environment variable naming a FileBus state file; makes every HID/USB/serial lookup fake.
ENV = "LABPOWER_FAKE_USB"

_installed: Bus | None = None
_from_env: tuple[str, Bus] | None = None


def current() -> Bus | None:
    """The active fake bus: one installed in this process, else the one ``$LABPOWER_FAKE_USB``
    names, else None (use the real libraries)."""
    global _from_env
    if _installed is not None:
        return _installed
    path = os.environ.get(ENV)
    if not path:
        return None
    if _from_env is None or _from_env[0] != path:
        _from_env = (path, FileBus(path))
    return _from_env[1]


@contextmanager
def install(bus: Bus) -> Iterator[Bus]:
    """Make ``bus`` the fake world of this process for the length of the block."""
    global _installed
    before, _installed = _installed, bus
    try:
        yield bus
    finally:
        _installed = before


def comports(bus: Bus) -> list[Any]:
    """``serial.tools.list_ports.comports()`` for the serial ports plugged into ``bus``."""
    from serial.tools.list_ports_common import ListPortInfo

    ports = []
    with bus.transaction() as world:
        for p in world["serial"]:
            if not p["plugged"]:
                continue
            info = ListPortInfo(p["device"], skip_link_detection=True)
            info.vid, info.pid = p["vid"], p["pid"]
            info.serial_number = p["serial_number"]
            info.product, info.manufacturer = p["product"], p["manufacturer"]
            info.location = p["location"]
            info.description = p["product"] or os.path.basename(p["device"])
            info.hwid = info.usb_info()
            ports.append(info)
    return ports
