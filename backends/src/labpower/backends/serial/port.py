"""The serial port of one relay board, and the base class of the serial backends.

:class:`SerialPort` opens the port exclusively and without glitching the modem lines, keeps it
open between calls, leaves at least ``gap`` seconds between commands, and reads answers under a
deadline into a bounded buffer, a chunk at a time.

Opening and closing can block in the kernel (a wedged USB serial chip, a tty draining its
output), so they run in a worker thread through :meth:`Backend.in_thread`. The exchanges with
the board do not: the port's file descriptor is non-blocking, and reads and writes wait for it
on the event loop (``anyio.wait_readable`` / ``wait_writable``). A switch therefore costs no
thread hand-offs, a deadline simply cancels the wait, and a hung board only ever holds its own
device's lock, never a thread or another board.

:class:`SerialBackend` holds the options every serial board shares and the port's life cycle:
the port opens in :meth:`~SerialBackend.open`, and :class:`~labpower.backends.device.Device`
closes it after any error so that the next call opens it afresh. Opening never writes a byte
(the LCUS backend adds a status query, which switches nothing).
"""

from __future__ import annotations

import errno
import os
import select
import stat
import termios
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread
from labpower.backends import timing
from labpower.backends.base import Backend
from labpower.backends.errors import (
    DeviceUnavailableError,
    HardwareTimeout,
    OperationError,
    OptionError,
)

T = TypeVar("T")

#: Errors that mean the board is gone (unplugged, pty closed, port removed).
_GONE = {errno.EIO, errno.ENXIO, errno.ENODEV, errno.ENOENT, errno.EBADF, errno.EPIPE}
#: Largest reply any serial board sends; more than this is a runaway board.
MAX_REPLY = 4096
_CHUNK = 1024
#: bits on the wire per byte at 8N1 (start bit, 8 data bits, stop bit)
BITS_PER_BYTE = 10
# An answer due at a known time (see SerialPort.read_exact) is polled for from
# timing.SERIAL_POLL_BEFORE before it is due until timing.SERIAL_POLL_AFTER after, instead of
# sleeping until the kernel reports it (read at each use: the policy lives in timing.py).


@dataclass(frozen=True, slots=True)
class SerialOptions:
    """Options every serial board takes (``[devices.NAME]`` keys next to ``backend``)."""

    #: The port: any path, /dev/serial/by-id and /dev/serial/by-path links included.
    port: str
    baud: int = 9600
    #: Seconds to wait for a reply; default: the device's ``timeout``.
    read_timeout: float | None = None
    #: Seconds a write may block (a hung USB serial chip); default: the device's ``timeout``.
    write_timeout: float | None = None
    #: Least seconds between two commands (from the end of the previous exchange).
    gap: float = 0.0

    def __post_init__(self) -> None:
        if not self.port:
            raise OptionError("port", "must not be empty")
        _check_port(self.port)
        if not 50 <= self.baud <= 4_000_000:
            raise OptionError("baud", f"must be between 50 and 4000000, not {self.baud}")
        for key in ("read_timeout", "write_timeout"):
            value = getattr(self, key)
            if value is not None and not 0 < value <= 600:
                raise OptionError(key, f"must be more than 0 and at most 600 s, not {value}")
        if not 0 <= self.gap <= 10:
            raise OptionError("gap", f"must be 0..10 seconds, not {self.gap}")


def _check_port(path: str) -> None:
    """A port is an absolute path to a character device. One that does not exist (yet) is
    fine: the board may be unplugged, the daemon opens it when it appears. Anything else there
    (a regular file, a directory, a link to one) would be opened as a board and written to.

    :raises OptionError: naming what is there instead.
    """
    if not os.path.isabs(path):
        raise OptionError("port", f"must be an absolute path (/dev/...), not {path!r}")
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise OptionError("port", f"{path}: {exc.strerror or exc}") from exc
    if not stat.S_ISCHR(mode):
        what = "a directory" if stat.S_ISDIR(mode) else "not a character device"
        real = os.path.realpath(path)
        shown = path if real == path else f"{path} (-> {real})"
        raise OptionError("port", f"{shown} is {what}, not a serial port")


