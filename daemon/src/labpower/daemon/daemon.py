"""The daemon's lifecycle: open boards, bind the socket, serve, stop cleanly.

Stopping (SIGTERM/SIGINT) stops accepting connections, lets switching calls in flight finish
(at most ``grace`` seconds), ends the rest, removes the socket and closes the boards. Nothing
here switches a relay: not at start and not at stop.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import stat

import anyio
from anyio.abc import TaskStatus

from labpower.daemon import notify
from labpower.daemon.config import Config
from labpower.daemon.lab import Lab
from labpower.daemon.logbus import LogBus
from labpower.daemon.server import Server

log = logging.getLogger("labpower.daemon")

SOCKET_MODE = 0o660


class StartupError(Exception):
    """The daemon cannot start (socket in use, directory not writable...)."""


def bind_socket(path: str) -> socket.socket:
    """A listening Unix socket at ``path``, mode 0660 from the moment it exists.

    A stale socket file (nobody listening) is replaced; a live one is refused.

    :raises StartupError:
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise StartupError(f"{path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError as exc:
            if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
                raise StartupError(f"cannot check existing socket {path}: {exc}") from exc
            os.unlink(path)
        else:
            raise StartupError(f"another daemon is already listening on {path}")
        finally:
            probe.close()
    directory = os.path.dirname(path) or "."
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise StartupError(f"cannot create {directory}: {exc.strerror}") from exc
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o117)  # the socket is never, not even briefly, accessible to others
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot bind {path}: {exc.strerror}") from exc
    finally:
        os.umask(old)
    os.chmod(path, SOCKET_MODE)
    sock.listen(512)
    return sock


class Daemon:
    def __init__(self, config: Config, socket_path: str, *, grace: float = 10.0) -> None:
        self.config = config
        self.socket_path = socket_path
        self.grace = grace
        self.bus = LogBus(config.daemon.history)
        self.lab = Lab(config)
        self.server = Server(self.lab, self.bus)
        self._stop = anyio.Event()

    def stop(self) -> None:
        """Ask the daemon to stop (from the event loop)."""
        self._stop.set()

    async def run(self, *, handle_signals: bool = True,
                  task_status: TaskStatus[Daemon] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve until :meth:`stop` or SIGTERM/SIGINT. ``task_status.started()`` fires once
        the socket accepts calls."""
        self.bus.attach()
        try:
            await self.lab.open()
            sock = bind_socket(self.socket_path)
            try:
                await self._serve(sock, handle_signals,
                                  task_status)
            finally:
                try:
                    os.unlink(self.socket_path)
                except FileNotFoundError:
                    pass
        finally:
            await self.lab.close()
            self.bus.detach()

    async def _serve(self, listener: socket.socket, handle_signals: bool,
                     task_status: TaskStatus[Daemon]) -> None:
        async with anyio.create_task_group() as tg:
            if handle_signals:
                # start(), not start_soon(): the handlers must be in place before READY=1,
                # or a SIGTERM right after it kills the daemon with the socket left behind
                await tg.start(self._signals)
            async with anyio.create_task_group() as connections:
                accepting = anyio.CancelScope()
                connections.start_soon(self._accept, listener, connections, accepting)
                available = sum(d.available for d in self.lab.devices.values())
                log.info("serving %d targets on %s (%d of %d devices available)",
                         len(self.lab.targets), self.socket_path, available,
                         len(self.lab.devices))
                notify.ready(f"{len(self.lab.targets)} targets, {available}/"
                             f"{len(self.lab.devices)} devices available")
                task_status.started(self)
                await self._stop.wait()
                notify.stopping()
                log.info("stopping")
                accepting.cancel()
                anyio.notify_closing(listener)
                listener.close()
                with anyio.move_on_after(self.grace):
                    await self.server.idle()
                connections.cancel_scope.cancel()
            tg.cancel_scope.cancel()

    async def _accept(self, listener: socket.socket, tg: anyio.abc.TaskGroup,
                      scope: anyio.CancelScope) -> None:
        listener.setblocking(False)
        with scope:
            while True:
                await anyio.wait_readable(listener)
                try:
                    sock, _ = listener.accept()
                except BlockingIOError:
                    continue
                except OSError as exc:  # e.g. EMFILE: keep serving those connected
                    log.error("accept failed: %s", exc)
                    await anyio.sleep(0.1)
                    continue
                tg.start_soon(self.server.handle, sock)

    async def _signals(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            task_status.started()
            async for signum in signals:
                log.info("received %s", signal.Signals(signum).name)
                self.stop()
