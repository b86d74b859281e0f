"""The USB boards (docs/hardware.md, "USB HID boards"): one model each, shared by the fake at
the hidapi boundary (:mod:`labpower.backends.fakes`) and, where there is one, the simulator
(:mod:`labpower.backends.sim.uhid`)."""

from __future__ import annotations

from typing import ClassVar

from labpower.backends.models.base import BoardModel, Switch

# -- dcttech USBRelay (feature report 0, 8 data bytes)
ON, OFF, ALL_ON, ALL_OFF, SET_ID = 0xFF, 0xFD, 0xFE, 0xFC, 0xFA


class UsbRelayModel(BoardModel):
    """The board itself, without I/O: relays, ID, and its answers to feature reports."""

    kind = "usbrelay"

    def __init__(self, channels: int = 2, board_id: str = "SIM01", mask: int = 0) -> None:
        if not 1 <= channels <= self.max_channels:
            raise ValueError(f"USBRelay boards have 1..8 relays, not {channels}")
        super().__init__(channels)
        raw = board_id.encode("ascii")
        if not 1 <= len(raw) <= 5:
            raise ValueError(f"a board ID is 1 to 5 ASCII characters, not {board_id!r}")
        self.board_id = raw
        self.relays = {ch: bool(mask >> (ch - 1) & 1) for ch in range(1, channels + 1)}

    def feature_report(self) -> bytes:
        """The 8 bytes of GET_REPORT: ID in 0-4, relay mask in byte 7."""
        return self.board_id.ljust(5, b"\0") + b"\0\0" + bytes((self.mask(),))

    def command(self, payload: bytes) -> None:
        """Act on the 8 data bytes of a SET_REPORT."""
        if not payload:
            return
        op = payload[0]
        if op in (ON, OFF) and len(payload) > 1:
            if 1 <= payload[1] <= self.channels:
                self.switch(payload[1], op == ON)
        elif op in (ALL_ON, ALL_OFF):
            for ch in self.relays:
                self.switch(ch, op == ALL_ON)
        elif op == SET_ID and len(payload) >= 6:
            self.board_id = payload[1:6].rstrip(b"\0")


# -- LCUS frames: A0 channel op sum, on the serial boards and in the HID boards' OUT report
LCUS_START = 0xA0


def lcus_frame(frame: bytes, channels: int) -> tuple[int, int] | None:
    """(channel, operation) of a four-byte LCUS frame, or None for one the board ignores (a
    wrong start byte or checksum, a channel it does not have)."""
    if len(frame) != 4 or frame[0] != LCUS_START:
        return None
    _, channel, op, total = frame
    if (LCUS_START + channel + op) & 0xFF != total or not 1 <= channel <= channels:
        return None
    return channel, op


def lcus_state_frame(channel: int, on: bool) -> bytes:
    """The frame a feedback firmware answers with: ``A0 ch state sum``."""
    return bytes((LCUS_START, channel, int(on), (LCUS_START + channel + int(on)) & 0xFF))


# -- Yepkit YKUSH: 64-byte reports, one reply report per command
YKUSH_REPORT = 64
YKUSH_OK = 0x01


class YkushModel(BoardModel):
    """A YKUSH, YKUSH3 (3 ports) or YKUSH XS (1 port); a relay is a downstream port."""

    kind = "ykush"
    max_channels: ClassVar[int] = 3

    def __init__(self, channels: int = 3, firmware: tuple[int, int] = (2, 1)) -> None:
        super().__init__(channels)
        self.firmware = firmware

    def command(self, report: bytes) -> bytes:
        """The 64-byte reply to the report the board received (report number stripped)."""
        cmd = report[0] if report else 0
        hi, n = cmd >> 4, cmd & 0x0F
        ports = range(1, self.channels + 1)
        reply = [0x00, cmd]  # status 0: not understood
        if cmd == 0xF0:
            reply = [YKUSH_OK, *self.firmware]
        elif cmd == 0xF1:
            reply = [YKUSH_OK, self.channels]
        elif hi in (0, 1) and (n in ports or n == 0x0A):
            for port in ports if n == 0x0A else [n]:
                self.switch(port, hi == 1)
            reply = [YKUSH_OK, cmd]
        elif hi == 2 and n in ports:
            reply = [YKUSH_OK, (0x10 | n) if self.relays[n] else n]
        elif cmd == 0x2A:
            reply = [YKUSH_OK, *[(0x10 | p) if self.relays[p] else p for p in ports]]
        return bytes((reply + [0] * YKUSH_REPORT)[:YKUSH_REPORT])


# -- USB hubs: class requests (USB 2.0 specification 11.24, USB 3.2 specification 10.16)
PORT_POWER = 8
USB2_POWER_BIT = 1 << 8
USB3_POWER_BIT = 1 << 9


class Stall(Exception):
    """The device answered the control request with a STALL (it does not support it)."""


class UsbHubModel(BoardModel):
    """A USB hub; a relay is a downstream port's power. ``per_port`` False is a ganged hub:
    any port's power request switches them all."""

    kind = "usbhub"
    max_channels: ClassVar[int] = 15

    def __init__(self, channels: int = 4, *, usb3: bool = False, per_port: bool = True) -> None:
        super().__init__(channels)
        self.usb3 = usb3
        self.per_port = per_port

    def port_status(self, port: int) -> int:
        """wPortStatus of a port. On a USB 3 hub bits 5-8 are the link state, so bit 8 says
        nothing about power there: a powered, empty port sits in RxDetect (5), a port
        without power in SS.Disabled (4)."""
        powered = self.relays[port]
        if self.usb3:
            return (USB3_POWER_BIT | 5 << 5) if powered else 4 << 5
        return USB2_POWER_BIT if powered else 0

    def control(
        self, request_type: int, request: int, value: int, index: int, length: int
    ) -> bytes | None:
        """One control request; the reply's bytes for IN requests.

        :raises Stall: a request the hub refuses.
        """
        ports = range(1, self.channels + 1)
        if request_type == 0x23 and request in (1, 3) and value == PORT_POWER:
            if index not in ports:
                raise Stall
            on = request == 3
            if self.per_port:
                self.switch(index, on)
            else:
                self.switches.append(Switch(index, on))
                self.relays = dict.fromkeys(ports, on)  # ganged: every port follows
            return None
        if request_type == 0xA3 and request == 0 and value == 0:
            if index not in ports:
                raise Stall
            status = self.port_status(index)
            return bytes((status & 0xFF, status >> 8, 0, 0))[:length]
        if request_type == 0xA0 and request == 6:
            characteristics = 0x0001 if self.per_port else 0x0000
            if self.usb3 and value == 0x2A00:
                desc = [12, 0x2A, self.channels, characteristics, 0, 50, 0, 0, 0, 0, 0, 0]
            elif not self.usb3 and value == 0x2900:
                desc = [9, 0x29, self.channels, characteristics, 0, 50, 100, 0, 0xFF]
            else:
                raise Stall
            return bytes(desc[:length])
        raise Stall
