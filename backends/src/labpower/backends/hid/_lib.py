"""The one place the HID, USB and discovery code get their hardware libraries from.

Each function returns the real library, unless a test installed a fake USB world in the
process (see :mod:`labpower.backends.fakes`: ``fakes.install(bus)``, or the testing entry
point ``python -m labpower.backends.fakes BUS_FILE MODULE`` for a child process); then it
returns the fake. Nothing else (no environment variable) switches it: a program that never
imported the fakes package gets the real libraries.

The libraries are untyped (cython-hidapi, pyusb), so they are handed out as ``Any``.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labpower.backends.fakes.bus import Bus


def fake_bus() -> Bus | None:
    """The fake bus installed in this process, or None in real life."""
    if "labpower.backends.fakes" not in sys.modules:
        return None
    # a real import, not a sys.modules lookup: it waits while another thread imports it
    import labpower.backends.fakes as mod

    bus: Bus | None = mod.current()
    return bus


def hidapi() -> Any:
    """The hidapi module.

    cython-hidapi's wheel has two: ``hidraw`` (hidapi's hidraw backend) and ``hid`` (its
    libusb backend on Linux, which detaches usbhid and claims the interface, so hidraw nodes
    vanish and other programs lose the board). ``hidraw`` is preferred; ``hid`` is the
    fallback where only it exists (it is the hidraw backend in some distribution builds).

    :raises ImportError: hidapi is not installed.
    """
    bus = fake_bus()
    if bus is not None:
        from labpower.backends.fakes.hidapi import FakeHidapi

        return FakeHidapi(bus)
    try:
        import hidraw  # type: ignore[import-not-found]  # untyped C extension, as hid

        return hidraw
    except ImportError:
        import hid

        return hid


def pyusb() -> Any:
    """pyusb as a namespace: ``find`` (usb.core.find), ``dispose``
    (usb.util.dispose_resources), ``USBError``, ``USBTimeoutError``, ``NoBackendError``.

    :raises ImportError: pyusb is not installed.
    """
    bus = fake_bus()
    if bus is not None:
        from labpower.backends.fakes.pyusb import FakePyusb

        return FakePyusb(bus)
    import usb.core
    import usb.util

    return types.SimpleNamespace(
        find=usb.core.find,
        dispose=usb.util.dispose_resources,
        USBError=usb.core.USBError,
        USBTimeoutError=usb.core.USBTimeoutError,
        NoBackendError=usb.core.NoBackendError,
    )


def comports() -> list[Any]:
    """pyserial's ``list_ports.comports()``. :raises ImportError: pyserial is missing."""
    bus = fake_bus()
    if bus is not None:
        from labpower.backends.fakes import comports as fake_comports

        return fake_comports(bus)
    from serial.tools import list_ports

    return list(list_ports.comports())


def sys_root() -> Path:
    """Where sysfs is (a fake tree under a fake bus)."""
    bus = fake_bus()
    return Path("/sys") if bus is None else bus.root / "sys"


def dev_root() -> Path:
    """Where /dev is, for its udev links (a fake tree under a fake bus)."""
    bus = fake_bus()
    return Path("/dev") if bus is None else bus.root / "dev"
