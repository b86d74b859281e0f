"""The backend contract: what a driver for one kind of relay board implements.

A backend instance is one board (a *device*) with ``channels`` outputs, numbered from 1.
Implement :meth:`Backend.set` and, where the board can tell, :meth:`Backend.get` with
``readback = True`` (and :meth:`Backend.switch` where a switch and its read-back can go to the
board in one exchange). Methods are async; a backend around a blocking library runs each blocking
call through :meth:`Backend.in_thread`. Locking, deadlines, re-opening and availability are not
the backend's job: :class:`labpower.backends.device.Device` wraps every call.

Rules every backend keeps:

- ``open()``, ``get()``, ``read()`` and ``close()`` never switch a relay.
- ``get()`` returns ``None`` when the board cannot tell; it never guesses.
- A board that is absent raises :class:`DeviceUnavailableError`; a board that answers
  nonsense raises :class:`OperationError`.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import anyio
import anyio.to_thread
from labpower.backends.errors import HardwareTimeout, NotSupportedError
from labpower.backends.options import NoOptions
from labpower.backends.usbmatch import UsbMatch

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Measurement:
    """What a board measured on one channel."""

    voltage: float
    current: float

    @property
    def apparent_power(self) -> float:
        return self.voltage * self.current


class Backend(ABC):
    """Base class of every backend. Subclasses are registered under the entry-point group
    ``labpower.backends``."""

    #: The board reports its real relay state through :meth:`get`.
    readback: ClassVar[bool] = False
    #: The board measures voltage and current through :meth:`read`.
    measures: ClassVar[bool] = False
    #: Frozen dataclass describing this backend's own config options.
    Options: ClassVar[type[Any]] = NoOptions
    #: Largest channel count a board of this kind can have.
    max_channels: ClassVar[int] = 64
    #: Seconds between health checks (:meth:`ping`) while the daemon runs; None: the board
    #: is checked when used or when hot-plug events say it came or went (USB boards). A
    #: network device sets it, so that one that stops answering is seen unavailable, and one
    #: that comes back available, without anyone calling.
    health_interval: float | None = None
    #: How the board shows on the USB bus (IDs, subsystem, identity), for
    #: ``labpower-discover`` and the udev rules; None for boards that are not USB devices.
    usb: ClassVar[UsbMatch | None] = None

    def __init__(self, name: str, channels: int, options: Any, timeout: float = 5.0) -> None:
        self.name = name
        self.channels = channels
        self.options = options
        #: The deadline of one hardware call, in seconds.
        self.timeout = timeout
        self.log = logging.LoggerAdapter(
            logging.getLogger(f"labpower.backends.{type(self).__module__.rpartition('.')[2]}"),
            {"device": name},
        )
        # Held by the worker thread itself, so a call abandoned at its deadline keeps the board
        # until it really returns and the next call cannot talk over it.
        self._board_lock = threading.Lock()

    @classmethod  # noqa: B027 - optional hook, empty by default
    def check_options(cls, channels: int, options: Any) -> None:
        """Checks of the options against the channel count, run when the config is loaded
        (options alone are checked by their dataclass).

        :raises OptionError: naming the option.
        """

    @classmethod
    def notes(cls, options: Any) -> list[str]:
        """What a user must know about a device configured with ``options`` that no check
        can refuse: ``labpowerd --check-config`` prints each (a GPIO line's level after the
        daemon dies, for one). None by default."""
        return []

    async def open(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Get ready to talk to the board (open its port). Must not switch anything.

        :raises DeviceUnavailableError: the board is not there.
        """

    @abstractmethod
    async def set(self, channel: int, on: bool) -> None:
        """Switch one channel.

        :raises DeviceUnavailableError, OperationError, HardwareTimeout:
        """

    async def get(self, channel: int) -> bool | None:
        """The channel's real state, or None when the board cannot tell."""
        return None

    async def switch(self, channel: int, on: bool) -> bool | None:
        """Switch one channel and read it back: the state the board reports afterwards, or
        None when it cannot tell. By default :meth:`set`, then :meth:`get` where the board
        reads back; a board that can take both in one exchange overrides this.

        :raises DeviceUnavailableError, OperationError, HardwareTimeout:
        """
        await self.set(channel, on)
        return await self.get(channel) if self.readback else None

    async def get_all(self) -> dict[int, bool | None]:
        """Every channel's state. Boards with one status query for all channels override
        this to ask once."""
        return {ch: await self.get(ch) for ch in range(1, self.channels + 1)}

    async def ping(self) -> None:
        """Check the board answers (a health check). Never switches anything. By default
        the state of every channel is read where the board can report it.

        :raises DeviceUnavailableError, OperationError, HardwareTimeout:
        """
        if self.readback:
            await self.get_all()

    async def read(self, channel: int) -> Measurement:
        """Measure the channel. :raises NotSupportedError: the board cannot."""
        raise NotSupportedError("read")

    async def close(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Release the board. Must not switch anything."""

    async def in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking library call in a worker thread, one at a time per board.

        The call is abandoned (not waited for) when the caller's deadline passes; the next
        call waits for the abandoned one to finish, at most :attr:`timeout` seconds.

        :raises HardwareTimeout: the board is still busy with an abandoned call.
        """
        lock, timeout = self._board_lock, self.timeout

        def locked() -> T:
            if not lock.acquire(timeout=timeout):
                raise HardwareTimeout(timeout, "waiting for the previous call to the board")
            try:
                return fn(*args)
            finally:
                lock.release()

        return await anyio.to_thread.run_sync(locked, abandon_on_cancel=True)
