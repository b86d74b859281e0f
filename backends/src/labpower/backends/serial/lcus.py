"""LCUS-1/2/4/8 relay boards (CH340 USB serial, 1a86:7523, 9600 8N1).

Switching is a 4-byte frame ``A0 channel op checksum`` (op 00 off, 01 on, checksum = sum of the
first three bytes & FF); the board does not answer it. The status query is one byte, ``FF``,
and firmware differs in what it answers (the *status dialect*):

``ascii``     one line per channel, ``CH1: OFF\\r\\n`` ...
``raw``       one byte per channel, 00 off / 01 on
``feedback``  one frame per channel, ``A0 channel state checksum``
``none``      nothing at all (often LCUS-1): the state cannot be read back

With ``status = "auto"`` (the default) the backend sends ``FF`` once when it opens the port
and classifies the answer; that query switches nothing. A silent board gets ``readback``
false: its targets report the commanded state, not verified. A dialect once heard is kept
across re-opens (a hung board must not be mistaken for a silent one); silence is probed again
at the next open.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Literal

from labpower.backends.errors import OperationError, OptionError
from labpower.backends.serial.port import SerialBackend, SerialOptions, SerialPort
from labpower.backends.usbmatch import CH340, UsbMatch

Dialect = Literal["ascii", "raw", "feedback", "none"]

HEADER = 0xA0
STATUS_QUERY = b"\xff"
OFF, ON = 0x00, 0x01
#: longest ASCII status line we accept, and lines we skip before giving up
_LINE_LIMIT = 64
_ASCII_LINE = re.compile(rb"\s*CH\s*(\d+)\s*[:=]?\s*(ON|OFF)\s*", re.IGNORECASE)


def checksum(*values: int) -> int:
    return sum(values) & 0xFF


def switch_frame(channel: int, on: bool) -> bytes:
    """The frame that switches ``channel`` (1-based): ch1 on is ``A0 01 01 A2``."""
    if not 1 <= channel <= 0xFE:
        raise ValueError(f"channel {channel} out of range")
    op = ON if on else OFF
    return bytes((HEADER, channel, op, checksum(HEADER, channel, op)))


def parse_frame(frame: bytes) -> tuple[int, bool]:
    """``(channel, on)`` of a feedback frame ``A0 ch state sum``.

    :raises OperationError: not a valid frame.
    """
    if len(frame) != 4 or frame[0] != HEADER:
        raise OperationError(f"not an LCUS frame: {frame.hex(' ')}")
    if checksum(frame[0], frame[1], frame[2]) != frame[3]:
        raise OperationError(f"LCUS frame with a wrong checksum: {frame.hex(' ')}")
    if frame[2] not in (OFF, ON):
        raise OperationError(f"LCUS frame with unknown state {frame[2]:#04x}: {frame.hex(' ')}")
    return frame[1], frame[2] == ON


def _complete(states: dict[int, bool], channels: int, what: str) -> dict[int, bool]:
    missing = [ch for ch in range(1, channels + 1) if ch not in states]
    if missing:
        raise OperationError(f"{what} has no state for channel {missing[0]}")
    return {ch: states[ch] for ch in range(1, channels + 1)}


def parse_ascii_line(line: bytes) -> tuple[int, bool]:
    """``(channel, on)`` of one ASCII status line (``CH1: OFF``; spacing and case vary by
    firmware). :raises OperationError: not a status line."""
    m = _ASCII_LINE.fullmatch(line)
    if m is None:
        raise OperationError(f"not an LCUS status line: {line[:40]!r}")
    return int(m[1]), m[2].upper() == b"ON"


def parse_ascii(lines: list[bytes], channels: int) -> dict[int, bool]:
    """States from ASCII status lines. :raises OperationError: a line is not a status line,
    or a channel is missing."""
    states = dict(parse_ascii_line(line) for line in lines)
    return _complete(states, channels, "the ASCII status")


def parse_raw(data: bytes, channels: int) -> dict[int, bool]:
    """States from one byte per channel. :raises OperationError: a byte is not 00/01."""
    if len(data) < channels:
        raise OperationError(f"raw status has {len(data)} bytes for {channels} channels")
    for i, b in enumerate(data[:channels]):
        if b not in (OFF, ON):
            raise OperationError(f"raw status byte {b:#04x} of channel {i + 1} is not 00/01")
    return {ch: data[ch - 1] == ON for ch in range(1, channels + 1)}


def parse_feedback(data: bytes, channels: int) -> dict[int, bool]:
    """States from a run of ``A0 ch state sum`` frames. :raises OperationError:"""
    if len(data) % 4:
        raise OperationError(f"feedback status of {len(data)} bytes is not whole frames")
    states: dict[int, bool] = {}
    for i in range(0, len(data), 4):
        channel, on = parse_frame(data[i : i + 4])
        states[channel] = on
    return _complete(states, channels, "the feedback status")


def dialect_of(first: int) -> Dialect | None:
    """The dialect whose answer to ``FF`` starts with byte ``first``; None if unknown."""
    if first in (OFF, ON):
        return "raw"
    if first == HEADER:
        return "feedback"
    if first in b"Cc\r\n ":
        return "ascii"
    return None


async def read_status(port: SerialPort, dialect: Dialect, channels: int) -> dict[int, bool]:
    """Read the board's answer to ``FF`` (already sent) in ``dialect``.

    :raises OperationError, HardwareTimeout:
    """
    if dialect == "ascii":
        lines: list[bytes] = []
        while len(lines) < channels:
            line = (await port.read_until(b"\n", _LINE_LIMIT)).strip()
            if line:
                parse_ascii_line(line)  # fail at the first bad line, not at the deadline
                lines.append(line)
        return parse_ascii(lines, channels)
    if dialect == "raw":
        return parse_raw(await port.read_exact(channels), channels)
    if dialect == "feedback":
        return parse_feedback(await port.read_exact(4 * channels), channels)
    raise OperationError("this board does not report its state")


@dataclass(frozen=True, slots=True)
class LcusOptions(SerialOptions):
    #: these boards drop commands that come quicker than ~50-100 ms after the previous one
    gap: float = 0.1
    #: status dialect: detect it, or one of ascii, raw, feedback, none
    status: Literal["auto", "ascii", "raw", "feedback", "none"] = "auto"
    #: how long detection waits for an answer to ``FF`` before deciding the board is silent
    probe_timeout: float = 0.5

    def __post_init__(self) -> None:
        SerialOptions.__post_init__(self)
        if not 0 < self.probe_timeout <= 60:
            raise OptionError(
                "probe_timeout", f"must be more than 0 and at most 60 s, not {self.probe_timeout}"
            )


class LcusBackend(SerialBackend):
    readback = True
    usb = UsbMatch("tty", "LCUS relay board", chips=(CH340,))
    Options: ClassVar[type[LcusOptions]] = LcusOptions
    max_channels = 8

    def __init__(
        self, name: str, channels: int, options: LcusOptions, timeout: float = 5.0
    ) -> None:
        super().__init__(name, channels, options, timeout)
        #: the status dialect; None until detected
        self.dialect: Dialect | None = None if options.status == "auto" else options.status
        if self.dialect == "none":
            self.readback = False  # type: ignore[misc]  # this instance cannot read back

    async def _opened(self) -> None:
        if self.dialect not in (None, "none") or self.options.status != "auto":
            return
        dialect = await self.io(self._detect)
        if dialect != self.dialect:
            self.log.info(
                "status dialect: %s%s",
                dialect,
                "" if dialect != "none" else " (state cannot be read back)",
            )
        self.dialect = dialect
        self.readback = dialect != "none"  # type: ignore[misc]  # per board, not per class

    async def _detect(self, port: SerialPort) -> Dialect:
        """Ask ``FF`` once and classify the answer. Switches nothing.

        :raises OperationError: the board answered something no dialect starts with, or
            a known start followed by a malformed rest.
        """
        await port.command(STATUS_QUERY)
        probe = min(self.options.probe_timeout, self.read_timeout)
        if not await port.wait_for_data(probe):
            return "none"
        first = port.peek()[0]
        dialect = dialect_of(first)
        if dialect is None:
            raise OperationError(
                f"unrecognised answer to the status query: {port.peek()[:16].hex(' ')}"
            )
        await read_status(port, dialect, self.channels)
        return dialect

    async def set(self, channel: int, on: bool) -> None:
        self.check_channel(channel)
        frame = switch_frame(channel, on)
        await self.io(lambda port: port.command(frame))

    async def get(self, channel: int) -> bool | None:
        self.check_channel(channel)
        return (await self.get_all())[channel]

    async def switch(self, channel: int, on: bool) -> bool | None:
        dialect = self.dialect
        if self.options.gap or dialect is None or dialect == "none":
            return await super().switch(channel, on)
        # A board that takes commands back to back (gap = 0) gets the switch frame and the
        # status query in one write: one exchange, one USB transfer.
        self.check_channel(channel)
        command = switch_frame(channel, on) + STATUS_QUERY

        async def exchange(port: SerialPort) -> dict[int, bool]:
            await port.command(command)
            return await read_status(port, dialect, self.channels)

        return (await self.io(exchange))[channel]

    async def get_all(self) -> dict[int, bool | None]:
        dialect = self.dialect
        if dialect is None or dialect == "none":
            return dict.fromkeys(range(1, self.channels + 1))

        async def query(port: SerialPort) -> dict[int, bool]:
            await port.command(STATUS_QUERY)
            return await read_status(port, dialect, self.channels)

        return dict(await self.io(query))
