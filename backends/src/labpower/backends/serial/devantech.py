"""Devantech USB-RLY02/08/16 relay modules (CDC-ACM, 04d8:ffee, with a USB serial number).

One-byte commands: ``5A`` version (2 bytes back), ``5B`` relay states (1 byte, bit 0 = relay 1),
``5C`` + byte set all, ``64`` / ``6E`` all on / off, ``65``-``6C`` relay 1-8 on, ``6F``-``76``
relay 1-8 off. Switching commands have no answer. The state byte has no framing, so a garbled
answer shows only by its length: bytes after the expected one fail the call.
"""

from __future__ import annotations

from labpower.backends.errors import OperationError
from labpower.backends.serial.port import SerialBackend, SerialPort
from labpower.backends.usbmatch import UsbId, UsbMatch

GET_VERSION = b"\x5a"
GET_STATES = b"\x5b"
SET_ALL = 0x5C
ALL_ON, ALL_OFF = 0x64, 0x6E


def switch_command(channel: int, on: bool) -> bytes:
    """``65``..``6C`` (relay 1-8 on) or ``6F``..``76`` (off)."""
    if not 1 <= channel <= 8:
        raise ValueError(f"channel {channel} out of range 1..8")
    return bytes(((ALL_ON if on else ALL_OFF) + channel,))


def parse_states(data: bytes, channels: int) -> dict[int, bool]:
    """States from the answer to ``5B``. :raises OperationError: not exactly one byte."""
    if len(data) != 1:
        raise OperationError(
            f"Devantech state answer of {len(data)} bytes, expected 1: {data[:16].hex(' ')}"
        )
    mask = data[0]
    return {ch: bool(mask >> (ch - 1) & 1) for ch in range(1, channels + 1)}


async def read_states(port: SerialPort, channels: int) -> dict[int, bool]:
    await port.command(GET_STATES)
    states = parse_states(await port.read_exact(1), channels)
    port.expect_nothing_more()
    return states


class DevantechBackend(SerialBackend):
    readback = True
    max_channels = 8
    usb = UsbMatch(
        "tty",
        "Devantech USB-RLY relay board",
        ids=(UsbId(0x04D8, 0xFFEE),),
        identity="usb",
        interface=0,
    )

    async def set(self, channel: int, on: bool) -> None:
        self.check_channel(channel)
        command = switch_command(channel, on)
        await self.io(lambda port: port.command(command))

    async def get(self, channel: int) -> bool:
        self.check_channel(channel)
        return (await self.io(lambda port: read_states(port, self.channels)))[channel]

    async def get_all(self) -> dict[int, bool | None]:
        return dict(await self.io(lambda port: read_states(port, self.channels)))
