"""The serial relay boards, as their firmware sees the bytes (docs/hardware.md, "Serial
boards"). The simulators (:mod:`labpower.backends.sim.boards`) put them on ptys; the VM tier
behind QEMU's usb-serial device."""

from __future__ import annotations

import math
from typing import ClassVar, Literal

from labpower.backends.models.base import BoardModel
from labpower.backends.models.usb import lcus_frame, lcus_state_frame

SimDialect = Literal["ascii", "raw", "feedback", "silent"]
DIALECTS: tuple[SimDialect, ...] = ("ascii", "raw", "feedback", "silent")


class LcusModel(BoardModel):
    """An LCUS board. ``dialect`` is what it answers to the status query ``FF``:
    ``ascii`` lines, ``raw`` bytes, ``feedback`` frames, or nothing (``silent``).
    The ``feedback`` firmware also takes ops 02/03 (switch and answer), 04 (toggle) and
    05 (query), answering ``A0 ch state sum``. Frames with a wrong checksum are ignored."""

    kind = "lcus"

    def __init__(
        self,
        *,
        channels: int = 4,
        dialect: SimDialect = "ascii",
    ) -> None:
        if dialect not in DIALECTS:
            raise ValueError(f"dialect must be one of {', '.join(DIALECTS)}, not {dialect!r}")
        super().__init__(channels)
        self.dialect: SimDialect = dialect
        self._buf = bytearray()

    def _reset_parser(self) -> None:
        self._buf.clear()

    def status(self) -> bytes:
        """The answer to ``FF``."""
        states = [self.relays[ch] for ch in range(1, self.channels + 1)]
        if self.dialect == "ascii":
            return b"".join(
                b"CH%d: %s\r\n" % (ch, b"ON" if on else b"OFF") for ch, on in enumerate(states, 1)
            )
        if self.dialect == "raw":
            return bytes(int(on) for on in states)
        if self.dialect == "feedback":
            return b"".join(self._frame_of(ch) for ch in range(1, self.channels + 1))
        return b""

    def _frame_of(self, channel: int) -> bytes:
        return lcus_state_frame(channel, self.relays[channel])

    def handle(self, data: bytes) -> list[tuple[int, bytes]]:
        buf = self._buf
        buf += data
        out: list[tuple[int, bytes]] = []
        while buf:
            if buf[0] == 0xFF:
                del buf[0]
                out.append((1, self.status()))
            elif buf[0] == 0xA0:
                if len(buf) < 4:
                    break
                frame = bytes(buf[:4])
                del buf[:4]
                out.append((4, self._command(frame)))
            else:
                del buf[0]  # line noise: the board skips to the next A0/FF
                out.append((1, b""))
        return out

    def _command(self, frame: bytes) -> bytes:
        parsed = lcus_frame(frame, self.channels)
        if parsed is None:
            return b""
        channel, op = parsed
        if op in (0x00, 0x01):
            self.switch(channel, op == 0x01)
            return b""
        if self.dialect != "feedback":
            return b""
        if op in (0x02, 0x03):
            self.switch(channel, op == 0x03)
        elif op == 0x04:
            self.switch(channel, not self.relays[channel])
        elif op != 0x05:
            return b""
        return self._frame_of(channel)


_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUV"


