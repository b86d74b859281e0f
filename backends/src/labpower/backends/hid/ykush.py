"""Yepkit YKUSH, YKUSH3 and YKUSH XS: USB port power over HID, with read-back.

Commands are 64-byte OUT reports (hidapi puts report number 0 first), each answered by a
64-byte IN report whose byte 0 is the status (1 = done): ``1n`` port n up, ``0n`` down,
``2n`` get (reply byte 1 above 0x10 means up), ``F1`` port count. Channel n is downstream
port n. Options: ``serial`` (the USB serial, e.g. ``YK20001``), ``path`` (hidraw node) and/or
``usb_port``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labpower.backends.errors import HardwareTimeout, OperationError
from labpower.backends.hid._base import BoardFacts, HidBackend
from labpower.backends.hid._select import BoardKind, Candidate, Selector, check_selector

# YKUSH, YKUSH3, YKUSH XS (docs/hardware.md; pykush lists f0cd as a bootloader PID: either way a
# board that does not answer F1 is taken at the config's word)
KIND = BoardKind("YKUSH", 0x04D8, frozenset({0xF2F7, 0xF11B, 0xF0CD}), id_option="serial")
REPORT_SIZE = 64
STATUS_OK = 0x01
UP, DOWN, GET, PORT_COUNT = 0x10, 0x00, 0x20, 0xF1


@dataclass(frozen=True, slots=True)
class YkushOptions:
    serial: str | None = None
    path: str | None = None
    usb_port: str | None = None

    def __post_init__(self) -> None:
        if self.serial is not None and not self.serial.strip():
            raise ValueError("serial: must not be empty")
        check_selector(KIND, self.selector)

    @property
    def selector(self) -> Selector:
        return Selector(self.serial, self.path, self.usb_port)


class YkushBackend(HidBackend):
    readback = True
    max_channels = 4
    usb = KIND.usb_match("Yepkit YKUSH USB port switch", identity="usb")
    Options = YkushOptions
    kind = KIND

    def selector(self) -> Selector:
        sel: Selector = self.options.selector
        return sel

    @classmethod
    def facts(cls, lib: Any, board: Candidate) -> BoardFacts:
        """Its port count, from the model in the product string (asking would be a command)."""
        ports = {"YKUSH": 3, "YKUSH3": 3, "YKUSHXS": 1}.get(board.product.replace(" ", ""), 3)
        return BoardFacts(ports)

    def exchange(self, dev: Any, command: int) -> list[int]:
        """Send one command, return the board's reply.

        :raises HardwareTimeout: no reply within the deadline.
        :raises OSError: the board is gone.
        """
        if dev.write([0x00, command, *[0] * (REPORT_SIZE - 1)]) < 0:
            raise OSError("write failed")
        reply: list[int] = dev.read(REPORT_SIZE + 1, max(1, int(self.timeout * 1000)))
        if not reply:
            raise HardwareTimeout(self.timeout, f"waiting for the YKUSH reply to {command:02X}")
        return reply

    def check(self, dev: Any, board: Candidate) -> None:
        reply = self.exchange(dev, PORT_COUNT)
        # firmware 1.x does not know F1 (status not 1): trust the config then
        if len(reply) >= 2 and reply[0] == STATUS_OK and self.channels > reply[1]:
            raise OperationError(
                f"{board.path} is a {board.product or 'YKUSH'} with "
                f"{reply[1]} ports, but the config says channels = "
                f"{self.channels}"
            )

    def _port(self, dev: Any, channel: int) -> bool:
        reply = self.exchange(dev, GET | channel)
        if len(reply) < 2 or reply[0] != STATUS_OK:
            raise OperationError(
                f"YKUSH refused to report port {channel}: {bytes(reply[:4]).hex(' ')}"
            )
        return reply[1] > 0x10

    async def set(self, channel: int, on: bool) -> None:
        def switch(dev: Any, _: object) -> None:
            reply = self.exchange(dev, (UP if on else DOWN) | channel)
            if reply[0] != STATUS_OK:
                raise OperationError(
                    f"YKUSH refused to switch port {channel}: {bytes(reply[:4]).hex(' ')}"
                )

        await self.with_board(switch)

    async def get(self, channel: int) -> bool | None:
        return await self.with_board(lambda dev, _: self._port(dev, channel))

    async def get_all(self) -> dict[int, bool | None]:
        def ports(dev: Any, _: object) -> dict[int, bool | None]:
            return {ch: self._port(dev, ch) for ch in range(1, self.channels + 1)}

        return await self.with_board(ports)
