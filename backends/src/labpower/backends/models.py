"""One model of each board whose protocol two test doubles speak: the fakes at the library
boundary (:mod:`labpower.backends.fakes`) and the simulators (:mod:`labpower.backends.sim`).

Written from docs/hardware.md and from nothing in the backends: a model never imports a
backend's encoder or parser, so a backend that gets the protocol wrong fails against it. The
models do no I/O; the fakes keep their state in JSON-able dicts and the simulators on ptys or
/dev/uhid, and both hand the bytes the board received to the model here.
"""

from __future__ import annotations

from typing import NamedTuple


class Switch(NamedTuple):
    """One switching command a board received: relay ``channel`` (1-based) to ``on``."""

    channel: int
    on: bool


# -- dcttech USBRelay (feature report 0, 8 data bytes)
ON, OFF, ALL_ON, ALL_OFF, SET_ID = 0xFF, 0xFD, 0xFE, 0xFC, 0xFA


class UsbRelayModel:
    """The board itself, without I/O: relays, ID, and its answers to feature reports."""

    def __init__(self, channels: int = 2, board_id: str = "SIM01", mask: int = 0) -> None:
        if not 1 <= channels <= 8:
            raise ValueError(f"USBRelay boards have 1..8 relays, not {channels}")
        raw = board_id.encode("ascii")
        if not 1 <= len(raw) <= 5:
            raise ValueError(f"a board ID is 1 to 5 ASCII characters, not {board_id!r}")
        self.channels = channels
        self.board_id = raw
        #: relay states, relay 1 first
        self.relays: dict[int, bool] = {
            ch: bool(mask >> (ch - 1) & 1) for ch in range(1, channels + 1)
        }
        #: every switching command received (relays outside the board are not recorded)
        self.switches: list[Switch] = []

    def feature_report(self) -> bytes:
        """The 8 bytes of GET_REPORT: ID in 0-4, relay mask in byte 7."""
        return self.board_id.ljust(5, b"\0") + b"\0\0" + bytes((self.mask,))

    def command(self, payload: bytes) -> None:
        """Act on the 8 data bytes of a SET_REPORT."""
        if not payload:
            return
        op = payload[0]
        if op in (ON, OFF) and len(payload) > 1:
            if 1 <= payload[1] <= self.channels:
                self._switch(payload[1], op == ON)
        elif op in (ALL_ON, ALL_OFF):
            for ch in self.relays:
                self._switch(ch, op == ALL_ON)
        elif op == SET_ID and len(payload) >= 6:
            self.board_id = payload[1:6].rstrip(b"\0")

    def _switch(self, channel: int, on: bool) -> None:
        self.switches.append(Switch(channel, on))
        self.relays[channel] = on

    def power_loss(self) -> None:
        self.relays = dict.fromkeys(self.relays, False)

    @property
    def mask(self) -> int:
        """The relay mask of the feature report (bit 0 = relay 1)."""
        return sum(1 << (ch - 1) for ch, on in self.relays.items() if on)


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
