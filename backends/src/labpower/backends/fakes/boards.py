"""Byte-level models of the boards, as the device firmware sees the bytes.

Each model is a plain dict (so that a :class:`~labpower.backends.fakes.bus.FileBus` can keep it
in JSON) built by one of the constructors here, and a function that takes the bytes that
reached the device (after the host library and the kernel stripped the report number) and
returns what the device answers. The facts are those of docs/hardware.md; the boards that a
simulator plays too share its model (:mod:`labpower.backends.models`).
"""

from __future__ import annotations

from typing import Any

from labpower.backends.models import (
    BoardModel,
    UsbHubModel,
    UsbRelayModel,
    YkushModel,
    lcus_frame,
)

Board = dict[str, Any]

USBRELAY_VID, USBRELAY_PID = 0x16C0, 0x05DF
LCUS_HID_VID, LCUS_HID_PID = 0x5131, 0x2007
YKUSH_VID = 0x04D8
YKUSH_PIDS = {"YKUSH": 0xF2F7, "YKUSH3": 0xF11B, "YKUSHXS": 0xF0CD}
YKUSH_PORTS = {"YKUSH": 3, "YKUSH3": 3, "YKUSHXS": 1}


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
    ports: list[bool] = board["ports"]
    model = YkushModel(len(ports), tuple(board["firmware"]))
    _load(model, ports)
    reply = model.command(bytes(data))
    _store(board, model, "ports")
    board["pending"].append(list(reply))


# -- USB hub class requests
def hub_control(
    board: Board, request_type: int, request: int, value: int, index: int, length: int
) -> list[int] | None:
    """One control request to the hub; the reply's bytes for IN requests.

    :raises Stall: a request the hub refuses.
    """
    model = UsbHubModel(board["nports"], usb3=board["usb3"], per_port=board["per_port"])
    _load(model, board["power"])
    try:
        reply = model.control(request_type, request, value, index, length)
    finally:
        _store(board, model, "power")
    return None if reply is None else list(reply)


def _load(model: BoardModel, states: list[bool]) -> None:
    model.relays = {ch: bool(on) for ch, on in enumerate(states, 1)}


def _store(board: Board, model: BoardModel, field: str) -> None:
    """Write a model's relays back into the board's dict, and note the switches it took."""
    for switch in model.switches:
        record_switch(board, switch.channel, switch.on)
    board[field] = [model.relays[ch] for ch in range(1, model.channels + 1)]
