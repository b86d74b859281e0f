"""Test-only fakes of the USB world, at the boundary of the hardware libraries.

Nothing in labpower imports this package unless a test asks for it. The HID, USB and
discovery code reach their libraries through one indirection each
(:func:`labpower.backends.hid._lib.hidapi`, :func:`labpower.backends.hid._lib.pyusb`,
:func:`labpower.backends.hid._lib.comports`, :func:`labpower.backends.hid._lib.sys_root`),
which returns the real library unless a fake bus is active:

- in the test's own process: ``with fakes.install(MemoryBus(tmp_path)) as bus: ...``;
- in a child process (the real daemon, ``labpower-discover``): start it through this
  package's entry point, ``python -m labpower.backends.fakes BUS_FILE MODULE [ARGS...]``
  (:func:`launcher` gives those words), which installs the :class:`FileBus` at BUS_FILE (made
  by the test with ``FileBus(path, create=True)``) and runs MODULE as ``python -m`` would.
  The test keeps the same ``FileBus`` to plug, unplug, replug, hang and read the log of
  every call each board received.

Nothing else switches the fakes on: no environment variable, no flag of the programs.

The fakes play the boards byte for byte: the boards' own behaviour comes from their models
(:mod:`labpower.backends.models`, shared with the simulators), and :mod:`.boards` adds what
the host side sees: report numbers and the offset they add through hidapi, strings, where a
board is plugged in, and every switching command it received (``board["switches"]``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from labpower.backends.fakes import boards
from labpower.backends.fakes.bus import Bus, FileBus, MemoryBus

__all__ = [
    "Bus",
    "FileBus",
    "MemoryBus",
    "boards",
    "comports",
    "current",
    "install",
    "launcher",
]

_installed: Bus | None = None


def current() -> Bus | None:
    """The fake bus installed in this process, else None (use the real libraries)."""
    return _installed


def launcher(bus_file: str | os.PathLike[str]) -> tuple[str, ...]:
    """The interpreter arguments that run a module (the words after them: the module's name
    and its arguments) with the :class:`FileBus` at ``bus_file`` installed, e.g.
    ``[sys.executable, *launcher(path), "labpower.daemon", "--config", ...]``."""
    return ("-m", "labpower.backends.fakes", os.fspath(bus_file))


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
