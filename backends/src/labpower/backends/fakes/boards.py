"""Byte-level models of the boards, as the device firmware sees the bytes.

Each model is a plain dict (so that a :class:`~labpower.backends.fakes.bus.FileBus` can keep it
in JSON) built by one of the constructors here, and a function that takes the bytes that
reached the device (after the host library and the kernel stripped the report number) and
returns what the device answers. The facts are those of docs/hardware.md; the boards that a
simulator plays too share its model (:mod:`labpower.backends.models`).
"""

from __future__ import annotations

from typing import Any

from labpower.backends.models import UsbRelayModel, lcus_frame

Board = dict[str, Any]

USBRELAY_VID, USBRELAY_PID = 0x16C0, 0x05DF
LCUS_HID_VID, LCUS_HID_PID = 0x5131, 0x2007
YKUSH_VID = 0x04D8
YKUSH_PIDS = {"YKUSH": 0xF2F7, "YKUSH3": 0xF11B, "YKUSHXS": 0xF0CD}
YKUSH_PORTS = {"YKUSH": 3, "YKUSH3": 3, "YKUSHXS": 1}
YKUSH_REPORT = 64


class Stall(Exception):
    """The device answered the control request with a STALL (it does not support it)."""


def usbrelay(
    key: str,
    *,
    id: str = "ABCDE",
    relays: int = 2,
    path: str = "/dev/hidraw0",
    usb_port: str = "1-2",
    report_prefix: bool = True,
) -> Board:
    """A dcttech USBRelayN board. ``report_prefix`` False models a host library that returns
    feature reports without the leading report number."""
    return {
        "key": key,
        "model": "usbrelay",
        "vid": USBRELAY_VID,
        "pid": USBRELAY_PID,
        "product": f"USBRelay{relays}",
        "manufacturer": "www.dcttech.com",
        "serial": "",
        "relays": relays,
        "id": id,
        "mask": 0,
        "path": path,
        "usb_port": usb_port,
        "report_prefix": report_prefix,
    }


def lcus_hid(
    key: str, *, relays: int = 1, path: str = "/dev/hidraw1", usb_port: str = "1-3"
) -> Board:
    """An LCUS HID board: no strings, interrupt OUT only, state not readable."""
    return {
        "key": key,
        "model": "lcus-hid",
        "vid": LCUS_HID_VID,
        "pid": LCUS_HID_PID,
        "product": "",
        "manufacturer": "",
        "serial": "",
        "relays": relays,
        "state": [False] * relays,
        "path": path,
        "usb_port": usb_port,
    }


def ykush(
    key: str,
    *,
    serial: str = "YK20001",
    model: str = "YKUSH",
    path: str = "/dev/hidraw2",
    usb_port: str = "1-4",
    firmware: tuple[int, int] = (2, 1),
) -> Board:
    """A Yepkit YKUSH, YKUSH3 or YKUSHXS; its downstream ports start up powered."""
    ports = YKUSH_PORTS[model]
    return {
        "key": key,
        "model": "ykush",
        "vid": YKUSH_VID,
        "pid": YKUSH_PIDS[model],
        "product": model,
        "manufacturer": "Yepkit Lda.",
        "serial": serial,
        "ports": [True] * ports,
        "firmware": list(firmware),
        "path": path,
        "usb_port": usb_port,
        "pending": [],
    }


def hub(
    key: str, *, location: str = "1-5", usb3: bool = False, ports: int = 4, per_port: bool = True
) -> Board:
    """A USB hub; ``per_port`` False is a ganged hub (its ports cannot be switched alone:
    the power bit follows a request, but it only reports what the hub does)."""
    bus, _, path = location.partition("-")
    return {
        "key": key,
        "model": "hub",
        "bus": int(bus),
        "port_numbers": [int(p) for p in path.split(".")],
        "usb3": usb3,
        "vid": 0x2109,
        "pid": 0x0817 if usb3 else 0x2817,
        "product": "USB3.0 Hub" if usb3 else "USB2.0 Hub",
        "manufacturer": "VIA Labs, Inc.",
        "nports": ports,
        "per_port": per_port,
        "power": [True] * ports,
    }


def serial_port(
    key: str,
    device: str,
    *,
    vid: int,
    pid: int,
    serial_number: str | None = None,
    product: str | None = None,
    manufacturer: str | None = None,
    location: str = "1-6:1.0",
    by_id: str | None = None,
    by_path: str | None = None,
) -> Board:
    """A USB serial port as pyserial's ``list_ports`` reports it, with its udev links."""
    return {
        "key": key,
        "model": "serial",
        "device": device,
        "vid": vid,
        "pid": pid,
        "serial_number": serial_number,
        "product": product,
        "manufacturer": manufacturer,
        "location": location,
        "by-id": by_id,
        "by-path": by_path,
    }


