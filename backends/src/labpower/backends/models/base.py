"""What every board model shares: the relays, and every switching command it received."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import ClassVar, NamedTuple


class Switch(NamedTuple):
    """One switching command a board received: relay ``channel`` (1-based) to ``on``."""

    channel: int
    on: bool


class BoardModel:
    """A board's firmware, without I/O. Subclasses parse the bytes the board receives in
    :meth:`handle` and apply switches with :meth:`switch`.

    Everything a test checks is public: :attr:`relays` (the real relay states) and
    :attr:`switches` (every switching command, applied or not).
    """

    kind: ClassVar[str] = ""
    max_channels: ClassVar[int] = 8

    def __init__(self, channels: int = 4) -> None:
        if not 1 <= channels <= self.max_channels:
            raise ValueError(
                f"{self.kind} boards have 1..{self.max_channels} channels, not {channels}"
            )
        self.channels = channels
        #: relay states, channel 1 first
        self.relays: dict[int, bool] = dict.fromkeys(range(1, channels + 1), False)
        #: every switching command received, in order
        self.switches: list[Switch] = []
        #: called with a short text for every switching command (the CLI prints them)
        self.on_event: Callable[[str], None] | None = None
        #: a hung board still takes bytes in, but acts on none
        self.hung = False
        self._ignore = 0
        self._lock = threading.RLock()

    def handle(self, data: bytes) -> list[tuple[int, bytes]]:
        """Parse received bytes (keeping partial commands). Returns, in order, for each
        complete command: (its length in bytes, the answer to send)."""
        raise NotImplementedError

    def garbage(self, answer: bytes) -> bytes:
        """What a garbling board sends instead of ``answer``."""
        return b"Z" * max(len(answer) - 2, 1) + b"\r\n"

    def _reset_parser(self) -> None:
        """Forget partial commands."""

    def power_loss(self) -> None:
        """The board lost its power: every relay falls off, partial commands are lost."""
        with self._lock:
            self.relays = dict.fromkeys(self.relays, False)
            self._reset_parser()

    def ignore_next_switch(self, count: int = 1) -> None:
        """Let the next ``count`` switching commands change nothing (as a broken relay)."""
        with self._lock:
            self._ignore += count

    def switch(self, channel: int, on: bool) -> None:
        """Record a switching command and apply it (unless told to ignore it)."""
        with self._lock:
            self.switches.append(Switch(channel, on))
            ignored = self._ignore > 0 or self.hung
            if self._ignore > 0 and not self.hung:
                self._ignore -= 1
            if not ignored:
                self.relays[channel] = on
        if self.on_event is not None:
            self.on_event(
                f"channel {channel} {'on' if on else 'off'}{' (ignored)' if ignored else ''}"
            )

    def mask(self) -> int:
        """The relay states as a bit mask, bit 0 = relay 1."""
        return sum(1 << (ch - 1) for ch, on in self.relays.items() if on)
