"""Finding one HID board among those plugged in: enumeration, match keys, selection.

A board is picked by what stays true about it: its own ID or USB serial, its hidraw node
(``/dev/hidraw3`` or a udev link to it), or the USB port it is plugged into (``1-2.4``, the
name sysfs gives it, stable across reboots as long as the cabling stays). Every key given must
match. Two boards matching is an error that names both and how to tell them apart; one is
never picked silently.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from labpower.backends.errors import DeviceUnavailableError, OptionError
from labpower.backends.hid import _lib
from labpower.backends.usbmatch import Identity, UsbId, UsbMatch

#: A USB device's name in sysfs: bus, dash, port path (``1-2.4``).
USB_PORT = re.compile(r"[0-9]+-[0-9]+(\.[0-9]+){0,6}")
_LIBUSB_PATH = re.compile(r"([0-9a-f]{4}):([0-9a-f]{4}):([0-9a-f]{2})")


class AmbiguousBoardError(DeviceUnavailableError):
    """More than one board answers to the selector; none is used."""


@dataclass(frozen=True, slots=True)
class BoardKind:
    """What identifies one family of HID boards."""

    name: str
    vendor_id: int
    product_ids: frozenset[int]
    #: product string prefix, for VID:PIDs shared with other devices (V-USB's 16c0:05df)
    product_prefix: str = ""
    #: option name of the board's own identity ("id", "serial"), "" when it has none
    id_option: str = ""

    def usb_match(self, description: str, identity: Identity) -> UsbMatch:
        """The declaration of this family for discovery and udev (see
        :mod:`labpower.backends.usbmatch`)."""
        return UsbMatch(
            "hidraw",
            description,
            ids=tuple(UsbId(self.vendor_id, p) for p in sorted(self.product_ids)),
            identity=identity,
            product=self.product_prefix,
            option=self.id_option or "usb_port",
        )


@dataclass(frozen=True, slots=True)
class Selector:
    """The match keys a device's options give; None means "any"."""

    id: str | None = None
    path: str | None = None
    usb_port: str | None = None

    def describe(self, id_option: str = "id") -> str:
        parts = [
            f"{id_option} {self.id!r}" if self.id is not None else "",
            f"path {self.path}" if self.path else "",
            f"USB port {self.usb_port}" if self.usb_port else "",
        ]
        return ", ".join(p for p in parts if p) or "any"


@dataclass(frozen=True, slots=True)
class Candidate:
    """One board present, with its match keys."""

    path: str
    raw_path: bytes
    vendor_id: int
    product_id: int
    product: str
    manufacturer: str
    serial: str
    usb_port: str | None
    #: the board's own ID (read from it) or USB serial; None when it has none or is unreadable
    id: str | None

    def describe(self, id_option: str = "id") -> str:
        extra = f", {id_option} {self.id!r}" if id_option and self.id is not None else ""
        return f"{self.path} (USB port {self.usb_port or 'unknown'}{extra})"


def check_selector(kind: BoardKind, sel: Selector) -> None:
    """Validate a selector's values at config load. :raises OptionError:"""
    if sel.path is not None and not (sel.path.startswith("/dev/") and len(sel.path) > 5):
        raise OptionError("path", f"must be a device node under /dev/, not {sel.path!r}")
    if sel.usb_port is not None and not USB_PORT.fullmatch(sel.usb_port):
        raise OptionError(
            "usb_port",
            f'must be a USB port path like "1-2.4" (bus-port.port'
            f" as in /sys/bus/usb/devices), not {sel.usb_port!r}",
        )
    if sel.id is None and sel.path is None and sel.usb_port is None:
        keys = [k for k in (kind.id_option, "path", "usb_port") if k]
        raise OptionError(
            keys[0],
            f"required: give {', '.join(keys[:-1])} or {keys[-1]} to "
            "pick the board (labpower-discover lists them)",
        )


