"""KMTronic USB relay boards (FTDI, with a USB serial number; 9600 8N1).

Three-byte frames starting with ``FF``. Switch: ``FF 0n 01`` on, ``FF 0n 00`` off (no answer).
Status of a 1-2 relay board: ``FF 0n 03`` -> ``FF 0n xx`` (01 on). Status of a 4/8 relay board:
``FF 09 00`` -> one byte per relay (4 or 8 bytes, 01 on / 00 off).
"""

from __future__ import annotations

from labpower.backends.errors import OperationError
from labpower.backends.serial.port import SerialBackend, SerialPort
from labpower.backends.usbmatch import FT232R, UsbMatch

START = 0xFF
STATUS_ALL = b"\xff\x09\x00"
#: boards with up to this many relays answer the per-relay query, bigger ones ``FF 09 00``
SMALL_BOARD = 2


def switch_frame(channel: int, on: bool) -> bytes:
    if not 1 <= channel <= 8:
        raise ValueError(f"channel {channel} out of range 1..8")
    return bytes((START, channel, 0x01 if on else 0x00))


def query_frame(channel: int) -> bytes:
    if not 1 <= channel <= 8:
        raise ValueError(f"channel {channel} out of range 1..8")
    return bytes((START, channel, 0x03))


def parse_query_reply(data: bytes, channel: int) -> bool:
    """The state in ``FF 0n xx``. :raises OperationError: not the answer for ``channel``."""
    if len(data) != 3 or data[0] != START or data[1] != channel:
        raise OperationError(f"KMTronic answer {data.hex(' ')} is not a status of relay {channel}")
    if data[2] not in (0x00, 0x01):
        raise OperationError(f"KMTronic relay {channel} state {data[2]:#04x} is not 00/01")
    return data[2] == 0x01


def status_length(channels: int) -> int:
    """Bytes in the answer to ``FF 09 00``: 4 for boards up to 4 relays, else 8."""
    return 4 if channels <= 4 else 8


def parse_status(data: bytes, channels: int) -> dict[int, bool]:
    """States from the answer to ``FF 09 00``. :raises OperationError:"""
    if len(data) != status_length(channels):
        raise OperationError(
            f"KMTronic status of {len(data)} bytes, expected {status_length(channels)}"
        )
    for i, b in enumerate(data):
        if b not in (0x00, 0x01):
            raise OperationError(f"KMTronic status byte {b:#04x} of relay {i + 1} is not 00/01")
    return {ch: data[ch - 1] == 0x01 for ch in range(1, channels + 1)}


class KmtronicBackend(SerialBackend):
    readback = True
    max_channels = 8
    usb = UsbMatch("tty", "KMTronic USB relay board", chips=(FT232R,), product="KMTronic")

    async def set(self, channel: int, on: bool) -> None:
        self.check_channel(channel)
        frame = switch_frame(channel, on)
        await self.io(lambda port: port.command(frame))

    async def _query_one(self, port: SerialPort, channel: int) -> bool:
        await port.command(query_frame(channel))
        state = parse_query_reply(await port.read_exact(3), channel)
        port.expect_nothing_more()
        return state

    async def _query_all(self, port: SerialPort) -> dict[int, bool]:
        if self.channels <= SMALL_BOARD:
            return {ch: await self._query_one(port, ch) for ch in range(1, self.channels + 1)}
        await port.command(STATUS_ALL)
        answer = await port.read_exact(status_length(self.channels))
        states = parse_status(answer, self.channels)
        port.expect_nothing_more()
        return states

    async def get(self, channel: int) -> bool:
        self.check_channel(channel)
        if self.channels <= SMALL_BOARD:
            return await self.io(lambda port: self._query_one(port, channel))
        return (await self.io(self._query_all))[channel]

    async def get_all(self) -> dict[int, bool | None]:
        return dict(await self.io(self._query_all))