def _unavailable(path: str, exc: OSError) -> DeviceUnavailableError:
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.EIO, errno.ENXIO, errno.ENODEV, errno.EBADF):
        reason = f"board disconnected ({reason})"
    return DeviceUnavailableError(f"{path}: {reason}")


class SerialPort:
    """One serial port. :meth:`open` and :meth:`request_close` block (run them in a worker
    thread); the exchanges are async and run inside :meth:`run`.

    :meth:`request_close` may be called from any thread at any time: when :meth:`open` is still
    running in a thread abandoned at its deadline, the port closes as soon as it returns, so a
    file descriptor is never leaked or closed under a thread that uses it.
    """

    def __init__(
        self, path: str, *, baud: int = 9600, gap: float = 0.0, write_timeout: float | None = None
    ) -> None:
        self.path = path
        self.baud = baud
        self.gap = gap
        self.write_timeout = write_timeout
        self._serial: Any = None
        self._fd = -1
        self._buf = bytearray()
        self._last = 0.0  # monotonic time of the end of the previous exchange
        self._deadline = 0.0
        self._timeout = 0.0
        self._state = threading.Lock()
        self._active = False
        self._close_requested = False
        self._vmin = 0  # VMIN as last set (pyserial opens with 0: readable at any byte)
        self._attrs: list[Any] | None = None  # the port's termios settings; None: it has none
        self._tx_done = 0.0  # monotonic time when the last byte written has left the wire
        #: how much later than the wire time alone answers came lately (board, USB), seconds
        self.lag = 0.0

    # -- life cycle
    def open(self) -> None:
        """Open exclusively, without a DTR/RTS pulse, and clear HUPCL. A port object opens
        once; after :meth:`request_close` make a new one.

        :raises DeviceUnavailableError: absent, no permission, or in use by another program.
        """
        with self._state:
            if self._close_requested or self._serial is not None:
                raise DeviceUnavailableError(f"{self.path}: port object already used")
            self._active = True
        try:
            self._open()
        finally:
            with self._state:
                self._active = False
                close = self._close_requested
            if close:  # abandoned while opening: nobody will use it
                self._close_now()

    def _open(self) -> None:
        import serial  # the hardware library is needed only once a board is used

        ser = serial.Serial()
        ser.port = self.path
        ser.baudrate = self.baud
        # Set before open so that pyserial never raises the lines; the kernel still raises
        # them on open unless HUPCL was cleared by the previous user, which we do below.
        ser.dtr = False
        ser.rts = False
        ser.exclusive = True
        ser.timeout = 0
        ser.write_timeout = self.write_timeout
        try:
            ser.open()
        except serial.SerialException as exc:
            code = exc.errno if isinstance(exc.errno, int) else None
            if code in (errno.EWOULDBLOCK, errno.EAGAIN):
                reason = "in use by another program"
            elif code == errno.ENOENT:
                reason = "no such port (unplugged?)"
            elif code == errno.EACCES:
                reason = "permission denied"
            else:
                reason = str(exc)
            raise DeviceUnavailableError(f"{self.path}: {reason}") from exc
        except OSError as exc:  # pyserial lets some ioctl errors through unwrapped
            raise _unavailable(self.path, exc) from exc
        self._serial = ser
        self._fd = ser.fileno()
        try:
            attrs = termios.tcgetattr(self._fd)
            if attrs[2] & termios.HUPCL:
                # Without this the kernel drops DTR/RTS when the port closes and raises
                # them at the next open: a glitch that resets some boards.
                attrs[2] &= ~termios.HUPCL
                termios.tcsetattr(self._fd, termios.TCSANOW, attrs)
            self._attrs = attrs
        except termios.error as exc:
            if exc.args[0] not in (errno.ENOTTY, errno.EINVAL):
                self._close_now()
                raise DeviceUnavailableError(f"{self.path}: cannot configure: {exc}") from exc
        self._last = time.monotonic()

    @property
    def fileno(self) -> int:
        """The open port's file descriptor, or -1."""
        return self._fd

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    def request_close(self) -> None:
        """Close now, or as soon as the call in progress returns. Never raises."""
        with self._state:
            self._close_requested = True
            if self._active:
                return
        self._close_now()

    def _close_now(self) -> None:
        ser, self._serial, self._fd = self._serial, None, -1
        if ser is None:
            return
        try:
            # Unsent output would make close() wait for the tty to drain it, and an
            # unsent command must not reach the board after we gave up on it.
            termios.tcflush(ser.fileno(), termios.TCOFLUSH)
        except (termios.error, OSError, ValueError):
            pass
        try:
            ser.close()
        except Exception:  # a closing port of a vanished board may fail anyhow
            pass

    async def run(self, fn: Callable[[SerialPort], Awaitable[T]], read_timeout: float) -> T:
        """Run one exchange ``await fn(self)``; its reads end ``read_timeout`` seconds from now.

        :raises DeviceUnavailableError: the port is closed or the board vanished.
        """
        if self._serial is None or self._close_requested:
            raise DeviceUnavailableError(f"{self.path}: port not open")
        self._timeout = read_timeout
        self._deadline = anyio.current_time() + read_timeout
        return await fn(self)

    # -- I/O (inside run, on the event loop; the descriptor is non-blocking)
    async def command(self, data: bytes) -> None:
        """Send one command: drop stale input, respect the gap, write it all.

        :raises HardwareTimeout: the port would not take the bytes in time.
        :raises DeviceUnavailableError: the board vanished.
        """
        self.discard_input()
        wait = self._last + self.gap - time.monotonic()
        if wait > 0:
            await anyio.sleep(wait)
        await self._write(data)

    def discard_input(self) -> None:
        """Forget anything the board sent that nobody asked for (a late or garbled answer).

        :raises DeviceUnavailableError: the board hung up.
        """
        self._buf.clear()
        if self._attrs is not None:
            try:
                termios.tcflush(self._fd, termios.TCIFLUSH)  # one call, whatever VMIN is
                return
            except termios.error as exc:
                if exc.args[0] in _GONE:
                    raise _unavailable(self.path, OSError(*exc.args)) from exc
        self._wake_at(1)
        while self._read_now():
            self._buf.clear()

    def _read_now(self) -> bool:
        """Add what is there to the buffer without waiting; False if nothing was.

        :raises DeviceUnavailableError: the board hung up.
        """
        # With VMIN = 0 an empty read means "nothing there" as well as "hung up"; only
        # select() tells them apart (readable and empty = hung up).
        readable, _, _ = select.select([self._fd], [], [], 0)
        if not readable:
            return False
        try:
            data = os.read(self._fd, _CHUNK)
        except BlockingIOError:
            return False
        except OSError as exc:
            raise _unavailable(self.path, exc) from exc
        if not data:
            raise DeviceUnavailableError(f"{self.path}: board disconnected (hang-up)")
        if len(self._buf) + len(data) > MAX_REPLY:
            raise OperationError(f"{self.path}: board sent more than {MAX_REPLY} bytes")
        self._buf += data
        self._last = time.monotonic()
        return True

    async def _write(self, data: bytes) -> None:
        view = memoryview(data)[self._write_now(data) :]  # a command fits the tty's buffer
        if view:
            limit = self._timeout if self.write_timeout is None else self.write_timeout
            with anyio.move_on_after(limit) as scope:
                while view:
                    await anyio.wait_writable(self._fd)
                    view = view[self._write_now(view) :]
            if scope.cancelled_caught:
                raise HardwareTimeout(limit, "writing to the board")
        now = self._last = time.monotonic()
        self._tx_done = max(now, self._tx_done) + self.wire_time(len(data))

    def _write_now(self, data: bytes | memoryview) -> int:
        """Write what the port takes without waiting; how many bytes that was."""
        try:
            return os.write(self._fd, data)
        except BlockingIOError:
            return 0
        except OSError as exc:
            raise _unavailable(self.path, exc) from exc

    def wire_time(self, nbytes: int) -> float:
        """Seconds ``nbytes`` take on the wire at the port's baud rate (8N1)."""
        return nbytes * BITS_PER_BYTE / self.baud

    async def _fill(self, deadline: float, due: float | None = None) -> bool:
        """Wait for bytes and add them to the buffer; False once ``deadline`` (anyio's
        clock) passed first. ``due``: when (monotonic clock) they are expected, if known."""
        with anyio.CancelScope(deadline=deadline):
            if due is not None and await self._poll_around(due):
                return True
            while True:
                await anyio.wait_readable(self._fd)
                if self._read_now():
                    return True
        return False

    async def _poll_around(self, due: float) -> bool:
        """Wait for bytes expected at ``due`` by polling for them around that time, while
        the event loop goes on serving everything else; False if none came by
        ``timing.SERIAL_POLL_AFTER`` after it.

        Why: a process asleep in epoll that the kernel wakes for the answer pays for the
        wake-up, which on a virtual machine is about a tenth of a millisecond. Here the
        daemon wakes on a timer shortly before the answer is due, and the answer is picked
        up the moment it is complete. Bytes that come earlier than predicted end the sleep
        at once, as without polling. Cost: at most the two polling windows of CPU a reply.
        """
        wait = due - timing.SERIAL_POLL_BEFORE - time.monotonic()
        if wait > 0:
            with anyio.move_on_after(wait):
                await anyio.wait_readable(self._fd)
        until = max(due, time.monotonic()) + timing.SERIAL_POLL_AFTER
        while not self._read_now():
            if time.monotonic() >= until:
                return False
            os.sched_yield()  # let whatever else waits for this CPU run
            # one turn of the event loop: other boards, other clients
            await anyio.lowlevel.checkpoint()
        return True

    def _take(self, n: int) -> bytes:
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    async def read_exact(self, n: int, likely: int | None = None) -> bytes:
        """Exactly ``n`` bytes. ``likely``: how long the whole answer most likely is, when
        ``n`` is only the part that tells how long it is (a Modbus exception is shorter than
        the normal answer), so that the answer is expected when it is really due.

        :raises HardwareTimeout: they did not come in time.
        """
        if len(self._buf) < n:
            self._wake_at(n - len(self._buf))
            # The answer follows the command on the wire (plus what the board and USB add,
            # learned from past answers): it is due no earlier than this.
            sent = self._tx_done
            size = max(n, likely or 0) - len(self._buf)
            predicted = max(sent, time.monotonic()) + self.wire_time(size)
            due: float | None = predicted + self.lag
            while len(self._buf) < n:
                if not await self._fill(self._deadline, due):
                    self._wake_at(1)
                    self._read_now()  # what did come, for the message
                    got = len(self._buf)
                    raise HardwareTimeout(
                        self._timeout, f"waiting for {n} bytes from the board (got {got})"
                    )
                due = None  # a partial answer: the rest comes when it comes
                if len(self._buf) < n:
                    # only then: VMIN is left as it is for the next answer of the same
                    # length (each change is four ioctls, two on every Modbus exchange)
                    self._wake_at(n - len(self._buf))
            self._learn_lag(self._last - predicted)
        return self._take(n)

    def _learn_lag(self, late: float) -> None:
        """Update :attr:`lag` with how late (seconds) an answer came against the wire time:
        down at once, up by an eighth of the difference (a late answer now and then, e.g.
        the daemon busy elsewhere, must not move the polling window much)."""
        late = min(late, 1.0)
        self.lag = late if late < self.lag else self.lag + (late - self.lag) / 8

    def _wake_at(self, count: int) -> None:
        """Have the tty report the port readable only once ``count`` bytes are there (VMIN;
        the line discipline's poll honours it), so that an answer of n bytes trickling in at
        the baud rate wakes the daemon once, not n times. It stays so until a read needs
        another count: whatever reads "any byte" sets 1 first. Where the port has no termios
        (or refuses), every byte wakes it as before."""
        count = max(1, min(count, 255))
        attrs = self._attrs
        if count == self._vmin or attrs is None or self._fd < 0:
            return
        try:
            attrs[6][termios.VMIN] = count
            attrs[6][termios.VTIME] = 0
            termios.tcsetattr(self._fd, termios.TCSANOW, attrs)
        except (termios.error, OSError):
            return
        self._vmin = count

    async def read_until(self, terminator: bytes, limit: int) -> bytes:
        """Bytes up to and including ``terminator``.

        :raises HardwareTimeout: it did not come in time.
        :raises OperationError: more than ``limit`` bytes came without it.
        """
        self._wake_at(1)
        start = 0
        while True:
            found = self._buf.find(terminator, start)
            if found >= 0:
                return self._take(found + len(terminator))
            if len(self._buf) > limit:
                raise OperationError(
                    f"{self.path}: no {terminator!r} in the board's answer "
                    f"{bytes(self._buf[:64])!r}"
                )
            start = max(0, len(self._buf) - len(terminator) + 1)
            if not await self._fill(self._deadline):
                raise HardwareTimeout(self._timeout, "waiting for the board's answer")

    async def wait_for_data(self, seconds: float) -> bool:
        """Whether the board sent anything within ``seconds`` (capped by the deadline)."""
        if self._buf:
            return True
        self._wake_at(1)
        return await self._fill(min(self._deadline, anyio.current_time() + seconds))

    def expect_nothing_more(self) -> None:
        """Check that the board sent no more than was read: a byte protocol without framing
        can only spot a garbled answer by its length.

        :raises OperationError: more bytes had arrived.
        """
        self._wake_at(1)
        self._read_now()
        if self._buf:
            extra = self._take(64)
            raise OperationError(f"{self.path}: unexpected bytes after the answer: {extra!r}")

    def peek(self) -> bytes:
        """What was read but not yet taken."""
        return bytes(self._buf)


