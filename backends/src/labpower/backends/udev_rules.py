"""labpower's udev rules, made from the backends' USB declarations (:attr:`Backend.usb`).

``python -m labpower.backends.udev_rules`` prints the rules; ``-o FILE`` writes them;
``--check FILE`` exits 1 with a diff when FILE (the shipped ``udev/70-labpower.rules``) is not
what the backends declare; ``--all`` makes them for every installed backend, third parties'
too (labpower ships only its own). The rules are a pure function of the declarations: a new board is
added to its backend, never to the rules file.

What the rules do for a board: group ``labpower``, mode 0660, links under ``/dev/labpower/``,
``labpowerd.service`` started when it is plugged in, and udev properties ``LABPOWER_FAMILY``
(the udev name of the board kind or chip) and ``LABPOWER_CANDIDATES`` (the backends that may
drive it). A shared chip (:class:`~labpower.backends.usbmatch.Chip`: CH340, FT232R) gets one
rule under its own name whichever backends list it; the config says which backend owns it.
Hubs also get their ports' power switches (sysfs ``disable``) for group labpower, which the
``usbhub`` backend switches through.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from labpower.backends import registry
from labpower.backends.usbmatch import Chip, UsbId, UsbMatch

#: USB device class of hubs: the usbhub backend's boards
HUB_CLASS = 9

HEADER = """\
# labpower: access to relay boards for group "labpower", stable names under /dev/labpower/,
# and labpowerd started by systemd when a board is plugged in.
#
# GENERATED from the backends' USB declarations: do not edit. Make it again with
#   python -m labpower.backends.udev_rules -o udev/70-labpower.rules
# (a test fails while this file and the backends disagree). To change what a host grants,
# copy it to /etc/udev/rules.d/70-labpower.rules, which overrides the packaged file.
#
# Numbered 70 so that it runs after 50-udev-default.rules (which gives ttys to "dialout") and
# 60-serial.rules / 60-persistent-*.rules (which import ID_PATH and ID_SERIAL); it imports
# what it needs itself anyway, so it does not depend on their order.
#
# Every node gets GROUP="labpower", MODE="0660": never world-writable. labpowerd runs as user
# labpower (sysusers.d/labpower.conf); add people to the group to let them use the boards
# directly (labpower-discover, --set-id).
#
# Links (the board's ID or serial number when it has one, else the USB port it is plugged into):
#   /dev/labpower/<family>-<serial>     USB serial number (FTDI, Numato, Devantech, YKUSH) or
#                                       HID "uniq" (uhid boards made by labpower-sim)
#   /dev/labpower/<family>-<ID_PATH>    the port, e.g. ch340-pci-0000:00:14.0-usb-0:3:1.0
#   /dev/labpower/usbhub-<location>     USB hubs by USB location, e.g. usbhub-1-2
#
# Shared chips: a CH340 (1a86:7523) or FT232R (0403:6001) is a generic USB serial chip that
# LCUS and KMTronic relay boards and RS-485 (Modbus RTU) adapters are all built around. Its
# IDs do not say which, so it is named after the chip (family "ch340", "ft232r"), and
# LABPOWER_CANDIDATES lists the backends it may be: labpowerd.toml decides which one drives
# the port. Every such adapter on the host joins group labpower (dialout loses it): narrow
# those lines with ATTRS{serial}=="..." on a host where that matters.
"""


def _title(text: str) -> str:
    return f"# --- {text} ".ljust(95, "-")


def _hex(value: int) -> str:
    return f"{value:04x}"


def _attrs(usb_id: UsbId) -> str:
    match = f'ATTRS{{idVendor}}=="{_hex(usb_id.vendor)}"'
    if usb_id.product is not None:
        match += f', ATTRS{{idProduct}}=="{_hex(usb_id.product)}"'
    return match


def _hid_name(usb_id: UsbId) -> str:
    """The HID device's kernel name pattern: bus 0003 (USB), vendor, product, in capitals."""
    product = "*" if usb_id.product is None else f"{usb_id.product:04X}"
    return f"0003:{usb_id.vendor:04X}:{product}.*"


def _interface(number: int | None) -> str:
    return "" if number is None else f', ENV{{ID_USB_INTERFACE_NUM}}=="{number:02x}"'


def _family_props(family: str, candidates: Sequence[str]) -> str:
    return f'ENV{{LABPOWER_FAMILY}}="{family}", ENV{{LABPOWER_CANDIDATES}}="{" ".join(candidates)}"'


