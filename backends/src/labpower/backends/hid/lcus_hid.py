"""LCUS HID relay boards (5131:2007): ``A0 n op sum`` on the interrupt OUT endpoint.

The frame goes out behind report number 0 (hidapi's first byte; not sent to the board). The
board has no strings and no way to report its relays, so :meth:`LcusHidBackend.get` answers
None ("unknown") rather than repeat what was commanded. Options: ``path`` (hidraw node) and/or
``usb_port`` (``1-2.4``); identical boards can only be told apart by where they are plugged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labpower.backends.hid._base import BoardFacts, HidBackend
from labpower.backends.hid._select import BoardKind, Candidate, Selector, check_selector

KIND = BoardKind("LCUS HID", 0x5131, frozenset({0x2007}))


@dataclass(frozen=True, slots=True)
class LcusHidOptions:
    path: str | None = None
    usb_port: str | None = None

    def __post_init__(self) -> None:
        check_selector(KIND, self.selector)

    @property
    def selector(self) -> Selector:
        return Selector(None, self.path, self.usb_port)


def frame(channel: int, on: bool) -> list[int]:
    """The switch frame, report number first."""
    op = 1 if on else 0
    return [0x00, 0xA0, channel, op, (0xA0 + channel + op) & 0xFF]


class LcusHidBackend(HidBackend):
    readback = False
    max_channels = 8
    usb = KIND.usb_match("LCUS HID relay board", identity="none")
    Options = LcusHidOptions
    kind = KIND

    def selector(self) -> Selector:
        sel: Selector = self.options.selector
        return sel

    @classmethod
    def facts(cls, lib: Any, board: Candidate) -> BoardFacts:
        return BoardFacts(notes=("the board cannot report its state or relay count: set channels",))

    async def set(self, channel: int, on: bool) -> None:
        def send(dev: Any, _: object) -> None:
            if dev.write(frame(channel, on)) < 0:
                raise OSError("interrupt OUT write failed")

        await self.with_board(send)
