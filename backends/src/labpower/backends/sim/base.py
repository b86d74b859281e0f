"""The pty machinery every board simulator shares: a pty, a thread, wire time and faults."""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from labpower.backends import timing
from labpower.backends.models import BoardModel

#: bits on the wire per byte at 8N1 (start bit, 8 data bits, stop bit)
BITS_PER_BYTE = 10
_SPIN = timing.SIM_WIRE_SPIN  # the end of a wire-time wait is spun: sleep() overshoots


class PtySimulator(BoardModel):
    """A relay board on a pty: a subclass also derives from the board's model, which parses
    the bytes in :meth:`handle` (``class XSimulator(PtySimulator, XModel)``).

    ``link`` (optional) is a symlink made to point at the pty, so that a config can name a
    stable path. ``wire_baud`` makes every command and answer take the time it would take on
    a real wire at that baud rate (a pty is otherwise instant).

    Everything a test checks is public: :attr:`relays` (the real relay states), :attr:`received`
    (every byte), :attr:`switches` (every switching command, applied or not).
    """

    def __init__(
        self,
        link: str | os.PathLike[str] | None = None,
        *,
        wire_baud: float | None = None,
        **board: Any,
    ) -> None:
        """``board``: the model's own arguments (``channels``, a dialect...)."""
        if wire_baud is not None and wire_baud <= 0:
            raise ValueError(f"wire_baud must be positive, not {wire_baud}")
        super().__init__(**board)
        self.link = Path(link) if link is not None else None
        self.wire_baud = wire_baud
        #: every byte received, in order (also while hung or ignoring)
        self.received = bytearray()
        #: wire time emulated so far (in both directions), in seconds
        self.wire_time = 0.0
        #: seconds to keep polling for the next command after each one, instead of sleeping
        #: until the kernel wakes the simulator (a board's microcontroller listens all the
        #: time; a sleeping simulator would add its own wake-up to timing measurements)
        self.listen = 0.0
        self.garbled = False
        self._changed = threading.Condition(self._lock)
        self._master = -1
        self._slave = -1
        self.path = ""
        self._thread: threading.Thread | None = None
        self._wake_r = self._wake_w = -1
        self._in_busy = 0.0
        self._out_busy = 0.0

    # -- life cycle
    def start(self) -> PtySimulator:
        """Create the pty, link it, and answer in a background thread."""
        with self._lock:
            if self._thread is not None:
                raise RuntimeError("simulator already running")
            self._open_pty()
            self._wake_r, self._wake_w = os.pipe()
            self._thread = threading.Thread(
                target=self._serve, name=f"sim-{self.kind}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering, close the pty and remove the link."""
        thread = self._thread
        if thread is not None:
            os.write(self._wake_w, b"x")
            thread.join()
            self._thread = None
            os.close(self._wake_r)
            os.close(self._wake_w)
        self._close_pty()

    def __enter__(self) -> PtySimulator:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        # The simulator keeps the slave open itself, so that the master never sees a
        # hang-up while no backend has the port open.
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.path = os.ttyname(slave)
        if self.link is not None:
            tmp = self.link.with_name(f".{self.link.name}.{os.getpid()}.tmp")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(self.path)
            tmp.replace(self.link)  # atomic: the link is never missing while we replace it

    def _close_pty(self) -> None:
        if self.link is not None:
            try:
                if self.link.is_symlink() and os.readlink(self.link) == self.path:
                    self.link.unlink()
            except FileNotFoundError:
                pass
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1

    def wait_until(self, condition: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Wait until ``condition()`` (checked after every chunk of bytes the board takes in)
        holds; False if it still does not after ``timeout`` seconds. For commands that have
        no answer, e.g. ``board.wait_until(lambda: len(board.switches) == 1)``."""
        with self._changed:
            return self._changed.wait_for(condition, timeout)

    # -- faults
    def hang(self) -> None:
        """Stop answering and acting (bytes are still recorded) until :meth:`heal`."""
        self.hung = True

    def garble(self) -> None:
        """Answer garbage instead of every answer until :meth:`heal`."""
        self.garbled = True

    def heal(self) -> None:
        """End :meth:`hang` and :meth:`garble`."""
        self.garbled = False
        self.hung = False

    def send(self, data: bytes) -> None:
        """Send bytes nobody asked for (a boot banner, line noise), now."""
        os.write(self._master, data)

    def drop(self) -> None:
        """Act unplugged: close the pty (the port's user gets EIO) and remove the link.
        The relays lose their state, as they lose USB power."""
        self.stop()
        self.power_loss()

    def come_back(self) -> None:
        """Act plugged in again: a new pty behind the same link."""
        self.start()

    # -- the thread
    def _serve(self) -> None:
        master, wake = self._master, self._wake_r
        listening_until = 0.0
        while True:
            readable: list[int] = []
            while not readable and time.monotonic() < listening_until:
                readable, _, _ = select.select([master, wake], [], [], 0)
                os.sched_yield()
            if not readable:
                readable, _, _ = select.select([master, wake], [], [])
            if wake in readable:
                return
            try:
                data = os.read(master, 4096)
            except BlockingIOError:
                continue
            except OSError:  # EIO: nobody has the slave open; cannot happen while we do
                return
            arrived = time.monotonic()
            with self._lock:
                self.received += data
                exchanges = self.handle(data)
                self._changed.notify_all()
            for length, answer in exchanges:
                self._answer(arrived, length, answer)
            listening_until = time.monotonic() + self.listen

    def _wire(self, nbytes: int) -> float:
        if self.wire_baud is None:
            return 0.0
        return nbytes * BITS_PER_BYTE / self.wire_baud

    def _answer(self, arrived: float, length: int, answer: bytes) -> None:
        # The command was on the wire until ``in_done``; the answer follows it and is
        # complete at ``out_done``. The pty delivers instantly, so wait until then.
        in_done = max(arrived, self._in_busy) + self._wire(length)
        self._in_busy = in_done
        if self.hung:
            return
        if answer and self.garbled:
            answer = self.garbage(answer)
        out_done = max(in_done, self._out_busy) + self._wire(len(answer))
        self._out_busy = out_done
        self.wire_time += self._wire(length) + self._wire(len(answer))
        if not answer:
            return
        if self.wire_baud is not None:
            _wait_until(out_done)
        try:
            os.write(self._master, answer)
        except BlockingIOError:
            pass  # nobody reads the port and its buffer is full: a real wire drops it too


def _wait_until(when: float) -> None:
    remaining = when - time.monotonic()
    if remaining > _SPIN:
        time.sleep(remaining - _SPIN)
    while time.monotonic() < when:
        os.sched_yield()  # spin, but never keep the program under test off the CPU


class StopSignals:
    """SIGINT and SIGTERM, for a simulator's command line to run until.

    Made before any thread starts: the signals are blocked in this thread and in every
    thread started after it (threads inherit the mask), and :meth:`wait` takes them with
    ``sigtimedwait``. A Python handler setting an Event could deadlock on the Event's own
    lock when it runs while this thread is entering ``Event.wait()``, which left the
    simulator running after Ctrl-C.
    """

    SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})

    def __init__(self) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, self.SIGNALS)
        #: the signal that came, once one did
        self.received: int | None = None

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a stop signal; True once one came."""
        if self.received is None:
            info = signal.sigtimedwait(self.SIGNALS, timeout)
            if info is not None:
                self.received = info.si_signo
        return self.received is not None


class _Startable(Protocol):
    def start(self) -> object: ...

    def stop(self) -> None: ...


def serve_until_stopped(
    sim: _Startable, stop: StopSignals, where: str, banner: Callable[[], str]
) -> int:
    """A simulator command line's run: start ``sim``, print its banner, serve until a stop
    signal, stop it. :returns: the exit status (1, with a message naming ``where``, when it
    cannot start)."""
    try:
        sim.start()
    except OSError as exc:
        print(f"labpower-sim: cannot {where}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        print(banner(), flush=True)
        while not stop.wait(3600):
            pass
    finally:
        sim.stop()
    return 0
