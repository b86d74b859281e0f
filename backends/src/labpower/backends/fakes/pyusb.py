"""A stand-in for pyusb's ``usb.core.find`` and device ``ctrl_transfer`` over a fake bus.

Devices found are hubs with pyusb's attributes (``bus``, ``address``, ``port_numbers``,
``idVendor``, ``idProduct``, ``bcdUSB``, ``bDeviceClass``, ``product``...). Errors are pyusb's
own exception classes with the errno libusb would give: a STALL is EPIPE, a vanished device
ENODEV, a request that gets no answer within its timeout ``USBTimeoutError``.
"""

from __future__ import annotations

import array
import errno
import time
from collections.abc import Callable, Iterator
from typing import Any

from labpower.backends.fakes import boards
from labpower.backends.fakes.bus import Bus, World
from labpower.backends.fakes.hidapi import _log
from labpower.backends.models import Stall
from usb.core import NoBackendError, USBError, USBTimeoutError

__all__ = ["FakeHubDevice", "FakePyusb", "NoBackendError", "USBError", "USBTimeoutError"]


class FakePyusb:
    """Module-shaped: ``find``, ``dispose`` and pyusb's exception classes."""

    USBError = USBError
    USBTimeoutError = USBTimeoutError
    NoBackendError = NoBackendError

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    def find(
        self,
        find_all: bool = False,
        backend: Any = None,
        custom_match: Callable[[Any], bool] | None = None,
        **args: Any,
    ) -> Any:
        with self.bus.transaction() as world:
            devices = [FakeHubDevice(self.bus, h) for h in world["hubs"] if h["plugged"]]
        found = [
            d
            for d in devices
            if all(getattr(d, k) == v for k, v in args.items())
            and (custom_match is None or custom_match(d))
        ]
        if find_all:
            return iter(found)
        return found[0] if found else None

    def dispose(self, device: Any) -> None:
        """``usb.util.dispose_resources``: nothing is held, so nothing to release."""


class FakeHubDevice:
    """What ``usb.core.find`` returns for one hub."""

    bDeviceClass = 9

    def __init__(self, bus: Bus, hub: dict[str, Any]) -> None:
        self._bus = bus
        self._key: str = hub["key"]
        self._generation: int = hub["generation"]
        self.bus: int = hub["bus"]
        self.address: int = hub["address"]
        self.port_numbers: tuple[int, ...] = tuple(hub["port_numbers"])
        self.port_number: int = self.port_numbers[-1]
        self.idVendor: int = hub["vid"]
        self.idProduct: int = hub["pid"]
        self.bcdUSB: int = 0x0320 if hub["usb3"] else 0x0210
        self.bDeviceProtocol: int = 3 if hub["usb3"] else 1
        self.product: str = hub["product"]
        self.manufacturer: str = hub["manufacturer"]
        self.serial_number: str | None = None

    def __iter__(self) -> Iterator[Any]:
        return iter(())

    def _hub(self, world: World) -> dict[str, Any]:
        for h in world["hubs"]:
            if h["key"] == self._key and h["plugged"] and h["generation"] == self._generation:
                hub: dict[str, Any] = h
                return hub
        raise USBError("No such device (it may have been disconnected)", -4, errno.ENODEV)

    def ctrl_transfer(
        self,
        bmRequestType: int,
        bRequest: int,
        wValue: int = 0,
        wIndex: int = 0,
        data_or_wLength: Any = None,
        timeout: int | None = None,
    ) -> Any:
        deadline = None if not timeout else time.monotonic() + timeout / 1000
        if not self._bus.wait_released("hubs", self._key, deadline):
            raise USBTimeoutError("Operation timed out", -7, errno.ETIMEDOUT)
        length = data_or_wLength if isinstance(data_or_wLength, int) else 0
        with self._bus.transaction() as world:
            hub = self._hub(world)
            _log(world, hub, "ctrl_transfer", [bmRequestType, bRequest, wValue, wIndex, length])
            try:
                reply = boards.hub_control(hub, bmRequestType, bRequest, wValue, wIndex, length)
            except Stall:
                raise USBError("Pipe error", -9, errno.EPIPE) from None
            if reply and hub.get("garble"):
                reply = reply[:1]  # a hub answering nonsense: too short
        if bmRequestType & 0x80:
            return array.array("B", reply or [])
        return 0