class SerialBackend(Backend):
    """A board behind a serial port. Subclasses implement :meth:`set` (and :meth:`get`) with
    :meth:`io`; the port opens in :meth:`open` and closes in :meth:`close`."""

    Options: ClassVar[type[Any]] = SerialOptions

    def __init__(
        self, name: str, channels: int, options: SerialOptions, timeout: float = 5.0
    ) -> None:
        super().__init__(name, channels, options, timeout)
        self.port: SerialPort | None = None

    def _new_port(self) -> SerialPort:
        o = self.options
        return SerialPort(o.port, baud=o.baud, gap=o.gap, write_timeout=o.write_timeout)

    @property
    def read_timeout(self) -> float:
        value: float | None = self.options.read_timeout
        return self.timeout if value is None else value

    async def open(self) -> None:
        """Open the port, then run :meth:`_opened` (which must not switch anything).

        :raises DeviceUnavailableError: the port is absent, busy or not permitted.
        """
        port = self._new_port()
        try:
            await self.in_thread(port.open)
            self.port = port
            await self._opened()
        except BaseException:
            self.port = None
            port.request_close()
            raise

    async def _opened(self) -> None:
        """Hook run once the port is open: e.g. find out what the board speaks."""

    async def close(self) -> None:
        port, self.port = self.port, None
        if port is not None:
            if port.fileno >= 0:
                # a task still waiting on the descriptor (none, when Device closes) must
                # fail rather than wait on a number the kernel may hand out again
                anyio.notify_closing(port.fileno)
            # close() can block on a wedged tty; never on the event loop
            await anyio.to_thread.run_sync(port.request_close, abandon_on_cancel=True)

    async def io(self, fn: Callable[[SerialPort], Awaitable[T]]) -> T:
        """Run one exchange with the board: ``await fn(port)``.

        :raises DeviceUnavailableError, HardwareTimeout, OperationError:
        """
        port = self.port
        if port is None:
            raise DeviceUnavailableError(f"{self.options.port}: port not open")
        return await port.run(fn, self.read_timeout)

    def check_channel(self, channel: int) -> None:
        """:raises OperationError: ``channel`` is not 1..channels."""
        if not 1 <= channel <= self.channels:
            raise OperationError(f"channel {channel} out of range 1..{self.channels}")
