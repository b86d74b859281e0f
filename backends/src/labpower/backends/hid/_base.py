"""What the HID backends share: finding the board and talking to it, one call at a time.

Nothing is held open or claimed between calls: every operation opens the board's hidraw node,
does its transfers and closes it again, in one worker-thread call under the device's deadline.
Other programs can use the board meanwhile, and usbhid stays bound.

The board is looked up in full (enumerate, read the ID of every candidate, refuse duplicates)
when the device is opened. Later calls enumerate again (sysfs only, no transfer) and reuse
that board while it is still at the same hidraw node and USB port with the same identity;
boards selected by an ID kept in the board are asked for it before every transfer. When the
board is not where it was (replugged under a new hidraw node or devnum), the call looks it up
in full again, so it is found without restarting the daemon. None of this switches a relay.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from labpower.backends.base import Backend
from labpower.backends.errors import BackendError, DeviceUnavailableError
from labpower.backends.hid import _lib
from labpower.backends.hid._select import (
    BoardKind,
    Candidate,
    Selector,
    candidates,
    opened,
    select,
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BoardFacts:
    """What ``labpower-discover`` learns of one board present, without switching it."""

    #: its outputs, where the board tells (None: the config must say)
    channels: int | None = None
    #: its outputs' states, where they could be read
    state: dict[int, bool] | None = None
    notes: tuple[str, ...] = ()


class HidBackend(Backend):
    """Base of the HID backends. Subclasses set :attr:`kind` and implement :meth:`selector`."""

    kind: ClassVar[BoardKind]

    @classmethod
    def id_reader(cls) -> Callable[[Any], str] | None:
        """For discovery: what reads a board's own ID from an opened device, for boards that
        keep one outside the USB serial (None: the USB serial is the ID). Never switches."""
        return None

    @classmethod
    def duplicate_hint(cls, board: Candidate) -> str:
        """For discovery: what to do about a board whose ID another board has too."""
        return ""

    @classmethod
    def facts(cls, lib: Any, board: Candidate) -> BoardFacts:
        """For discovery: what the board tells of itself (reads only, never switches)."""
        return BoardFacts()

    def __init__(self, name: str, channels: int, options: Any, timeout: float = 5.0) -> None:
        super().__init__(name, channels, options, timeout)
        #: the board found by the last full lookup
        self._board: Candidate | None = None

    def selector(self) -> Selector:
        """The match keys from this device's options."""
        raise NotImplementedError

    def read_id(self, dev: Any) -> str:
        """Read the board's own ID from an opened device; only for boards that keep one
        outside the USB serial. Must not switch anything."""
        raise NotImplementedError

    def _uses_read_id(self) -> bool:
        return type(self).read_id is not HidBackend.read_id

    def _lib(self) -> Any:
        try:
            return _lib.hidapi()
        except ImportError as exc:
            raise DeviceUnavailableError(
                f"hidapi is not installed ({exc}): install labpower-backends[hid]"
            ) from exc

    def _find(self, lib: Any) -> Candidate:
        return select(
            lib, self.kind, self.selector(), self.read_id if self._uses_read_id() else None
        )

    def verify_id(self, dev: Any) -> bool:
        """Whether the opened board still has the ID the selector asks for."""
        want = self.selector().id
        return want is None or not self._uses_read_id() or self.read_id(dev) == want

    def _still_there(self, lib: Any, board: Candidate) -> bool:
        now = candidates(lib, self.kind)
        return any(
            c.raw_path == board.raw_path
            and c.usb_port == board.usb_port
            and c.product_id == board.product_id
            and c.serial == board.serial
            for c in now
        )

    async def with_board(self, fn: Callable[[Any, Candidate], T]) -> T:
        """Find the board, open it, run ``fn(device, candidate)`` in a worker thread, close.

        :raises DeviceUnavailableError: the board is absent, ambiguous, or vanished mid-call.
        """

        def call() -> T:
            lib = self._lib()
            cached = self._board
            for board in ([cached] if cached is not None else []) + [None]:
                if board is not None and not self._still_there(lib, board):
                    continue
                if board is None:
                    board = self._find(lib)
                with opened(lib, board.path, board.raw_path) as dev:
                    try:
                        if not self.verify_id(dev):
                            if board is cached:
                                continue  # another board took its node: look again
                            raise DeviceUnavailableError(
                                f"{board.path} changed its ID while being opened"
                            )
                        self._board = board
                        return fn(dev, board)
                    except BackendError:
                        raise  # HardwareTimeout is an OSError too: keep it what it is
                    except (OSError, ValueError) as exc:
                        # hidapi says "gone" only as an I/O error: the board was unplugged
                        # or reset under us
                        self._board = None
                        raise DeviceUnavailableError(f"{board.path}: {exc}") from exc
            raise AssertionError("unreachable: the full lookup returns or raises")

        return await self.in_thread(call)

    async def open(self) -> None:
        """Check the board is there (and unambiguous); reads at most its ID.

        :raises DeviceUnavailableError:
        """
        self._board = None
        await self.with_board(self.check)

    async def close(self) -> None:
        self._board = None

    def check(self, dev: Any, board: Candidate) -> None:
        """Called on the opened board at :meth:`open`; may refuse a board that does not fit
        the config (e.g. fewer relays than channels). Must not switch anything."""
