"""What a backend declares about its boards on the USB bus, for discovery and for udev.

A backend sets :attr:`labpower.backends.base.Backend.usb` to one :class:`UsbMatch`: the kernel
subsystem its boards appear in (``tty``, ``hidraw``, ``usb``), their USB IDs, the interface
that carries them, and what tells one board from another (a USB serial number, an ID kept in
the board, or only the USB port it is plugged into). ``labpower-discover``
(:mod:`labpower.backends.discover`) and the udev rules (:mod:`labpower.backends.udev_rules`)
are both made from these declarations, so a board is described in one place only.

Some boards have no USB identity of their own: they are a generic USB serial chip (:class:`Chip`:
CH340, FT232R) with a relay board or an RS-485 bus behind it. Such a chip is *shared*: several
backends list it, none claims it. Discovery reports it as "a CH340 port that may be lcus,
kmtronic or modbus", the udev rules give it to group labpower once (under the chip's name), and
the user's config decides which backend drives the port.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: The kernel subsystem a board's node appears in.
Subsystem = Literal["tty", "hidraw", "usb"]
#: Where a board's identity comes from: its USB serial number (``usb``), an ID kept in the
#: board and read over its protocol (``board``), or nothing (``none``: the board is told apart
#: only by the USB port it is plugged into).
Identity = Literal["usb", "board", "none"]


@dataclass(frozen=True, slots=True)
class UsbId:
    """A USB vendor ID and product ID; ``product`` None means any product of the vendor."""

    vendor: int
    product: int | None = None

    def __post_init__(self) -> None:
        for what, value in (("vendor", self.vendor), ("product", self.product)):
            if value is not None and not 0 <= value <= 0xFFFF:
                raise ValueError(f"USB {what} ID {value:#x} is not 16 bits")

    def matches(self, vendor: int | None, product: int | None) -> bool:
        return vendor == self.vendor and self.product in (None, product)

    def __str__(self) -> str:
        return f"{self.vendor:04x}:{'*' if self.product is None else f'{self.product:04x}'}"


@dataclass(frozen=True, slots=True)
class Chip:
    """A generic USB serial chip that boards of several kinds are built around. Its USB IDs say
    what the chip is, not what is behind it, so no backend claims it alone."""

    #: Its name, as on the chip (``CH340``); lowercased, it names the udev family and links.
    name: str
    ids: tuple[UsbId, ...]
    #: The chip has a USB serial number (an FT232R has, a CH340 has none).
    identity: Identity
    #: The USB interface of the serial port (``bInterfaceNumber``).
    interface: int = 0

    @property
    def family(self) -> str:
        return self.name.lower()


#: WCH CH340/CH341 in serial mode (ch341 driver, /dev/ttyUSB*): no USB serial number
#: (docs/hardware.md, LCUS).
CH340 = Chip("CH340", (UsbId(0x1A86, 0x7523),), identity="none")
#: FTDI FT232R (ftdi_sio, /dev/ttyUSB*): a USB serial number programmed at the factory.
FT232R = Chip("FT232R", (UsbId(0x0403, 0x6001),), identity="usb")


@dataclass(frozen=True, slots=True)
class UsbMatch:
    """One backend's boards as the USB bus and udev see them."""

    subsystem: Subsystem
    #: What the board is, for people (``Numato Lab relay module``).
    description: str
    #: The board's own USB IDs (empty when it is only ever behind :attr:`chips`).
    ids: tuple[UsbId, ...] = ()
    #: Shared serial chips the board may sit behind (see :class:`Chip`).
    chips: tuple[Chip, ...] = ()
    #: What tells one board of this kind from another, for the boards with their own IDs.
    identity: Identity = "none"
    #: The USB interface (``bInterfaceNumber``) that carries the board, where that matters:
    #: a tty of a multi-interface device. None: any.
    interface: int | None = None
    #: A part of the USB product string that only this kind of board has (``KMTronic``); for
    #: HID boards on a shared vendor ID (V-USB's 16c0:05df), the start of the product string.
    product: str = ""
    #: ``usb`` subsystem only: the USB device class (``9``: hubs), for boards matched by
    #: class instead of IDs.
    device_class: int | None = None
    #: The config option that points a device at the board (``port``, ``id``, ``hub``...).
    option: str = "port"

    def __post_init__(self) -> None:
        if not self.description:
            raise ValueError("UsbMatch: description must not be empty")
        if not (self.ids or self.chips or self.device_class is not None):
            raise ValueError(f"UsbMatch {self.description!r}: give ids, chips or device_class")
        if self.chips and self.subsystem != "tty":
            raise ValueError(f"UsbMatch {self.description!r}: shared chips are serial (tty)")
        if self.device_class is not None and self.subsystem != "usb":
            raise ValueError(f"UsbMatch {self.description!r}: device_class is for usb")
