"""Numato Lab USB relay modules (CDC-ACM, VID 2a19; the baud rate does not matter).

Commands are ASCII lines ending in ``\\r``. The board echoes the command, then sends
``\\n\\r``, the reply (if the command has one) followed by ``\\n\\r``, and the prompt ``>``::

    relay on 0\\r      ->  relay on 0\\n\\r>
    relay read 0\\r    ->  relay read 0\\n\\ron\\n\\r>
    relay readall\\r   ->  relay readall\\n\\r05\\n\\r>

Relay indexes are 0-based: ``0``-``9`` then ``A``-``V`` (up to 32 relays); 64-relay boards use
two decimal digits ``00``-``63``. Every answer is checked against the echo, so a garbled line
fails the call instead of being mistaken for a state. Opening sends nothing: the usual resync
(a bare ``\\r``) would execute whatever half a command sat in the board's line buffer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from labpower.backends.errors import OperationError
from labpower.backends.serial.port import SerialBackend, SerialOptions, SerialPort
from labpower.backends.usbmatch import UsbId, UsbMatch

PROMPT = b">"
_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUV"
_LINES = re.compile(r"[\r\n]+")
#: longest reply besides the echo (``relay readall`` of 64 relays is 16 hex digits)
_REPLY_LIMIT = 80


def relay_index(channel: int, channels: int) -> str:
    """The board's name for ``channel`` (1-based) on a board with ``channels`` relays."""
    if not 1 <= channel <= channels:
        raise ValueError(f"channel {channel} out of range 1..{channels}")
    if channels > len(_DIGITS):
        return f"{channel - 1:02d}"
    return _DIGITS[channel - 1]


def encode(command: str) -> bytes:
    return command.encode("ascii") + b"\r"


def parse_answer(command: str, data: bytes) -> str | None:
    """The reply line in the board's answer to ``command`` (None if it has none).

    ``data`` runs up to and including the prompt.

    :raises OperationError: no prompt, not ASCII, the echo differs, or extra lines.
    """
    if not data.endswith(PROMPT):
        raise OperationError(f"Numato answer without prompt: {data[-40:]!r}")
    try:
        text = data[:-1].decode("ascii")
    except UnicodeDecodeError as exc:
        raise OperationError(f"Numato answer is not ASCII: {data[:40]!r}") from exc
    lines = [line.strip() for line in _LINES.split(text) if line.strip()]
    if not lines or lines[0] != command:
        raise OperationError(
            f"Numato board echoed {lines[0] if lines else ''!r} instead of {command!r}"
        )
    if len(lines) > 2:
        raise OperationError(f"Numato answer to {command!r} has extra lines: {lines[1:]!r}")
    return lines[1] if len(lines) == 2 else None


def parse_state(reply: str | None) -> bool:
    """``on`` / ``off`` from ``relay read``. :raises OperationError:"""
    word = (reply or "").lower()
    if word not in ("on", "off"):
        raise OperationError(f"Numato relay state {reply!r} is neither on nor off")
    return word == "on"


def parse_mask(reply: str | None, channels: int) -> dict[int, bool]:
    """States from the hex mask of ``relay readall`` (bit 0 = relay 0).

    :raises OperationError: not hex, or too short for ``channels``.
    """
    text = reply or ""
    if not re.fullmatch(r"[0-9A-Fa-f]+", text):
        raise OperationError(f"Numato relay mask {reply!r} is not hexadecimal")
    if len(text) * 4 < channels:
        raise OperationError(f"Numato relay mask {reply!r} is too short for {channels} relays")
    mask = int(text, 16)
    return {ch: bool(mask >> (ch - 1) & 1) for ch in range(1, channels + 1)}


async def exchange(port: SerialPort, command: str) -> str | None:
    """Send ``command`` and return its reply line. :raises OperationError, HardwareTimeout:"""
    await port.command(encode(command))
    return parse_answer(command, await port.read_until(PROMPT, len(command) + _REPLY_LIMIT))


@dataclass(frozen=True, slots=True)
class NumatoOptions(SerialOptions):
    baud: int = 19200


class NumatoBackend(SerialBackend):
    readback = True
    usb = UsbMatch(
        "tty", "Numato Lab relay module", ids=(UsbId(0x2A19),), identity="usb", interface=0
    )
    Options: ClassVar[type[NumatoOptions]] = NumatoOptions
    max_channels = 64

    def _index(self, channel: int) -> str:
        self.check_channel(channel)
        return relay_index(channel, self.channels)

    async def set(self, channel: int, on: bool) -> None:
        command = f"relay {'on' if on else 'off'} {self._index(channel)}"
        answer = await self.io(lambda port: exchange(port, command))
        if answer is not None:
            raise OperationError(f"Numato board answered {answer!r} to {command!r}")

    async def get(self, channel: int) -> bool:
        command = f"relay read {self._index(channel)}"
        return parse_state(await self.io(lambda port: exchange(port, command)))

    async def get_all(self) -> dict[int, bool | None]:
        reply = await self.io(lambda port: exchange(port, "relay readall"))
        return dict(parse_mask(reply, self.channels))
