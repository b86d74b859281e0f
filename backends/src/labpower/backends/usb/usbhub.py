"""Per-port VBUS switching on USB hubs.

A channel is a downstream port of the hub at ``hub = "1-2.4"`` (its USB location: bus, dash,
port path; stable as long as the cabling stays). Only hubs with per-port power switching
really cut VBUS; a ganged hub switches all ports together, which the read-back shows. A USB 3
hub is two hubs (a USB 2 and a SuperSpeed half on different buses): configure a device for
each half to cut both.

On Linux the port is switched through the kernel: its sysfs attribute
``/sys/bus/usb/devices/<hub>:1.0/<hub>-port<N>/disable`` (Linux 5.6 and later). Writing 1
disconnects the device, clears PORT_POWER and records the port as off in the hub driver, so
the driver keeps it off; reading it asks the hub (GetPortStatus) whether the port has power.
A ClearPortFeature(PORT_POWER) sent past the driver (through usbfs, as uhubctl does) does not
hold: the driver finds the device gone from a port it believes powered, takes it for a port
that lost power by accident and switches it back on (in the lab-host VM at its next resume of
the idle hub, and the device is back on the bus within a second, while a port switched
through ``disable`` stays off: tests/vm/test_labhost.py); and when it resets or
re-activates the hub it powers the ports its own record says are on (``hub_power_on``), which
``disable`` updates and a raw request does not. The udev rules give the ``disable``
attributes to group labpower; labpowerd.service needs its drop-in ``usbhub.conf`` to write
them (the unit makes /sys read-only).

Where the hub has no such attribute (another OS, an older kernel), the switch is a hub class
request through pyusb, as uhubctl does it: SetPortFeature / ClearPortFeature(PORT_POWER), the
state read back from GetPortStatus (bit 8 on a USB 2 hub, bit 9 on a USB 3 hub, bcdUSB >=
3.0). Those need no claimed interface: the hub driver stays bound. The hub is looked up by its
location on every call, so a hub replugged under a new devnum is found again.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from labpower.backends.base import Backend
from labpower.backends.errors import (
    BackendError,
    DeviceUnavailableError,
    HardwareTimeout,
    OperationError,
)
from labpower.backends.hid import _lib
from labpower.backends.hid._select import USB_PORT
from labpower.backends.usbmatch import UsbMatch

T = TypeVar("T")

HUB_CLASS = 9
PORT_POWER = 8
SET_FEATURE, CLEAR_FEATURE, GET_STATUS, GET_DESCRIPTOR = 3, 1, 0, 6
TO_PORT, FROM_PORT, FROM_HUB = 0x23, 0xA3, 0xA0
USB2_HUB_DESCRIPTOR, USB3_HUB_DESCRIPTOR = 0x29, 0x2A
USB2_POWER_BIT, USB3_POWER_BIT = 1 << 8, 1 << 9
_GONE = {errno.ENODEV, errno.ENOENT, errno.EIO, errno.ESHUTDOWN}


@dataclass(frozen=True, slots=True)
class UsbHubOptions:
    hub: str

    def __post_init__(self) -> None:
        if not USB_PORT.fullmatch(self.hub):
            raise ValueError(
                f'hub: must be a hub\'s USB location like "1-2.4" (bus-port.port,'
                f" as in /sys/bus/usb/devices and uhubctl -l), not {self.hub!r}"
            )

    @property
    def bus(self) -> int:
        return int(self.hub.partition("-")[0])

    @property
    def port_numbers(self) -> tuple[int, ...]:
        return tuple(int(p) for p in self.hub.partition("-")[2].split("."))


def is_usb3(dev: Any) -> bool:
    return int(dev.bcdUSB) >= 0x0300


def location(dev: Any) -> str | None:
    """``bus-port.port`` of a pyusb device; None for a root hub."""
    ports = tuple(dev.port_numbers or ())
    return f"{dev.bus}-{'.'.join(map(str, ports))}" if ports else None


def hub_descriptor(dev: Any, timeout_ms: int) -> tuple[int, int]:
    """(port count, logical power switching mode: 0 ganged, 1 per port, 2-3 none).

    :raises USBError:
    """
    kind = USB3_HUB_DESCRIPTOR if is_usb3(dev) else USB2_HUB_DESCRIPTOR
    desc = bytes(dev.ctrl_transfer(FROM_HUB, GET_DESCRIPTOR, kind << 8, 0, 64, timeout_ms))
    if len(desc) < 5 or desc[1] != kind:
        raise OperationError(f"hub descriptor not understood: {desc.hex(' ')}")
    return desc[2], desc[3] & 0x03


def port_switch(hub: str, port: int) -> Path:
    """The kernel's power switch of ``port`` of ``hub`` (its sysfs ``disable`` attribute)."""
    return (
        _lib.sys_root() / "bus" / "usb" / "devices" / f"{hub}:1.0" / f"{hub}-port{port}" / "disable"
    )