def usb_port_of(path: str) -> str | None:
    """The USB port (``1-2.4``) a hidraw node (or a libusb-style hidapi path) belongs to."""
    name = os.path.basename(path)
    sys_root = _lib.sys_root()
    if name.startswith("hidraw"):
        real = os.path.realpath(sys_root / "class" / "hidraw" / name / "device")
        for part in reversed(real.split(os.sep)):
            if USB_PORT.fullmatch(part):
                return part
        return None
    m = _LIBUSB_PATH.fullmatch(path)
    if m is None:
        return None
    busnum, devnum = int(m[1], 16), int(m[2], 16)
    devices = sys_root / "bus" / "usb" / "devices"
    try:
        entries = sorted(os.listdir(devices))
    except OSError:
        return None
    for entry in entries:
        if not USB_PORT.fullmatch(entry):
            continue
        try:
            if (
                int((devices / entry / "busnum").read_text()) == busnum
                and int((devices / entry / "devnum").read_text()) == devnum
            ):
                return entry
        except (OSError, ValueError):
            continue
    return None


def candidates(
    lib: Any, kind: BoardKind, read_id: Callable[[Any], str] | None = None
) -> list[Candidate]:
    """Every board of ``kind`` present. ``read_id(device)`` reads a board's own ID from an
    opened hidapi device (only reading, never switching); otherwise the USB serial is the ID.

    :raises DeviceUnavailableError: hidapi cannot enumerate.
    """
    try:
        infos = lib.enumerate(kind.vendor_id, 0)
    except OSError as exc:
        raise DeviceUnavailableError(f"cannot enumerate HID devices: {exc}") from exc
    found: dict[bytes, Candidate] = {}
    for info in infos:
        raw = info["path"] if isinstance(info["path"], bytes) else str(info["path"]).encode()
        product = info.get("product_string") or ""
        if (
            info["product_id"] not in kind.product_ids
            or raw in found
            or not product.startswith(kind.product_prefix)
        ):
            continue
        path = raw.decode(errors="replace")
        serial = info.get("serial_number") or ""
        ident: str | None = serial or None
        if read_id is not None:
            try:
                with opened(lib, path, raw) as dev:
                    ident = read_id(dev)
            except (DeviceUnavailableError, OSError, ValueError):
                ident = None  # not readable (permissions?): it can only match by path/port
        found[raw] = Candidate(
            path,
            raw,
            info["vendor_id"],
            info["product_id"],
            product,
            info.get("manufacturer_string") or "",
            serial,
            usb_port_of(path),
            ident,
        )
    return list(found.values())


def select(
    lib: Any, kind: BoardKind, sel: Selector, read_id: Callable[[Any], str] | None = None
) -> Candidate:
    """The one board of ``kind`` that matches every key of ``sel``.

    :raises DeviceUnavailableError: no such board is present.
    :raises AmbiguousBoardError: more than one is; the message names them and how to pick one.
    """
    present = candidates(lib, kind, read_id if sel.id is not None else None)
    want_path = os.path.realpath(sel.path) if sel.path else None
    matches = [
        c
        for c in present
        if (want_path is None or c.path in (want_path, sel.path))
        and (sel.usb_port is None or c.usb_port == sel.usb_port)
        and (sel.id is None or c.id == sel.id)
    ]
    what = f"{kind.name} with {sel.describe(kind.id_option or 'id')}"
    if not matches:
        others = "; ".join(c.describe(kind.id_option) for c in present) or "none"
        raise DeviceUnavailableError(
            f"no {what} is plugged in ({kind.name} boards present: {others})"
        )
    if len(matches) > 1:
        names = " and ".join(c.describe(kind.id_option) for c in matches)
        hint = "select one by usb_port (or path)"
        if kind.id_option == "id":
            hint += ", or give each board its own ID with `labpower-discover --set-id`"
        raise AmbiguousBoardError(
            f"{len(matches)} boards answer to {what}: {names}; refusing to guess: {hint}"
        )
    return matches[0]


@contextmanager
def opened(lib: Any, path: str, raw_path: bytes) -> Iterator[Any]:
    """An hidapi device open on ``path`` for the block, closed after it.

    :raises DeviceUnavailableError: it cannot be opened (gone, or no permission).
    """
    dev = lib.device()
    try:
        dev.open_path(raw_path)
    except OSError as exc:
        hint = (
            ""
            if os.access(path, os.R_OK | os.W_OK) or not os.path.exists(path)
            else (": no permission (install labpower's udev rules and join their group)")
        )
        raise DeviceUnavailableError(f"cannot open {path}: {exc}{hint}") from exc
    try:
        yield dev
    finally:
        try:
            dev.close()
        except OSError:
            pass