def record_switch(board: Board, channel: int, on: bool) -> None:
    """Note a switching command the board received (the contract suite checks that nobody
    sent one unasked), then let the caller apply it."""
    board.setdefault("switches", []).append([channel, on])


# -- dcttech USBRelay: feature report 0, 8 bytes (the model is shared with the uhid simulator)
def _usbrelay_model(board: Board) -> UsbRelayModel:
    model = UsbRelayModel(board["relays"], mask=board["mask"])
    model.board_id = board["id"].encode("latin-1")[:5]  # as the board keeps it, unchecked
    return model


def usbrelay_set_report(board: Board, data: list[int]) -> None:
    """SET_REPORT(feature) with the 8 bytes the device got."""
    model = _usbrelay_model(board)
    model.command(bytes((list(data) + [0] * 8)[:8]))
    for switch in model.switches:
        record_switch(board, switch.channel, switch.on)
    board["mask"] = model.mask()
    # the ID is kept in the board's EEPROM: it survives unplugging
    board["id"] = model.board_id.decode("latin-1")


def usbrelay_get_report(board: Board) -> list[int]:
    """GET_REPORT(feature): ID in bytes 0-4, state mask in byte 7."""
    return list(_usbrelay_model(board).feature_report())


# -- LCUS HID: interrupt OUT A0 n op sum (the frame of the serial LCUS boards)
def lcus_hid_out(board: Board, data: list[int]) -> None:
    frame = lcus_frame(bytes(data[:4]), board["relays"])
    if frame is None:
        return  # bad frames are ignored silently, as the board does
    channel, op = frame
    if op in (0, 1):
        record_switch(board, channel, op == 1)
        board["state"][channel - 1] = op == 1


# -- YKUSH: 64-byte reports, one reply per command
def ykush_out(board: Board, data: list[int]) -> None:
    """An OUT report reached the YKUSH: queue its 64-byte reply."""
    data = (list(data) + [0] * YKUSH_REPORT)[:YKUSH_REPORT]
    cmd = data[0]
    ports: list[bool] = board["ports"]
    hi, n = cmd >> 4, cmd & 0x0F
    reply = [0x00, cmd]  # status 0: not understood
    if cmd == 0xF0:
        reply = [0x01, *board["firmware"]]
    elif cmd == 0xF1:
        reply = [0x01, len(ports)]
    elif hi in (0, 1) and (1 <= n <= len(ports) or n == 0x0A):
        for i in range(len(ports)) if n == 0x0A else [n - 1]:
            record_switch(board, i + 1, hi == 1)
            ports[i] = hi == 1
        reply = [0x01, cmd]
    elif hi == 2 and 1 <= n <= len(ports):
        reply = [0x01, (0x10 | n) if ports[n - 1] else n]
    elif cmd == 0x2A:
        reply = [0x01, *[(0x10 | i + 1) if up else i + 1 for i, up in enumerate(ports)]]
    board["pending"].append((reply + [0] * YKUSH_REPORT)[:YKUSH_REPORT])


# -- USB hub class requests (USB 2.0 spec 11.24, USB 3.2 spec 10.16)
PORT_POWER = 8
USB2_POWER_BIT = 1 << 8
USB3_POWER_BIT = 1 << 9


def hub_status(board: Board, port: int) -> int:
    """wPortStatus of a port. On a USB 3 hub bits 5-8 are the link state, so bit 8 says
    nothing about power there: a powered, empty port sits in RxDetect (5), a port without
    power in SS.Disabled (4)."""
    powered = board["power"][port - 1]
    if board["usb3"]:
        return (USB3_POWER_BIT | 5 << 5) if powered else 4 << 5
    return USB2_POWER_BIT if powered else 0


def hub_control(
    board: Board, request_type: int, request: int, value: int, index: int, length: int
) -> list[int] | None:
    """One control request to the hub; the reply's bytes for IN requests.

    :raises Stall: a request the hub refuses.
    """
    nports = board["nports"]
    if request_type == 0x23 and request in (1, 3) and value == PORT_POWER:
        if not 1 <= index <= nports:
            raise Stall
        record_switch(board, index, request == 3)
        if board["per_port"]:
            board["power"][index - 1] = request == 3
        else:  # ganged: the port power follows every port
            board["power"] = [request == 3] * nports
        return None
    if request_type == 0xA3 and request == 0 and value == 0:
        if not 1 <= index <= nports:
            raise Stall
        status = hub_status(board, index)
        return [status & 0xFF, status >> 8, 0, 0][:length]
    if request_type == 0xA0 and request == 6:
        characteristics = 0x0001 if board["per_port"] else 0x0000
        if board["usb3"] and value == 0x2A00:
            desc = [12, 0x2A, nports, characteristics, 0, 50, 0, 0, 0, 0, 0, 0]
        elif not board["usb3"] and value == 0x2900:
            desc = [9, 0x29, nports, characteristics, 0, 50, 100, 0, 0xFF]
        else:
            raise Stall
        return desc[:length]
    raise Stall