class NumatoModel(BoardModel):
    """A Numato USB relay module: echoes every character, answers each ``\\r``-terminated
    command with ``\\n\\r`` + reply + ``\\n\\r`` (when it has one) and the prompt ``>``."""

    kind = "numato"
    max_channels = 64

    def __init__(
        self,
        *,
        channels: int = 8,
        version: str = "00000008",
        board_id: str = "00000000",
    ) -> None:
        super().__init__(channels)
        self.version = version
        self.board_id = board_id
        self._line = bytearray()

    def _reset_parser(self) -> None:
        self._line.clear()

    def garbage(self, answer: bytes) -> bytes:
        tail = b"\n\r>" if answer.endswith(b">") else b""
        return b"Z" * max(len(answer) - len(tail), 1) + tail

    def handle(self, data: bytes) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        echo = bytearray()
        for byte in data:
            if byte == 0x0D:
                if echo:
                    out.append((len(echo), bytes(echo)))
                    echo.clear()
                line = self._line.decode("ascii", "replace")
                self._line.clear()
                reply = self._run(line.strip())
                out.append((1, b"\n\r" + (reply + b"\n\r" if reply else b"") + b">"))
            elif byte == 0x0A:
                out.append((1, b""))
            else:
                if len(self._line) < 256:
                    self._line.append(byte)
                echo.append(byte)
        if echo:
            out.append((len(echo), bytes(echo)))
        return out

    def _channel(self, index: str) -> int | None:
        if self.channels > len(_DIGITS):
            ok = len(index) == 2 and index.isdigit()
            channel = int(index) + 1 if ok else 0
        else:
            pos = _DIGITS.find(index.upper()) if len(index) == 1 else -1
            channel = pos + 1
        return channel if 1 <= channel <= self.channels else None

    def hex_mask(self) -> str:
        """The answer to ``relay readall``: the mask in hex, a digit per four relays."""
        return f"{self.mask():0{max(2, math.ceil(self.channels / 4))}X}"

    def _run(self, line: str) -> bytes:
        words = line.split()
        if words == ["ver"]:
            return self.version.encode()
        if words == ["id", "get"]:
            return self.board_id.encode()
        if len(words) == 3 and words[:2] == ["id", "set"] and len(words[2]) == 8:
            self.board_id = words[2]
            return b""
        if words == ["reset"]:
            for ch in self.relays:
                self.switch(ch, False)
            return b""
        if len(words) < 2 or words[0] != "relay":
            return b""
        if words[1:] == ["readall"]:
            return self.hex_mask().encode()
        if len(words) != 3:
            return b""
        if words[1] == "writeall":
            try:
                value = int(words[2], 16)
            except ValueError:
                return b""
            for ch in self.relays:
                self.switch(ch, bool(value >> (ch - 1) & 1))
            return b""
        channel = self._channel(words[2])
        if channel is None:
            return b""
        if words[1] in ("on", "off"):
            self.switch(channel, words[1] == "on")
            return b""
        if words[1] == "read":
            return b"on" if self.relays[channel] else b"off"
        return b""


class KmtronicModel(BoardModel):
    """A KMTronic USB relay board: ``FF 0n 01/00`` switch, ``FF 0n 03`` -> ``FF 0n st``,
    ``FF 09 00`` -> one byte per relay (4 for boards up to 4 relays, else 8)."""

    kind = "kmtronic"

    def __init__(
        self,
        *,
        channels: int = 4,
    ) -> None:
        super().__init__(channels)
        self._buf = bytearray()

    def _reset_parser(self) -> None:
        self._buf.clear()

    def handle(self, data: bytes) -> list[tuple[int, bytes]]:
        buf = self._buf
        buf += data
        out: list[tuple[int, bytes]] = []
        while buf:
            if buf[0] != 0xFF:
                del buf[0]
                out.append((1, b""))
                continue
            if len(buf) < 3:
                break
            _, channel, op = buf[:3]
            del buf[:3]
            answer = b""
            if 1 <= channel <= self.channels and op in (0x00, 0x01):
                self.switch(channel, op == 0x01)
            elif 1 <= channel <= self.channels and op == 0x03:
                answer = bytes((0xFF, channel, int(self.relays[channel])))
            elif channel == 0x09 and op == 0x00:
                size = 4 if self.channels <= 4 else 8
                answer = bytes(int(self.relays.get(ch, False)) for ch in range(1, size + 1))
            out.append((3, answer))
        return out


class DevantechModel(BoardModel):
    """A Devantech USB-RLY board: one-byte commands (``5B`` -> state byte, ``65``-``6C`` on,
    ``6F``-``76`` off, ``64``/``6E`` all, ``5C`` + byte set all, ``5A`` -> 2-byte version)."""

    kind = "devantech"
    module_id: ClassVar[int] = 8

    def __init__(
        self,
        *,
        channels: int = 8,
        software_version: int = 1,
    ) -> None:
        super().__init__(channels)
        self.software_version = software_version
        self._set_all = False

    def _reset_parser(self) -> None:
        self._set_all = False

    def _apply_mask(self, mask: int) -> None:
        for ch in self.relays:
            self.switch(ch, bool(mask >> (ch - 1) & 1))

    def handle(self, data: bytes) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        for byte in data:
            answer = b""
            if self._set_all:
                self._set_all = False
                self._apply_mask(byte)
            elif byte == 0x5A:
                answer = bytes((self.module_id, self.software_version))
            elif byte == 0x5B:
                answer = bytes((self.mask(),))
            elif byte == 0x5C:
                self._set_all = True
            elif byte in (0x64, 0x6E):
                self._apply_mask(0xFF if byte == 0x64 else 0x00)
            elif 0x65 <= byte <= 0x6C and byte - 0x64 <= self.channels:
                self.switch(byte - 0x64, True)
            elif 0x6F <= byte <= 0x76 and byte - 0x6E <= self.channels:
                self.switch(byte - 0x6E, False)
            out.append((1, answer))
        return out
