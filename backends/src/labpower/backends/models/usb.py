"""The USB boards (docs/hardware.md, "USB HID boards"): one model each, shared by the fake at
the hidapi boundary (:mod:`labpower.backends.fakes`) and, where there is one, the simulator
(:mod:`labpower.backends.sim.uhid`)."""

from __future__ import annotations

from labpower.backends.models.base import BoardModel

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