@dataclass
class _Tty:
    """The tty section being built: shared chips first, then boards with their own IDs,
    then product strings that name the board behind a chip (they override the chip)."""

    chips: dict[str, tuple[Chip, list[str]]] = field(default_factory=dict)
    own: list[str] = field(default_factory=list)
    named: list[str] = field(default_factory=list)
    serial_families: list[str] = field(default_factory=list)

    def add(self, name: str, usb: UsbMatch) -> None:
        for chip in usb.chips:
            self.chips.setdefault(chip.name, (chip, []))[1].append(name)
            if usb.product:
                for usb_id in chip.ids:
                    self.named.append(
                        f'{_attrs(usb_id)}, ATTRS{{product}}=="*{usb.product}*", '
                        f"{_family_props(name, [name])}"
                    )
        for usb_id in usb.ids:
            self.own.append(
                f"{_attrs(usb_id)}{_interface(usb.interface)}, {_family_props(name, [name])}"
            )
        if usb.identity == "usb" or (usb.product and any(c.identity == "usb" for c in usb.chips)):
            self.serial_families.append(name)

    def lines(self) -> list[str]:
        out = [
            _title("serial boards (tty)"),
            'LABEL="labpower_tty"',
            'IMPORT{builtin}="usb_id"',
        ]
        for chip, names in self.chips.values():
            ids = ", ".join(str(i) for i in chip.ids)
            out.append(
                f"# {chip.name} ({ids}): a shared chip; may be {', '.join(names)}: "
                "the config decides"
            )
            for usb_id in chip.ids:
                out.append(
                    f"{_attrs(usb_id)}{_interface(chip.interface)}, "
                    f"{_family_props(chip.family, names)}"
                )
            if chip.identity == "usb":
                self.serial_families.append(chip.family)
        if self.own:
            out.append("# boards with USB IDs of their own")
            out += self.own
        if self.named:
            out.append("# a product string that names the board behind a shared chip")
            out += self.named
        out += [
            'ENV{LABPOWER_FAMILY}!="?*", GOTO="labpower_end"',
            'IMPORT{builtin}="path_id"',
        ]
        if self.serial_families:
            families = "|".join(sorted(set(self.serial_families)))
            out += [
                "# a link by USB serial number where the chip or board has one",
                f'ENV{{LABPOWER_FAMILY}}=="{families}", ENV{{ID_SERIAL_SHORT}}=="?*", '
                'SYMLINK+="labpower/$env{LABPOWER_FAMILY}-$env{ID_SERIAL_SHORT}"',
            ]
        out.append('GOTO="labpower_access"')
        return out


def _hidraw(boards: list[tuple[str, UsbMatch]]) -> list[str]:
    out = [
        _title("USB HID boards (hidraw)"),
        "# Matched on the HID device's name (bus 0003 = USB, vendor, product), which boards",
        "# without a USB parent (uhid, e.g. labpower-sim usbrelay --uhid) have too, not only on",
        "# ATTRS{idVendor}. Product strings (V-USB's shared 16c0:05df) are checked by the backend.",
        'LABEL="labpower_hidraw"',
    ]
    for name, usb in boards:
        names = "|".join(_hid_name(i) for i in usb.ids)
        out.append(f'KERNELS=="{names}", {_family_props(name, [name])}')
    out += [
        'ENV{LABPOWER_FAMILY}!="?*", GOTO="labpower_end"',
        'IMPORT{parent}="HID_UNIQ"',
        'IMPORT{builtin}="path_id"',
        'ENV{HID_UNIQ}=="?*", SYMLINK+="labpower/$env{LABPOWER_FAMILY}-$env{HID_UNIQ}"',
        'GOTO="labpower_access"',
    ]
    return out


