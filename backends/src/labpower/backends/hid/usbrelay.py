"""dcttech / V-USB "USBRelayN" boards (16c0:05df) over HID feature reports.

Everything is feature report 0 with 8 data bytes (the report number goes first through
hidapi): relay n on ``FF n``, off ``FD n``, set the board's 5-character ID ``FA c1..c5``. A
GET_REPORT returns the ID in bytes 0-4 and the relay mask in byte 7 (bit 0 = relay 1); through
hidapi on Linux the report number comes first and shifts that by one, other hidapi builds
strip it: :func:`parse_report` takes both. The state is read back after every switch.

Options: ``id`` (the board ID), ``path`` (hidraw node) and/or ``usb_port`` (``1-2.4``); at
least one. Factory IDs are often duplicated: :func:`set_board_id` (``labpower-discover
--set-id``) writes a new one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from labpower.backends.errors import BackendError, OperationError, OptionError
from labpower.backends.hid import _lib
from labpower.backends.hid._base import BoardFacts, HidBackend
from labpower.backends.hid._select import (
    BoardKind,
    Candidate,
    Selector,
    candidates,
    check_selector,
    opened,
    select,
)

KIND = BoardKind("USBRelay", 0x16C0, frozenset({0x05DF}), product_prefix="USBRelay", id_option="id")
REPORT = 0
REPORT_SIZE = 8
ON, OFF, SET_ID = 0xFF, 0xFD, 0xFA
_ID = re.compile(r"[!-~]{1,5}")


def check_id(value: str, key: str = "id") -> None:
    """:raises OptionError: not 1-5 printable ASCII characters without spaces."""
    if not _ID.fullmatch(value):
        raise OptionError(
            key, f"a board ID is 1 to 5 printable ASCII characters without spaces, not {value!r}"
        )


@dataclass(frozen=True, slots=True)
class UsbRelayOptions:
    id: str | None = None
    path: str | None = None
    usb_port: str | None = None

    def __post_init__(self) -> None:
        if self.id is not None:
            check_id(self.id)
        check_selector(KIND, self.selector)

    @property
    def selector(self) -> Selector:
        return Selector(self.id, self.path, self.usb_port)


def parse_report(data: Sequence[int]) -> tuple[str, int]:
    """(ID, relay mask) from a feature report as hidapi returned it, with or without the
    report number in front.

    :raises OperationError: too short to be this board's report.
    """
    raw = bytes(data)
    if len(raw) > REPORT_SIZE and raw[0] == REPORT:
        raw = raw[1:]
    if len(raw) < REPORT_SIZE:
        raise OperationError(f"feature report too short: {raw.hex(' ') or 'empty'}")
    return raw[:5].rstrip(b"\0").decode("latin-1"), raw[7]


def read_report(dev: Any) -> tuple[str, int]:
    """GET_REPORT on an opened board. :raises OSError, OperationError:"""
    return parse_report(dev.get_feature_report(REPORT, REPORT_SIZE + 1))


def _send(dev: Any, payload: Sequence[int]) -> None:
    report = [REPORT, *payload, *[0] * (REPORT_SIZE - len(payload))]
    if dev.send_feature_report(report) < 0:
        raise OSError("send_feature_report failed")


def relay_count(board: Candidate) -> int | None:
    """N of the product string ``USBRelayN``."""
    digits = board.product.removeprefix(KIND.product_prefix)
    return int(digits) if digits.isdigit() else None


class UsbRelayBackend(HidBackend):
    readback = True
    max_channels = 8
    usb = KIND.usb_match("dcttech USBRelay board", identity="board")
    Options = UsbRelayOptions
    kind = KIND

    def selector(self) -> Selector:
        sel: Selector = self.options.selector
        return sel

    def read_id(self, dev: Any) -> str:
        return read_report(dev)[0]

    @classmethod
    def id_reader(cls) -> Callable[[Any], str]:
        return lambda dev: read_report(dev)[0]

    @classmethod
    def duplicate_hint(cls, board: Candidate) -> str:
        return (
            "; give it its own ID with "
            f"`labpower-discover --set-id NEW --usb-port {board.usb_port}`"
        )

    @classmethod
    def facts(cls, lib: Any, board: Candidate) -> BoardFacts:
        """Its relay count (from the product string) and states (GET_REPORT, a read)."""
        n = relay_count(board) or 1
        try:
            with opened(lib, board.path, board.raw_path) as dev:
                mask: int | None = read_report(dev)[1]
        except (BackendError, OSError, ValueError):
            mask = None
        state = None if mask is None else {ch: bool(mask >> (ch - 1) & 1) for ch in range(1, n + 1)}
        return BoardFacts(n, state)

    def check(self, dev: Any, board: Candidate) -> None:
        relays = relay_count(board)
        if relays is not None and self.channels > relays:
            raise OperationError(
                f"{board.path} is a {board.product} with {relays} relays, "
                f"but the config says channels = {self.channels}"
            )

    async def set(self, channel: int, on: bool) -> None:
        await self.with_board(lambda dev, _: _send(dev, [ON if on else OFF, channel]))

    async def get(self, channel: int) -> bool | None:
        return (await self.get_all())[channel]

    async def get_all(self) -> dict[int, bool | None]:
        _, mask = await self.with_board(lambda dev, _: read_report(dev))
        return {ch: bool(mask >> (ch - 1) & 1) for ch in range(1, self.channels + 1)}


def set_board_id(selector: Selector, new_id: str) -> Candidate:
    """Write a new ID into the one board ``selector`` picks; it keeps it across power loss.
    Switches no relay. Refuses when the selector matches several boards, and when another
    board present has ``new_id`` already.

    :returns: the board, as found before the change.
    :raises OptionError: ``new_id`` is not a valid ID.
    :raises AmbiguousBoardError: the selector matches more than one board.
    :raises DeviceUnavailableError: no board matches.
    :raises OperationError: the board did not keep the new ID.
    """
    check_id(new_id, "new ID")
    lib = _lib.hidapi()
    board = select(lib, KIND, selector, lambda dev: read_report(dev)[0])
    for other in candidates(lib, KIND, lambda dev: read_report(dev)[0]):
        if other.path != board.path and other.id == new_id:
            raise OperationError(
                f"{other.describe()} has ID {new_id!r} already: pick "
                "another, IDs must tell boards apart"
            )
    with opened(lib, board.path, board.raw_path) as dev:
        _send(dev, [SET_ID, *new_id.encode("ascii").ljust(5, b"\0")])
        got, _ = read_report(dev)
    if got != new_id:
        raise OperationError(f"{board.path} reports ID {got!r} after writing {new_id!r}")
    return board
