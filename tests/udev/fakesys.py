"""A small fake sysfs tree with the relay boards labpower's udev rules are for.

These machines have no USB and no uhid, so there is no real board under /sys for `udevadm test`
to apply the rules to. udev only reads sysfs (uevent files, attributes, ``subsystem`` links,
``dev``), so a tree laid out like the kernel's, bind-mounted over /sys in a private mount
namespace, lets the real udevadm run the real rules (system rules included) on realistic
devices: a USB serial port under its interface, a hidraw node under its HID device, with and
without a USB parent, and a USB hub.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PCI = "devices/pci0000:00/0000:00:14.0"


@dataclass(frozen=True, slots=True)
class Node:
    """A device node the rules should handle: its sysfs path (under the fake root), its
    /dev name and its char major:minor."""

    syspath: str
    devname: str
    major: int
    minor: int


class FakeSys:
    """Builds a fake sysfs under ``root`` (mounted on /sys later: paths here are /sys-relative)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for d in ("class/tty", "class/hidraw", "bus/usb", "bus/usb-serial", "bus/hid", "bus/pci"):
            (root / d).mkdir(parents=True, exist_ok=True)
        self.device(
            PCI,
            "bus/pci",
            {"DRIVER": "xhci_hcd", "PCI_CLASS": "C0330", "PCI_SLOT_NAME": "0000:00:14.0"},
        )
        self._usb_minor = 0

    def device(
        self,
        path: str,
        subsystem: str,
        uevent: dict[str, str],
        attrs: dict[str, str] | None = None,
    ) -> Path:
        d = self.root / path
        d.mkdir(parents=True, exist_ok=True)
        (d / "uevent").write_text("".join(f"{k}={v}\n" for k, v in uevent.items()))
        for name, value in (attrs or {}).items():
            (d / name).write_text(value + "\n")
        link = d / "subsystem"
        if not link.is_symlink():
            link.symlink_to(os.path.relpath(self.root / subsystem, d))
        if "MAJOR" in uevent:
            (d / "dev").write_text(f"{uevent['MAJOR']}:{uevent['MINOR']}\n")
        return d

    def usb_device(
        self,
        port: str,
        vid: int,
        pid: int,
        *,
        serial: str | None = None,
        product: str = "",
        device_class: int = 0,
    ) -> Node:
        """A USB device at ``port`` (e.g. ``1-3`` or ``1-2.4``) on root hub usb1."""
        if not (self.root / PCI / "usb1").exists():
            self._usb("usb1", 0x1D6B, 0x0002, None, "xHCI Host Controller", 9)
        parent = port.rpartition(".")[0] or "usb1"
        path = self._path_of(parent) + "/" + port
        return self._usb(port, vid, pid, serial, product, device_class, path)

    def _path_of(self, name: str) -> str:
        for d in (self.root / PCI).rglob(name):
            return str(d.relative_to(self.root))
        raise KeyError(name)

    def _usb(
        self,
        name: str,
        vid: int,
        pid: int,
        serial: str | None,
        product: str,
        device_class: int,
        path: str | None = None,
    ) -> Node:
        path = path or f"{PCI}/{name}"
        self._usb_minor += 1
        busnum, devnum = 1, self._usb_minor
        devname = f"bus/usb/{busnum:03d}/{devnum:03d}"
        attrs = {
            "idVendor": f"{vid:04x}",
            "idProduct": f"{pid:04x}",
            "bcdDevice": "0100",
            "bDeviceClass": f"{device_class:02x}",
            "bDeviceSubClass": "00",
            "bDeviceProtocol": "00",
            "bNumInterfaces": " 1",
            "busnum": str(busnum),
            "devnum": str(devnum),
            "product": product,
            "manufacturer": "labpower test",
            "speed": "12",
        }
        if serial is not None:
            attrs["serial"] = serial
        self.device(
            path,
            "bus/usb",
            {
                "MAJOR": "189",
                "MINOR": str(self._usb_minor),
                "DEVNAME": devname,
                "DEVTYPE": "usb_device",
                "DRIVER": "usb",
                "PRODUCT": f"{vid:x}/{pid:x}/100",
                "TYPE": f"{device_class}/0/0",
                "BUSNUM": f"{busnum:03d}",
                "DEVNUM": f"{devnum:03d}",
            },
            attrs,
        )
        return Node(path, devname, 189, self._usb_minor)

    def interface(self, device: Node, number: int, driver: str, cls: int = 0xFF) -> str:
        port = device.syspath.rpartition("/")[2]
        path = f"{device.syspath}/{port}:1.{number}"
        self.device(
            path,
            "bus/usb",
            {
                "DEVTYPE": "usb_interface",
                "DRIVER": driver,
                "INTERFACE": f"{cls}/0/0",
            },
            {
                "bInterfaceNumber": f"{number:02x}",
                "bInterfaceClass": f"{cls:02x}",
                "bInterfaceSubClass": "00",
                "bInterfaceProtocol": "00",
                "bAlternateSetting": " 0",
                "bNumEndpoints": "02",
            },
        )
        return path

    def tty_usb(self, device: Node, index: int, driver: str = "ftdi_sio") -> Node:
        """ttyUSB<index> behind a usb-serial driver (FTDI, CH340)."""
        iface = self.interface(device, 0, driver)
        port = self.device(f"{iface}/ttyUSB{index}", "bus/usb-serial", {"DRIVER": driver})
        rel = str(port.relative_to(self.root)) + f"/tty/ttyUSB{index}"
        self.device(rel, "class/tty", {"MAJOR": "188", "MINOR": str(index), "DEVNAME": f"ttyUSB{index}"})
        return Node(rel, f"ttyUSB{index}", 188, index)

    def tty_acm(self, device: Node, index: int) -> Node:
        """ttyACM<index> on a CDC-ACM interface (Numato, Devantech)."""
        iface = self.interface(device, 0, "cdc_acm", cls=2)
        rel = f"{iface}/tty/ttyACM{index}"
        self.device(rel, "class/tty", {"MAJOR": "166", "MINOR": str(index), "DEVNAME": f"ttyACM{index}"})
        return Node(rel, f"ttyACM{index}", 166, index)

    def hidraw(
        self, parent: str, vid: int, pid: int, seq: int, index: int, name: str, uniq: str = ""
    ) -> Node:
        """hidraw<index> under HID device 0003:VID:PID.seq, itself under ``parent`` (a USB
        interface, or the uhid misc device for a board without a USB parent)."""
        hid = f"{parent}/0003:{vid:04X}:{pid:04X}.{seq:04X}"
        self.device(
            hid,
            "bus/hid",
            {
                "DRIVER": "hid-generic",
                "HID_ID": f"0003:{vid:08X}:{pid:08X}",
                "HID_NAME": name,
                "HID_PHYS": "",
                "HID_UNIQ": uniq,
                "MODALIAS": f"hid:b0003g0001v{vid:08X}p{pid:08X}",
            },
        )
        rel = f"{hid}/hidraw/hidraw{index}"
        self.device(rel, "class/hidraw", {"MAJOR": "242", "MINOR": str(index), "DEVNAME": f"hidraw{index}"})
        return Node(rel, f"hidraw{index}", 242, index)

    def uhid_parent(self) -> str:
        path = "devices/virtual/misc/uhid"
        (self.root / "class/misc").mkdir(parents=True, exist_ok=True)
        self.device(path, "class/misc", {"MAJOR": "10", "MINOR": "239", "DEVNAME": "uhid"})
        return path