def _usb(boards: list[tuple[str, UsbMatch]]) -> list[str]:
    if len(boards) != 1 or boards[0][1].device_class != HUB_CLASS or boards[0][1].ids:
        raise ValueError(
            "udev rules: only hubs (device_class 9, no ids) are supported in the usb "
            f"subsystem, not {[name for name, _ in boards]}"
        )
    name = boards[0][0]
    return [
        _title("USB hubs with per-port power switching (usb_device nodes)"),
        'LABEL="labpower_usb"',
        'ATTR{bDeviceClass}!="09", GOTO="labpower_end"',
        "# root hubs (usb1, usb2, ...) belong to the host controller: the usbhub backend does not",
        "# drive them, and a controller appearing at boot is not a board being plugged in",
        'KERNEL=="usb[0-9]*", GOTO="labpower_end"',
        f'ENV{{LABPOWER_FAMILY}}="{name}"',
        f'ENV{{LABPOWER_CANDIDATES}}="{name}"',
        f'SYMLINK+="labpower/{name}-%k"',
        'GOTO="labpower_access"',
        "",
        _title("the power switches of a hub's ports"),
        "# The hub driver makes one device per port under the hub's interface (1-2:1.0/1-2-port1)",
        "# once it is bound; they send no events of their own. Their sysfs `disable` switches the",
        "# port's power through the kernel, which then keeps it off (see the usbhub backend):",
        "# writable by group labpower, readable by all as the kernel makes it.",
        'LABEL="labpower_hub_ports"',
        'KERNEL=="*-0:*", GOTO="labpower_end"',
        "RUN+=\"/bin/sh -c 'for f in /sys$devpath/*-port*/disable; do [ -e $$f ] && "
        "/bin/chgrp labpower $$f && /bin/chmod 0664 $$f; done; exit 0'\"",
        'GOTO="labpower_end"',
    ]


def render(declarations: Sequence[tuple[str, UsbMatch]]) -> str:
    """The rules file for ``declarations`` (backend name, its USB match).

    :raises ValueError: a declaration the rules cannot express.
    """
    tty, hidraw, usb = _Tty(), [], []
    for name, decl in declarations:
        if decl.subsystem == "tty":
            tty.add(name, decl)
        elif decl.subsystem == "hidraw":
            hidraw.append((name, decl))
        else:
            usb.append((name, decl))
    dispatch = [
        'ACTION=="remove", GOTO="labpower_end"',
        'SUBSYSTEM=="tty", KERNEL=="ttyUSB[0-9]*|ttyACM[0-9]*", GOTO="labpower_tty"',
        'SUBSYSTEM=="hidraw", GOTO="labpower_hidraw"',
        'SUBSYSTEM=="usb", ENV{DEVTYPE}=="usb_device", GOTO="labpower_usb"',
        'SUBSYSTEM=="usb", ENV{DEVTYPE}=="usb_interface", DRIVER=="hub", GOTO="labpower_hub_ports"',
        'GOTO="labpower_end"',
    ]
    sections = [dispatch, tty.lines(), _hidraw(hidraw)]
    if usb:
        sections.append(_usb(usb))
    sections.append(
        [
            _title("what every board gets"),
            'LABEL="labpower_access"',
            'ENV{ID_PATH}=="?*", SYMLINK+="labpower/$env{LABPOWER_FAMILY}-$env{ID_PATH}"',
            'GROUP="labpower", MODE="0660"',
            'TAG+="systemd", ENV{SYSTEMD_WANTS}+="labpowerd.service"',
            "",
            'LABEL="labpower_end"',
        ]
    )
    return HEADER + "\n" + "\n\n".join("\n".join(s) for s in sections) + "\n"


def shipped(own_only: bool = True) -> str:
    """The rules for labpower's own backends (what ``udev/70-labpower.rules`` must be), or
    with ``own_only`` false for every backend installed (third parties' too)."""
    return render([(name, usb) for name, _, usb in registry.declared(own_only=own_only)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m labpower.backends.udev_rules",
        description="Print labpower's udev rules, made from the backends' USB declarations.",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-o", "--output", type=Path, help="write the rules to this file")
    group.add_argument(
        "--check", type=Path, metavar="FILE", help="exit 1 with a diff if FILE differs"
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="every installed backend, third parties' too (for /etc/udev/rules.d/)",
    )
    args = parser.parse_args(argv)
    if args.all and args.check is not None:
        parser.error("--check compares labpower's own rules: not with --all")
    text = shipped(own_only=not args.all)
    if args.check is not None:
        try:
            current = args.check.read_text()
        except OSError as exc:
            parser.error(f"cannot read {args.check}: {exc.strerror}")
        if current == text:
            return 0
        sys.stdout.writelines(
            difflib.unified_diff(
                current.splitlines(keepends=True),
                text.splitlines(keepends=True),
                str(args.check),
                "from the backends",
            )
        )
        return 1
    if args.output is not None:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