class UsbHubBackend(Backend):
    readback = True
    max_channels = 15  # a USB 3 hub has at most 15 ports
    #: any hub (class 09) but a root hub, told apart by where it is plugged (its location)
    usb = UsbMatch(
        "usb",
        "USB hub with per-port power switching",
        device_class=HUB_CLASS,
        identity="none",
        option="hub",
    )
    Options = UsbHubOptions

    def _ms(self) -> int:
        return max(1, int(self.timeout * 1000))

    async def with_hub(self, fn: Callable[[Any], T]) -> T:
        """Find the hub, run ``fn(device)`` in a worker thread, release it.

        :raises DeviceUnavailableError, HardwareTimeout, OperationError:
        """
        opts: UsbHubOptions = self.options

        def call() -> T:
            try:
                lib = _lib.pyusb()
            except ImportError as exc:
                raise DeviceUnavailableError(
                    f"pyusb is not installed ({exc}): install labpower-backends[usb]"
                ) from exc
            try:
                hubs = list(
                    lib.find(
                        find_all=True,
                        bDeviceClass=HUB_CLASS,
                        custom_match=lambda d: (
                            d.bus == opts.bus and tuple(d.port_numbers or ()) == opts.port_numbers
                        ),
                    )
                )
            except lib.NoBackendError as exc:
                raise DeviceUnavailableError(f"libusb is not available: {exc}") from exc
            if not hubs:
                raise DeviceUnavailableError(f"no USB hub at {opts.hub}")
            dev = hubs[0]
            try:
                return fn(dev)
            except BackendError:
                raise
            except lib.USBTimeoutError as exc:
                raise HardwareTimeout(self.timeout, f"hub {opts.hub}") from exc
            except lib.USBError as exc:
                if exc.errno == errno.EPIPE:
                    raise OperationError(f"hub {opts.hub} refused the request: {exc}") from exc
                if exc.errno in (errno.EACCES, errno.EPERM):
                    raise DeviceUnavailableError(
                        f"no permission for hub {opts.hub}: install labpower's udev rules "
                        "and join their group"
                    ) from exc
                if exc.errno in _GONE:
                    raise DeviceUnavailableError(f"hub {opts.hub} is gone: {exc}") from exc
                raise OperationError(f"hub {opts.hub}: {exc}") from exc
            finally:
                try:
                    lib.dispose(dev)
                except lib.USBError:
                    pass

        return await self.in_thread(call)

    def _in_sysfs(self) -> bool:
        """The kernel has a power switch for the configured ports (see the module's doc)."""
        return port_switch(self.options.hub, 1).exists()

    async def _sysfs(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` (a sysfs access) in a worker thread; its errors as the backend's.

        :raises DeviceUnavailableError, OperationError:
        """
        hub = self.options.hub

        def call() -> T:
            try:
                return fn()
            except PermissionError as exc:
                raise DeviceUnavailableError(
                    f"no permission for the port power switches of hub {hub} ({exc.filename}):"
                    " install labpower's udev rules and replug the hub or run udevadm trigger"
                ) from exc
            except (FileNotFoundError, NotADirectoryError) as exc:
                raise DeviceUnavailableError(f"hub {hub} is gone ({exc.filename})") from exc
            except OSError as exc:
                if exc.errno in _GONE:
                    raise DeviceUnavailableError(f"hub {hub} is gone: {exc}") from exc
                if exc.errno == errno.EROFS:
                    raise DeviceUnavailableError(
                        f"the port power switches of hub {hub} are read-only here "
                        f"({exc.filename}): labpowerd.service needs the shipped drop-in "
                        "labpowerd.service.d/usbhub.conf (ReadWritePaths=/sys/devices)"
                    ) from exc
                raise OperationError(f"hub {hub}: {exc}") from exc

        return await self.in_thread(call)

    def _sysfs_powered(self, channel: int) -> bool:
        value = port_switch(self.options.hub, channel).read_text().strip()
        if value not in ("0", "1"):
            raise OperationError(f"hub {self.options.hub} port {channel}: disable is {value!r}")
        return value == "0"

    async def open(self) -> None:
        """Check the hub is there and has the ports configured; switches nothing.

        :raises DeviceUnavailableError, OperationError:
        """
        if self._in_sysfs():

            def count() -> None:
                root = _lib.sys_root() / "bus" / "usb" / "devices" / self.options.hub
                ports = int((root / "maxchild").read_text())
                if self.channels > ports:
                    raise OperationError(
                        f"hub {self.options.hub} has {ports} ports, but the "
                        f"config says channels = {self.channels}"
                    )

            await self._sysfs(count)
            return

        def check(dev: Any) -> None:
            ports, mode = hub_descriptor(dev, self._ms())
            if self.channels > ports:
                raise OperationError(
                    f"hub {self.options.hub} has {ports} ports, but the "
                    f"config says channels = {self.channels}"
                )
            if mode != 1:
                self.log.warning(
                    "hub %s has %s: a port may not really lose power",
                    self.options.hub,
                    "ganged power switching" if mode == 0 else "no power switching",
                )

        await self.with_hub(check)

    async def set(self, channel: int, on: bool) -> None:
        if self._in_sysfs():
            path = port_switch(self.options.hub, channel)
            await self._sysfs(lambda: path.write_text("0" if on else "1"))
            return
        await self.with_hub(
            lambda dev: dev.ctrl_transfer(
                TO_PORT, SET_FEATURE if on else CLEAR_FEATURE, PORT_POWER, channel, None, self._ms()
            )
        )

    def _powered(self, dev: Any, channel: int) -> bool:
        status = bytes(dev.ctrl_transfer(FROM_PORT, GET_STATUS, 0, channel, 4, self._ms()))
        if len(status) < 2:
            raise OperationError(f"port status too short: {status.hex(' ') or 'empty'}")
        word = status[0] | status[1] << 8
        return bool(word & (USB3_POWER_BIT if is_usb3(dev) else USB2_POWER_BIT))

    async def get(self, channel: int) -> bool | None:
        if self._in_sysfs():
            return await self._sysfs(lambda: self._sysfs_powered(channel))
        return await self.with_hub(lambda dev: self._powered(dev, channel))

    async def get_all(self) -> dict[int, bool | None]:
        if self._in_sysfs():
            return await self._sysfs(
                lambda: {ch: self._sysfs_powered(ch) for ch in range(1, self.channels + 1)}
            )
        return await self.with_hub(
            lambda dev: {ch: self._powered(dev, ch) for ch in range(1, self.channels + 1)}
        )
