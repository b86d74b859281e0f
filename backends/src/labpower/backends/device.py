"""A device: one backend instance with its lock, deadlines and availability.

Every call to the board goes through here: calls to one device run one at a time in arrival
order (anyio's lock is fair), except that reads (state, readings) queue behind each other
before they queue for the board, so a switch waits for at most the one read in progress
however many clients read (switching wins over reading), each operation has a deadline (the
device's ``timeout``; a switch and its read-back count as one operation), and a board that
vanished or failed is closed and re-opened on the next call, so an unplugged board works
again once it is back, without restarting anything. Re-opening never switches a relay.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
from labpower.backends.base import Backend, Measurement
from labpower.backends.errors import (
    BackendError,
    DeviceUnavailableError,
    HardwareTimeout,
    NotSupportedError,
)

T = TypeVar("T")


def error_kind(exc: BackendError) -> str:
    """The kind of a hardware failure, as monitoring counts it: ``timeout``,
    ``unavailable`` (absent, cannot be opened) or ``error`` (answered wrongly)."""
    if isinstance(exc, HardwareTimeout):
        return "timeout"
    if isinstance(exc, DeviceUnavailableError):
        return "unavailable"
    return "error"


class Device:
    """Wraps one :class:`Backend`; this is what the daemon talks to."""

    def __init__(self, backend: Backend, timeout: float) -> None:
        self.backend = backend
        self.timeout = timeout
        backend.timeout = timeout
        # fast_acquire: no event-loop round trip when the lock is free (the common case)
        self.lock = anyio.Lock(fast_acquire=True)
        #: reads pass here one at a time before they take :attr:`lock`: at most one read
        #: waits for the board ahead of a switch
        self._reads = anyio.Lock(fast_acquire=True)
        self._opened = False
        #: Why the device is not available; None while it answers.
        self.problem: str | None = "not opened yet"
        #: failures so far, by :func:`error_kind` (for monitoring; NotSupported is no failure)
        self.errors: Counter[str] = Counter()
        #: successful opens after the first: the board came back after a failure, an unplug
        #: or a hot-plug check
        self.reconnects = 0
        self._ever_opened = False

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def available(self) -> bool:
        return self.problem is None

    @property
    def readback(self) -> bool:
        return self.backend.readback

    @property
    def health_interval(self) -> float | None:
        return self.backend.health_interval

    async def open(self) -> bool:
        """Open the board now (at daemon start). False, with :attr:`problem` set, if it is
        absent: the daemon still starts and the next call tries again."""
        async with self.lock:
            try:
                await self._ensure_open()
            except BackendError:
                return False
        return True

    async def close(self) -> None:
        async with self.lock:
            await self._close()

    async def probe(self) -> bool:
        """Check the board again now, after a hot-plug event: close it and open it again
        (opening never switches a relay), so that a board that vanished is unavailable at
        once and one that came back, maybe under a new node, is available at once, rather
        than at the next call. Waits for a call in progress.

        :returns: :attr:`available` afterwards; a failed open sets :attr:`problem`, it does
            not raise.
        """
        async with self.lock:
            await self._close()
            try:
                await self._ensure_open()
            except BackendError:
                pass
        return self.available

    async def check(self) -> bool:
        """A health check: ask an open board whether it answers (:meth:`Backend.ping`), or
        try to open one that is not, under the device's deadline. Never switches a relay.

        :returns: :attr:`available` afterwards; a failure sets :attr:`problem`, it does not
            raise.
        """
        async with self.lock:
            try:
                if self._opened:
                    await self._run(self.backend.ping)
                else:
                    await self._ensure_open()
            except BackendError:
                pass
        return self.available

    async def _close(self) -> None:
        if self._opened:
            self._opened = False
            with anyio.move_on_after(self.timeout, shield=True):
                try:
                    await self.backend.close()
                except BackendError:
                    pass

    async def _ensure_open(self) -> None:
        if self._opened:
            return
        try:
            with anyio.fail_after(self.timeout):
                await self.backend.open()
        except TimeoutError as exc:
            self.problem = f"open timed out after {self.timeout:g} s"
            self.errors["timeout"] += 1
            raise HardwareTimeout(self.timeout, "opening the board") from exc
        except BackendError as exc:
            self.problem = str(exc) or type(exc).__name__
            self.errors[error_kind(exc)] += 1
            raise
        self._opened = True
        self.problem = None
        self.reconnects += self._ever_opened
        self._ever_opened = True

    async def _run(self, fn: Callable[[], Awaitable[T]]) -> T:
        """One operation on the board under the deadline; on failure mark the board and
        close it so that the next call re-opens it. Must be called with :attr:`lock` held."""
        await self._ensure_open()
        failure: BackendError | None = None
        with anyio.CancelScope(deadline=anyio.current_time() + self.timeout) as scope:
            try:
                result = await fn()
            except NotSupportedError:
                raise
            except HardwareTimeout as exc:
                failure = exc
                self.problem = f"no answer within {self.timeout:g} s"
            except BackendError as exc:
                failure = exc
                self.problem = str(exc) or type(exc).__name__
        if scope.cancelled_caught:
            failure = HardwareTimeout(self.timeout)
            self.problem = f"no answer within {self.timeout:g} s"
        if failure is not None:
            self.errors[error_kind(failure)] += 1
            await self._close()
            raise failure
        self.problem = None
        return result

    async def switch(self, channel: int, on: bool) -> bool | None:
        """Switch a channel, then read it back where the board can tell. The switch and its
        read-back are one operation under one deadline.

        :returns: the state read back, or None when the board cannot report it.
        """
        async with self.lock:
            return await self._run(lambda: self.backend.switch(channel, on))

    async def state(self, channel: int) -> bool | None:
        """The channel's state as the board reports it; None when it cannot tell."""
        async with self._reads, self.lock:
            return await self._run(lambda: self.backend.get(channel))

    async def states(self) -> dict[int, bool | None]:
        """Every channel's state, asking the board as few times as it allows."""
        async with self._reads, self.lock:
            return await self._run(self.backend.get_all)

    async def measure(self, channel: int) -> Measurement:
        async with self._reads, self.lock:
            return await self._run(lambda: self.backend.read(channel))
