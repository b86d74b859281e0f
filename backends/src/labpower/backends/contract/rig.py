"""What the contract suite needs from a backend's test rig: a board it can watch and upset.

A rig stands in for one board of one backend kind: a simulator on a pty, a fake at the
hidapi/pyusb boundary, a real local server (HTTP, SNMP, Modbus). It records every switching
command the board receives, whoever sent it, so that the suite can tell that opening, reading
or closing sent none; and it can make the board hang, answer nonsense, vanish and come back.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Any

from labpower.backends.base import Backend
from labpower.backends.models import Switch

__all__ = ["Rig", "Switch"]


class Rig(ABC):
    """One board of backend :attr:`kind`, for the contract suite.

    Subclasses implement the abstract methods; :meth:`start` and :meth:`stop` bring the board
    up and down (the suite uses the rig as a context manager, one rig per test).
    """

    #: the backend's name in the ``labpower.backends`` entry-point group
    kind: str
    #: channels of the board (at least 2: the suite switches one and watches another)
    channels: int = 2
    #: the device's deadline in the suite, seconds; a hung board is waited for this long
    timeout: float = 0.5
    #: True where nothing answers for an absent board (SNMP over UDP: no connection to be
    #: refused), so that absent and hung look the same: the suite then also takes
    #: :class:`~labpower.backends.errors.HardwareTimeout` for an absent board
    absent_is_silent: bool = False
    #: False where nothing between the backend and the board can hang or answer nonsense:
    #: a line of a GPIO chip is a register the kernel reads and writes in one ioctl, with no
    #: bus or peer to stall or garble. The suite then checks that every call still comes back
    #: well within the deadline with the board's own answer, and never calls :meth:`hang`
    #: or :meth:`garble`.
    can_fail: bool = True

    def start(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Bring the board up (start the simulator or server, plug the fake in)."""

    def stop(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Take the board down for good and release everything the rig holds."""

    def __enter__(self) -> Rig:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @abstractmethod
    def options(self) -> dict[str, Any]:
        """The device's config table that reaches this board (``backend`` and ``channels``
        left out), e.g. ``{"port": "/tmp/.../lcus0"}``."""

    def attach(self, backend: Backend) -> None:  # noqa: B027 - optional hook, empty by default
        """Called with every backend instance the suite makes for this board, before it is
        opened: for boards that live inside the backend (``mock``)."""

    @abstractmethod
    def switches(self) -> list[Switch]:
        """Every switching command the board received since :meth:`start`, in order, whether
        or not it acted on it (a hung board still counts what reached it)."""

    @abstractmethod
    def relays(self) -> dict[int, bool]:
        """The board's real relay states, channel 1 first."""

    @abstractmethod
    def preset(self, channel: int, on: bool) -> None:
        """Put a relay in a state from the board's side (as before the daemon started, or a
        button pressed on the board); not a switching command."""

    @abstractmethod
    def hang(self) -> None:
        """The board stops answering (it still takes commands in) until :meth:`heal`."""

    def garble(self) -> bool:
        """The board answers nonsense until :meth:`heal`. :returns: False when the board
        sends nothing to the host at all (a write-only board), so there is nothing to garble;
        the suite then checks that the backend does not claim read-back."""
        return False

    @abstractmethod
    def heal(self) -> None:
        """End :meth:`hang` and :meth:`garble`."""

    @abstractmethod
    def unplug(self) -> None:
        """The board vanishes (unplugged, powered down, its server stopped)."""

    @abstractmethod
    def replug(self) -> None:
        """The board comes back where it was; it may have lost its relay states."""
